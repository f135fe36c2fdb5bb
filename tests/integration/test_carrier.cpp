// Carriers and listeners over the real TCP, UDP and framer plugins (loaded with dlopen), on
// loopback, through every completion style.
#define BOOST_TEST_MODULE carrier
#include <boost/test/unit_test.hpp>

#include <utility>

#include "loopback_support.hpp"

#include <post.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

using post::test::datagram_policy;
using post::test::have_ipv6_loopback;
using post::test::port_of;
using post::test::run_until;
using fixture = post::test::loopback_fixture;

/// A listener that echoes every message back on the carrier it came from.
post::listener echo_listener(post::context& ctx, const std::string& where,
                             const post::policy& p = post::policy::defaults()) {
    auto l = post::listen(ctx, post::local::parse(where), p);
    l.on_carrier([](post::carrier c) {
        c.on_received([c](post::message m) mutable { c.send(std::move(m)); });
    });
    return l;
}

void exchange(fixture& f, const std::string& url, const post::policy& p,
              std::vector<std::string> expected_stack) {
    auto c = post::initiate(f.ctx, post::remote::from_url(url), p);
    std::vector<std::string> got;
    bool ready = false;
    c.on_ready([&] {
        ready = true;
        for (auto text : {"one", "two", "three"})
            c.send(post::message(std::string_view(text)));
    });
    c.on_received([&](post::message m) { got.emplace_back(m.text()); });
    std::vector<post::message_id> sent;
    c.on_sent([&](post::message_id id) { sent.push_back(id); });
    c.on_error([](const post::error& e) { BOOST_FAIL("carrier error: " << e.to_string()); });
    run_until(f.io, [&] { return got.size() == 3 && sent.size() == 3; });
    BOOST_TEST(sent == (std::vector<post::message_id>{1, 2, 3}), boost::test_tools::per_element());
    auto transient = c.transient();
    BOOST_REQUIRE(transient);
    BOOST_TEST(transient->stack == expected_stack, boost::test_tools::per_element());
    BOOST_TEST((transient->ready >= transient->started));
    BOOST_TEST(ready);
    BOOST_TEST(got == (std::vector<std::string>{"one", "two", "three"}),
               boost::test_tools::per_element());
    BOOST_TEST(c.stack() == expected_stack, boost::test_tools::per_element());
    auto path = c.path();
    BOOST_REQUIRE(path);
    BOOST_TEST(path->remote.port == post::remote::from_url(url).port());
    bool closed = false;
    c.on_closed([&] { closed = true; });
    c.close();
    run_until(f.io, [&] { return closed; });
    BOOST_TEST((c.state() == post::carrier_state::closed));
}

} // namespace

BOOST_FIXTURE_TEST_CASE(tcp_ipv4_messages_with_handlers, fixture) {
    auto l = echo_listener(ctx, "127.0.0.1:0");
    BOOST_TEST(l.stacks().front() == (std::vector<std::string>{"framer", "tcp"}),
               boost::test_tools::per_element());
    exchange(*this, "tcp://127.0.0.1:" + std::to_string(port_of(l, false)),
             post::policy::defaults(), {"framer", "tcp"});
}

BOOST_FIXTURE_TEST_CASE(tcp_ipv6_messages, fixture) {
    if (!have_ipv6_loopback()) {
        BOOST_TEST_MESSAGE("skipped: no IPv6 loopback on this machine");
        return;
    }
    auto l = echo_listener(ctx, "[::1]:0");
    exchange(*this, "tcp://[::1]:" + std::to_string(port_of(l, true)), post::policy::defaults(),
             {"framer", "tcp"});
}

BOOST_FIXTURE_TEST_CASE(udp_ipv4_and_ipv6_messages, fixture) {
    auto l4 = echo_listener(ctx, "127.0.0.1:0", datagram_policy());
    exchange(*this, "udp://127.0.0.1:" + std::to_string(port_of(l4, false)), datagram_policy(),
             {"udp"});
    if (!have_ipv6_loopback()) return;
    auto l6 = echo_listener(ctx, "[::1]:0", datagram_policy());
    exchange(*this, "udp://[::1]:" + std::to_string(port_of(l6, true)), datagram_policy(), {"udp"});
}

