// Source, sink and responder over TCP and UDP; fork(); dormant carriers that come back on the
// next send. Real plugins, loopback.
#define BOOST_TEST_MODULE carrier_kinds
#include <boost/test/unit_test.hpp>

#include <utility>

#include "loopback_support.hpp"

#include <post.hpp>
#include <post/responder.hpp>
#include <post/sink.hpp>
#include <post/source.hpp>

#include <boost/asio/io_context.hpp>

#include <set>
#include <string>
#include <vector>

using post::test::datagram_policy;
using post::test::run_until;
using fixture = post::test::loopback_fixture;

namespace {

using post::test::stack_case;
using post::test::tcp_case;
using post::test::udp_case;

std::uint16_t first_port(const std::vector<post::sdk::endpoint>& eps) {
    for (const auto& e : eps)
        if (e.address.is_v4()) return e.port;
    return 0;
}

post::remote url(const stack_case& sc, std::uint16_t port) {
    return post::remote::from_url(sc.scheme + "://127.0.0.1:" + std::to_string(port));
}

void responder_answers_each_sender(const stack_case& sc) {
    fixture f;
    auto r = post::open_responder(f.ctx, post::local::parse("127.0.0.1:0"), sc.policy_,
                                  {{sc.scheme}, "test"});
    std::set<std::uint16_t> senders;
    r.on_received([&](post::message m, post::reply_to to) {
        if (auto from = to.remote()) senders.insert(from->port);
        to.send(post::message("re:" + std::string(m.text())));
    });
    const auto port = first_port(r.local_endpoints());
    BOOST_REQUIRE(port != 0);
    std::vector<std::string> got_a, got_b;
    auto a = post::initiate(f.ctx, url(sc, port), sc.policy_);
    auto b = post::initiate(f.ctx, url(sc, port), sc.policy_);
    a.on_received([&](post::message m) { got_a.emplace_back(m.text()); });
    b.on_received([&](post::message m) { got_b.emplace_back(m.text()); });
    for (int i = 0; i < 3; ++i) {
        a.send(post::message("a" + std::to_string(i)));
        b.send(post::message("b" + std::to_string(i)));
    }
    run_until(f.io, [&] { return got_a.size() == 3 && got_b.size() == 3; });
    // Each got exactly its own answers: replies go to the sender only.
    BOOST_TEST(got_a == (std::vector<std::string>{"re:a0", "re:a1", "re:a2"}),
               boost::test_tools::per_element());
    BOOST_TEST(got_b == (std::vector<std::string>{"re:b0", "re:b1", "re:b2"}),
               boost::test_tools::per_element());
    BOOST_TEST(senders.size() == 2u);
    r.close();
}

void sink_collects_from_sources(const stack_case& sc) {
    fixture f;
    auto s = post::open_sink(f.ctx, post::local::parse("127.0.0.1:0"), sc.policy_,
                             {{sc.scheme}, "test"});
    const auto port = first_port(s.local_endpoints());
    BOOST_REQUIRE(port != 0);
    auto one = post::initiate_source(f.ctx, url(sc, port), sc.policy_);
    auto two = post::initiate_source(f.ctx, url(sc, port), sc.policy_);
    one.send(post::message(std::string_view("from one")));
    two.send(post::message(std::string_view("from two")));
    // Received through the completion-token interface, not a handler.
    std::multiset<std::string> texts;
    std::set<std::uint16_t> senders;
    std::function<void()> next = [&] {
        s.async_receive([&](boost::system::error_code ec, post::message m) {
            if (ec) return;
            texts.emplace(m.text());
            if (m.sender()) senders.insert(m.sender()->port);
            next();
        });
    };
    next();
    run_until(f.io, [&] { return texts.size() == 2; });
    BOOST_TEST((texts == std::multiset<std::string>{"from one", "from two"}));
    BOOST_TEST(senders.size() == 2u);
    // These stacks have no one-way flows: the source asked for unidirectional-send and got a
    // bidirectional flow with its receive half unused (QUIC: test_quic_carriers).
    BOOST_TEST(
        (one.carrier().capabilities().direction == post::sdk::flow_direction::bidirectional));
    s.close();
    one.close();
    two.close();
}

} // namespace

