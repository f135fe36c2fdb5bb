// Typed carriers over the real TCP, UDP and framer plugins (loaded with dlopen) on loopback:
// PDU objects in and out through handlers, use_future and use_awaitable, and a malformed
// message that is reported without spoiling the carrier.
#define BOOST_TEST_MODULE typed_carrier
#include <boost/test/unit_test.hpp>

#include <utility>

#include "loopback_support.hpp"

#include <post.hpp>
#include <post/codecs/json.hpp>
#include <post/codecs/newline.hpp>
#include <post/codecs/raw.hpp>
#include <post/typed_carrier.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <optional>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct request {
    std::string op;
    std::string key;
    int value = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(request, op, key, value)

struct response {
    bool ok = false;
    int value = 0;
    std::string error;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(response, ok, value, error)

using post::test::datagram_policy;
using post::test::run_until;
using fixture = post::test::loopback_fixture;

std::uint16_t port_of(const post::listener& l) {
    return post::test::port_of(l);
}

/// A key/value server speaking JSON requests and responses through typed carriers.
post::listener kv_server(post::context& ctx, std::map<std::string, int>& store,
                         const post::policy& p) {
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), p);
    l.on_carrier([&store](post::carrier c) {
        auto t = post::make_typed(c, post::json_codec<request>{});
        t.on_received([t, &store](request r) mutable {
            response out;
            if (r.op == "put") {
                store[r.key] = r.value;
                out = {true, r.value, ""};
            } else if (r.op == "get" && store.count(r.key)) {
                out = {true, store[r.key], ""};
            } else {
                out = {false, 0, "no such key: " + r.key};
            }
            // The reply goes back through the same carrier, typed with the response codec.
            post::make_typed(t.underlying(), post::json_codec<response>{}).send(out);
        });
    });
    return l;
}

void kv_exchange(fixture& f, const std::string& url, const post::policy& p,
                 std::map<std::string, int>& store) {
    auto c = post::initiate(f.ctx, post::remote::from_url(url), p);
    auto requests = post::make_typed(c, post::json_codec<request>{});
    auto responses = post::make_typed(c, post::json_codec<response>{});
    std::vector<response> got;
    responses.on_received([&](response r) { got.push_back(std::move(r)); });
    c.on_error([](const post::error& e) { BOOST_FAIL("carrier error: " << e.to_string()); });
    c.on_ready([&] {
        // One at a time: a datagram stack does not promise order.
        requests.send({"put", "answer", 42});
    });
    run_until(f.io, [&] { return got.size() == 1; });
    requests.send({"get", "answer", 0});
    run_until(f.io, [&] { return got.size() == 2; });
    requests.send({"get", "missing", 0});
    run_until(f.io, [&] { return got.size() == 3; });
    BOOST_TEST(got[0].ok);
    BOOST_TEST(got[1].ok);
    BOOST_TEST(got[1].value == 42);
    BOOST_TEST(!got[2].ok);
    BOOST_TEST(got[2].error == "no such key: missing");
    BOOST_TEST(store.at("answer") == 42);
    c.close();
}

/// A listener that echoes every message back on the carrier it came from, untouched.
post::listener echo_listener(post::context& ctx) {
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    l.on_carrier([](post::carrier c) {
        c.on_received([c](post::message m) mutable { c.send(std::move(m)); });
    });
    return l;
}

} // namespace

BOOST_FIXTURE_TEST_CASE(json_request_response_over_tcp, fixture) {
    std::map<std::string, int> store;
    auto l = kv_server(ctx, store, post::policy::defaults());
    kv_exchange(*this, "tcp://127.0.0.1:" + std::to_string(port_of(l)), post::policy::defaults(),
                store);
    l.close();
}

BOOST_FIXTURE_TEST_CASE(json_request_response_over_udp, fixture) {
    std::map<std::string, int> store;
    auto l = kv_server(ctx, store, datagram_policy());
    kv_exchange(*this, "udp://127.0.0.1:" + std::to_string(port_of(l)), datagram_policy(), store);
    l.close();
}