BOOST_FIXTURE_TEST_CASE(listener_on_any_address_serves_both_families, fixture) {
    auto l = echo_listener(ctx, ":0");
    auto p4 = port_of(l, false);
    BOOST_REQUIRE(p4 != 0);
    exchange(*this, "tcp://127.0.0.1:" + std::to_string(p4), post::policy::defaults(),
             {"framer", "tcp"});
    if (have_ipv6_loopback()) {
        BOOST_TEST(port_of(l, true) == p4);
        exchange(*this, "tcp://[::1]:" + std::to_string(p4), post::policy::defaults(),
                 {"framer", "tcp"});
    }
}

BOOST_FIXTURE_TEST_CASE(large_messages_arrive_whole, fixture) {
    auto l = echo_listener(ctx, "127.0.0.1:0");
    auto c = post::initiate(ctx, post::remote::from_host_port("127.0.0.1", port_of(l, false)));
    std::vector<std::byte> big(3u << 20);
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = std::byte(i * 7 % 251);
    c.send(post::message(big));
    c.send(post::message(std::vector<std::byte>{}));
    std::vector<post::message> got;
    c.on_received([&](post::message m) { got.push_back(std::move(m)); });
    run_until(io, [&] { return got.size() == 2; });
    BOOST_TEST(got[0].size() == big.size());
    BOOST_TEST((std::vector<std::byte>(got[0].data().begin(), got[0].data().end()) == big));
    BOOST_TEST(got[1].size() == 0u);
}

BOOST_AUTO_TEST_CASE(use_future_completion_tokens) {
    asio::io_context io;
    post::context ctx(io, post::test::loopback_options());
    auto l = echo_listener(ctx, "127.0.0.1:0");
    auto port = port_of(l, false);
    auto guard = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });

    auto c = post::async_initiate(ctx, post::remote::from_host_port("127.0.0.1", port),
                                  post::policy::defaults(), asio::use_future)
                 .get();
    BOOST_TEST((c.state() == post::carrier_state::active));
    auto id = c.async_send(post::message(std::string_view("future")), asio::use_future).get();
    BOOST_TEST(id > 0u);
    auto reply = c.async_receive(asio::use_future).get();
    BOOST_TEST(reply.text() == "future");

    // A failed establishment surfaces as an exception from the future.
    auto dead = post::async_initiate(ctx, post::remote::from_url("udp://127.0.0.1:9"),
                                     post::policy::defaults(), asio::use_future);
    BOOST_CHECK_THROW(dead.get(), boost::system::system_error);

    guard.reset();
    c.abort();
    l.close();
    io.stop();
    runner.join();
}

BOOST_FIXTURE_TEST_CASE(use_awaitable_completion_tokens, fixture) {
    auto l = echo_listener(ctx, "127.0.0.1:0");
    auto port = port_of(l, false);
    std::string reply;
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto c =
                co_await post::async_initiate(ctx, post::remote::from_host_port("127.0.0.1", port),
                                              post::policy::defaults(), asio::use_awaitable);
            co_await c.async_send(post::message(std::string_view("awaited")), asio::use_awaitable);
            auto m = co_await c.async_receive(asio::use_awaitable);
            reply = std::string(m.text());
            c.close();
            done = true;
        },
        asio::detached);
    run_until(io, [&] { return done; });
    BOOST_TEST(reply == "awaited");
}

BOOST_FIXTURE_TEST_CASE(carriers_to_one_remote_share_an_association, fixture) {
    auto l = echo_listener(ctx, "127.0.0.1:0");
    auto r = post::remote::from_host_port("127.0.0.1", port_of(l, false));
    auto a = post::initiate(ctx, r);
    auto b = post::initiate(ctx, r);
    int ready = 0;
    a.on_ready([&] { ++ready; });
    b.on_ready([&] { ++ready; });
    run_until(io, [&] { return ready == 2; });
    BOOST_TEST(a.association() == b.association());
    BOOST_TEST(a.association()->carriers_established() == 2u);
    auto learned = a.association()->last_winner();
    BOOST_REQUIRE(learned);
    BOOST_TEST(learned->stack == (std::vector<std::string>{"framer", "tcp"}),
               boost::test_tools::per_element());
    BOOST_TEST(ctx.association_count() == 1u);
}