BOOST_AUTO_TEST_CASE(tcp_responder) {
    responder_answers_each_sender(tcp_case());
}
BOOST_AUTO_TEST_CASE(udp_responder) {
    responder_answers_each_sender(udp_case());
}
BOOST_AUTO_TEST_CASE(tcp_sink_and_sources) {
    sink_collects_from_sources(tcp_case());
}
BOOST_AUTO_TEST_CASE(udp_sink_and_sources) {
    sink_collects_from_sources(udp_case());
}

// A source never hands received messages to the application: an echoing peer's replies are
// dropped and counted.
BOOST_FIXTURE_TEST_CASE(source_discards_what_the_peer_sends, fixture) {
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    l.on_carrier([](post::carrier c) {
        c.on_received([c](post::message m) mutable { c.send(std::move(m)); });
    });
    auto src = post::initiate_source(ctx, url(tcp_case(), first_port(l.local_endpoints())));
    int sent = 0;
    src.on_sent([&](post::message_id) { ++sent; });
    for (int i = 0; i < 5; ++i)
        src.send(post::message(std::string_view("x")));
    run_until(io, [&] { return sent == 5 && src.discarded() == 5; });
    BOOST_TEST(src.discarded() == 5u);
}

BOOST_FIXTURE_TEST_CASE(fork_opens_another_carrier_on_the_same_association, fixture) {
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    std::vector<std::string> got;
    int accepted = 0;
    l.on_carrier([&](post::carrier c) {
        ++accepted;
        c.on_received([&](post::message m) { got.emplace_back(m.text()); });
        // An accepted carrier cannot fork: it does not know how to reach its peer again.
        auto twin = c.fork();
        twin.on_error([&, twin](const post::error& e) {
            BOOST_TEST((e.code == post::make_error_code(post::errc::not_supported)));
            ++accepted;
        });
    });
    auto c = post::initiate(ctx, url(tcp_case(), first_port(l.local_endpoints())));
    c.send(post::message(std::string_view("first")));
    auto twin = c.fork();
    twin.send(post::message(std::string_view("forked")));
    run_until(io, [&] { return got.size() == 2 && accepted == 4; });
    BOOST_TEST((std::multiset<std::string>(got.begin(), got.end()) ==
                std::multiset<std::string>{"first", "forked"}));
    BOOST_TEST(twin.association() == c.association());
    BOOST_REQUIRE(twin.path());
    BOOST_REQUIRE(c.path());
    BOOST_TEST(twin.path()->local.port != c.path()->local.port); // a new connection
}

// With `connection: { dormant: true }` a carrier whose connection the peer closed stays
// usable: it turns dormant, and the next send connects again.
BOOST_FIXTURE_TEST_CASE(dormant_carrier_reactivates_on_send, fixture) {
    auto p = post::policy::parse("version: 1\nname: d\nconnection: { dormant: true }\n", "d.yaml");
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), p, {{"tcp"}, "test"});
    std::vector<std::string> got;
    int accepted = 0;
    l.on_carrier([&](post::carrier c) {
        ++accepted;
        c.on_received([&, c](post::message m) mutable {
            got.emplace_back(m.text());
            c.close(); // the server hangs up after each message
        });
    });
    auto c = post::initiate(ctx, url(tcp_case(), first_port(l.local_endpoints())), p);
    int ready = 0;
    bool ended = false;
    c.on_ready([&] { ++ready; });
    c.on_closed([&] { ended = true; });
    c.on_error([&](const post::error&) { ended = true; });
    c.send(post::message(std::string_view("one")));
    run_until(io, [&] { return c.state() == post::carrier_state::dormant; });
    BOOST_TEST(!ended);
    c.send(post::message(std::string_view("two")));
    run_until(io, [&] { return got.size() == 2; });
    BOOST_TEST(got == (std::vector<std::string>{"one", "two"}), boost::test_tools::per_element());
    BOOST_TEST(accepted == 2);
    BOOST_TEST(ready == 2);
    BOOST_TEST(!ended);
    // close() on a dormant carrier ends it cleanly.
    run_until(io, [&] { return c.state() == post::carrier_state::dormant; });
    c.close();
    run_until(io, [&] { return ended; });
    BOOST_TEST((c.state() == post::carrier_state::closed));
}