BOOST_AUTO_TEST_CASE(raw_exchange_with_use_future) {
    asio::io_context io;
    post::context ctx(io, post::test::loopback_options());
    auto l = echo_listener(ctx);
    auto port = port_of(l);
    auto guard = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });

    auto c = post::async_initiate(ctx, post::remote::from_host_port("127.0.0.1", port),
                                  post::policy::defaults(), asio::use_future)
                 .get();
    auto t = post::make_typed(c, post::raw_codec{});
    std::vector<std::byte> pdu{std::byte{0}, std::byte{1}, std::byte{0xff}, std::byte{'\n'}};
    auto id = t.async_send(pdu, asio::use_future).get();
    BOOST_TEST(id > 0u);
    auto reply = t.async_receive(asio::use_future).get();
    BOOST_TEST((reply == pdu));

    // A PDU the codec cannot encode fails the future, and nothing is sent.
    auto lines = post::make_typed(c, post::newline_codec{});
    auto bad = lines.async_send("two\nlines", asio::use_future);
    try {
        bad.get();
        BOOST_FAIL("encoding a line with '\\n' should fail");
    } catch (const boost::system::system_error& e) {
        BOOST_TEST((e.code() == boost::system::errc::invalid_argument));
    }
    BOOST_CHECK_THROW(lines.send("two\nlines"), post::encode_error);

    guard.reset();
    c.abort();
    l.close();
    io.stop();
    runner.join();
}

BOOST_FIXTURE_TEST_CASE(json_exchange_with_use_awaitable, fixture) {
    auto l = echo_listener(ctx);
    auto port = port_of(l);
    nlohmann::json reply;
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto c =
                co_await post::async_initiate(ctx, post::remote::from_host_port("127.0.0.1", port),
                                              post::policy::defaults(), asio::use_awaitable);
            auto t = post::make_typed(c, post::json_codec<>{});
            // Built outside the co_await: g++ 12 cannot keep an initializer_list temporary
            // alive across a suspension point ("array used as initializer").
            nlohmann::json hello = {{"hello", "awaited"}, {"n", 1}};
            co_await t.async_send(hello, asio::use_awaitable);
            reply = co_await t.async_receive(asio::use_awaitable);
            c.close();
            done = true;
        },
        asio::detached);
    run_until(io, [&] { return done; });
    BOOST_TEST(reply.at("hello") == "awaited");
    BOOST_TEST(reply.at("n") == 1);
    l.close();
}

BOOST_FIXTURE_TEST_CASE(malformed_message_is_a_protocol_error_and_the_carrier_survives, fixture) {
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    std::optional<post::typed_carrier<post::json_codec<request>>> server;
    std::vector<post::error> decode_errors;
    l.on_carrier([&](post::carrier c) {
        server = post::make_typed(c, post::json_codec<request>{});
        server->on_decode_error([&](const post::error& e) { decode_errors.push_back(e); });
    });

    // An untyped client sends garbage, then a good request.
    auto client = post::initiate(ctx, post::remote::from_host_port("127.0.0.1", port_of(l)));
    client.on_ready([&] {
        client.send(post::message(std::string_view("{\"op\": \"put\", oops")));
        client.send(post::message(std::string_view(R"({"op":"get","key":"k","value":7})")));
    });
    run_until(io, [&] { return server.has_value(); });

    std::optional<boost::system::error_code> first_ec, second_ec;
    request second;
    server->async_receive([&](boost::system::error_code ec, request) {
        first_ec = ec;
        server->async_receive([&](boost::system::error_code ec, request r) {
            second_ec = ec;
            second = std::move(r);
        });
    });
    run_until(io, [&] { return second_ec.has_value(); });
    BOOST_TEST((*first_ec == post::errc::protocol_error));
    BOOST_REQUIRE(decode_errors.size() == 1u);
    BOOST_TEST((decode_errors[0].code == post::errc::protocol_error));
    BOOST_TEST(decode_errors[0].reason.find("does not decode") != std::string::npos);
    BOOST_TEST(decode_errors[0].reason.find("parse error") != std::string::npos);
    BOOST_TEST(!*second_ec);
    BOOST_TEST(second.op == "get");
    BOOST_TEST(second.value == 7);
    BOOST_TEST((server->underlying().state() == post::carrier_state::active));

    // The handler style drops a bad message the same way and delivers the next one.
    std::vector<request> handled;
    server->on_received([&](request r) { handled.push_back(std::move(r)); });
    client.send(post::message(std::string_view("[]")));
    client.send(post::message(std::string_view(R"({"op":"put","key":"z","value":1})")));
    run_until(io, [&] { return handled.size() == 1; });
    BOOST_TEST(decode_errors.size() == 2u);
    BOOST_TEST(handled[0].key == "z");
    client.close();
    l.close();
}