BOOST_FIXTURE_TEST_CASE(unreachable_remote_lists_every_attempt, fixture) {
    // A port that was just free: nothing listens there.
    std::uint16_t port;
    {
        asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    // tcp:// keeps the race to TCP: the default policy also races UDP stacks (QUIC, SCTP over
    // DTLS), whose failure at a closed port hangs on an ICMP error the kernel may rate-limit
    // when many tests run at once.
    auto c = post::initiate(ctx, post::remote::from_url("tcp://127.0.0.1:" + std::to_string(port)));
    std::optional<post::error> failure;
    bool ready = false;
    c.on_ready([&] { ready = true; });
    c.on_error([&](const post::error& e) { failure = e; });
    run_until(io, [&] { return failure.has_value(); });
    BOOST_TEST(!ready);
    BOOST_TEST(failure->code == post::make_error_code(post::errc::establishment_failed));
    BOOST_TEST(failure->reason.find("[framer, tcp] to 127.0.0.1:" + std::to_string(port)) !=
                   std::string::npos,
               failure->reason);
    BOOST_TEST(failure->reason.find("refused") != std::string::npos, failure->reason);
    BOOST_TEST((c.state() == post::carrier_state::closed));
    // Sending on a failed carrier reports an error, never a crash.
    bool send_failed = false;
    c.on_send_error([&](post::message_id, const post::error&) { send_failed = true; });
    c.send(post::message(std::string_view("late")));
    run_until(io, [&] { return send_failed; });
}

BOOST_FIXTURE_TEST_CASE(scheme_without_a_permitted_stack_is_no_candidate, fixture) {
    auto c = post::initiate(ctx, post::remote::from_url("udp://127.0.0.1:9"));
    std::optional<post::error> failure;
    c.on_error([&](const post::error& e) { failure = e; });
    run_until(io, [&] { return failure.has_value(); });
    BOOST_TEST(failure->code == post::make_error_code(post::errc::no_candidate), failure->reason);
    BOOST_TEST(failure->reason.find("reliability") != std::string::npos, failure->reason);
}

BOOST_FIXTURE_TEST_CASE(oversized_udp_message_is_an_error_and_the_carrier_survives, fixture) {
    auto l = echo_listener(ctx, "127.0.0.1:0", datagram_policy());
    auto c = post::initiate(ctx, post::remote::from_host_port("127.0.0.1", port_of(l, false)),
                            datagram_policy());
    std::optional<post::error> failure;
    std::vector<std::string> got;
    c.on_send_error([&](post::message_id, const post::error& e) { failure = e; });
    c.on_received([&](post::message m) { got.emplace_back(m.text()); });
    c.on_ready([&] {
        BOOST_TEST(c.max_message_size() > 0u);
        c.send(post::message(std::vector<std::byte>(70000)));
        c.send(post::message(std::string_view("small")));
    });
    run_until(io, [&] { return failure && got.size() == 1; });
    BOOST_TEST(failure->code == post::make_error_code(post::errc::message_too_large));
    BOOST_TEST(failure->reason.find("70000") != std::string::npos, failure->reason);
    BOOST_TEST(got[0] == "small");
}

BOOST_FIXTURE_TEST_CASE(garbage_from_a_peer_is_a_protocol_error, fixture) {
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    std::optional<post::error> failure;
    std::vector<std::string> received;
    l.on_carrier([&](post::carrier c) {
        c.on_received([&](post::message m) { received.emplace_back(m.text()); });
        c.on_error([&](const post::error& e) { failure = e; });
    });
    // Before the stack is ready the listener reports it; after, the carrier does.
    l.on_error([&](const post::error& e) { failure = e; });
    asio::ip::tcp::socket raw(io);
    raw.connect({asio::ip::make_address("127.0.0.1"), port_of(l, false)});
    const unsigned char junk[] = {0xFF, 0xFF, 0xFF, 0xFF, 'j', 'u', 'n', 'k'};
    asio::write(raw, asio::buffer(junk));
    run_until(io, [&] { return failure.has_value(); });
    BOOST_TEST(failure->code == post::make_error_code(post::errc::protocol_error), failure->reason);
    BOOST_TEST(!failure->reason.empty());
    BOOST_TEST(received.empty());
}

BOOST_FIXTURE_TEST_CASE(a_port_another_socket_holds_fails_the_listen_by_name, fixture) {
    // A policy that listens over [framer, tcp] and [udp] on one port. With TCP taken by
    // another program, listening over UDP alone would split the port's clients between two
    // servers: listen() fails instead, naming the stack and the reason, and binds nothing.
    const auto both = post::policy::parse(
        "version: 1\nname: both\nselection:\n  reliability: no-preference\n", "both.yaml");
    asio::ip::tcp::acceptor other(io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = std::to_string(other.local_endpoint().port());
    try {
        auto l = post::listen(ctx, post::local::parse("127.0.0.1:" + port), both);
        BOOST_FAIL("listen succeeded on a taken port, over " << l.stacks().size() << " stacks");
    } catch (const boost::system::system_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("the port is taken") != std::string::npos, what);
        BOOST_TEST(what.find("tcp] on 127.0.0.1:" + port) != std::string::npos, what);
    }
    // Once the other program is gone, both stacks listen on the port.
    other.close();
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:" + port), both);
    BOOST_TEST(l.stacks().size() == 2u);
    BOOST_TEST(l.left_out().empty());
}

BOOST_FIXTURE_TEST_CASE(async_accept_and_trace_events, fixture) {
    std::vector<post::trace_event::kind> kinds;
    ctx.on_trace([&](const post::trace_event& e) { kinds.push_back(e.what); });
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    post::carrier accepted;
    l.async_accept([&](boost::system::error_code ec, post::carrier c) {
        BOOST_TEST(!ec);
        accepted = c;
    });
    auto c = post::initiate(ctx, post::remote::from_host_port("127.0.0.1", port_of(l, false)));
    c.send(post::message(std::string_view("queued before ready")));
    run_until(io, [&] { return static_cast<bool>(accepted); });
    std::string text;
    accepted.async_receive([&](boost::system::error_code ec, post::message m) {
        BOOST_TEST(!ec);
        text = std::string(m.text());
    });
    run_until(io, [&] { return !text.empty(); });
    BOOST_TEST(text == "queued before ready");
    auto has = [&](post::trace_event::kind k) {
        return std::find(kinds.begin(), kinds.end(), k) != kinds.end();
    };
    BOOST_TEST(has(post::trace_event::kind::listener_started));
    BOOST_TEST(has(post::trace_event::kind::attempt_started));
    BOOST_TEST(has(post::trace_event::kind::attempt_won));
    BOOST_TEST(has(post::trace_event::kind::accepted));
}

BOOST_FIXTURE_TEST_CASE(host_names_resolve_through_the_resolver, fixture) {
    std::string resolved;
    ctx.on_trace([&](const post::trace_event& e) {
        if (e.what == post::trace_event::kind::resolved) resolved = e.detail;
    });
    auto l = echo_listener(ctx, ":0");
    auto port = port_of(l, false);
    auto c = post::initiate(ctx, post::remote::from_url("tcp://localhost:" + std::to_string(port)));
    std::string reply;
    c.on_ready([&] { c.send(post::message(std::string_view("by name"))); });
    c.on_received([&](post::message m) { reply = std::string(m.text()); });
    run_until(io, [&] { return !reply.empty(); });
    BOOST_TEST(reply == "by name");
    BOOST_TEST(resolved.find("127.0.0.1") != std::string::npos, resolved);
    BOOST_TEST(c.path()->remote.address.is_loopback());
}
