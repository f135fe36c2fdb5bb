// Establishment on loopback, without namespaces: binding to a pinned local, the policy's
// interface rules for initiate and listen, the learned winner and its expiry, and the
// listener's connection limit. (tests/cli/establishment.sh covers dropped paths and DNS in
// network namespaces.)
#define BOOST_TEST_MODULE establishment
#include "loopback_support.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <vector>

using namespace post;
using namespace post::test;
namespace utf = boost::unit_test;

namespace {

policy with(const std::string& extra) {
    return policy::parse("version: 1\nname: t\n" + extra, "t.yaml");
}

remote tcp_remote(const std::string& host, std::uint16_t port) {
    return remote::from_url("tcp://" + host + ":" + std::to_string(port));
}

/// Every attempt-started event's detail, in order (clear() between races).
struct attempt_log {
    std::shared_ptr<std::vector<std::string>> started =
        std::make_shared<std::vector<std::string>>();
    explicit attempt_log(context& ctx) {
        ctx.on_trace([s = started](const trace_event& e) {
            if (e.what == trace_event::kind::attempt_started) s->push_back(e.detail);
        });
    }
};

/// Watches a carrier from its creation (ready fires once, while the loop runs).
struct watched {
    carrier c;
    std::shared_ptr<bool> ready = std::make_shared<bool>(false);
    std::shared_ptr<std::optional<error>> failed = std::make_shared<std::optional<error>>();
    explicit watched(carrier cc)
        : c(std::move(cc)) {
        c.on_ready([r = ready] { *r = true; });
        c.on_error([f = failed](const error& e) { *f = e; });
    }
};

/// Waits for the carrier's ready or error; returns the error (empty on ready).
std::optional<error> wait_ready(boost::asio::io_context& io, watched& w) {
    run_until(io, [&] { return *w.ready || w.failed->has_value(); });
    return *w.failed;
}

} // namespace

BOOST_FIXTURE_TEST_CASE(a_pinned_local_address_is_the_source, loopback_fixture) {
    auto l = listen(ctx, local::parse("127.0.0.1:0"), policy::defaults(), {{"tcp"}, "test"});
    local from;
    from.address = boost::asio::ip::make_address("127.0.0.2"); // also on lo
    watched c(initiate(ctx, tcp_remote("127.0.0.1", port_of(l)), from));
    auto e = wait_ready(io, c);
    BOOST_REQUIRE_MESSAGE(!e, (e ? e->reason : std::string()));
    auto p = c.c.path();
    BOOST_REQUIRE(p.has_value());
    BOOST_TEST(p->local.address.to_string() == "127.0.0.2");
    c.c.close();
}

BOOST_FIXTURE_TEST_CASE(a_pinned_address_that_is_not_ours_fails_with_why, loopback_fixture) {
    local from;
    from.address = boost::asio::ip::make_address("192.0.2.77"); // TEST-NET-1: not on this host
    watched c(initiate(ctx, tcp_remote("127.0.0.1", 9), from));
    auto e = wait_ready(io, c);
    BOOST_REQUIRE(e.has_value());
    // The attempt's bind fails, and the establishment error says so.
    BOOST_TEST(e->reason.find("bind to 192.0.2.77") != std::string::npos, e->reason);
}

BOOST_FIXTURE_TEST_CASE(interface_rules_that_leave_no_local_fail_listing_the_attempt,
                        loopback_fixture) {
    watched c(initiate(ctx, tcp_remote("127.0.0.1", 9),
                       with("selection:\n  interface: { prohibit: [loopback] }\n")));
    auto e = wait_ready(io, c);
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == errc::establishment_failed));
    BOOST_TEST(e->reason.find("no IPv4 local address that the policy's interface rules allow") !=
                   std::string::npos,
               e->reason);
}

BOOST_FIXTURE_TEST_CASE(interface_rules_bind_attempts_to_the_allowed_locals, loopback_fixture) {
    attempt_log log(ctx);
    auto l = listen(ctx, local::parse("127.0.0.1:0"), policy::defaults(), {{"tcp"}, "test"});
    watched c(initiate(ctx, tcp_remote("127.0.0.1", port_of(l)),
                       with("selection:\n  interface: { prefer: [loopback] }\n")));
    auto e = wait_ready(io, c);
    BOOST_REQUIRE_MESSAGE(!e, (e ? e->reason : std::string()));
    BOOST_REQUIRE(!log.started->empty());
    BOOST_TEST(log.started->front().find(" from 127.0.0.1 (lo)") != std::string::npos,
               log.started->front());
    auto p = c.c.path();
    BOOST_REQUIRE(p.has_value());
    BOOST_TEST(p->interface == "lo");
    c.c.close();
}

BOOST_FIXTURE_TEST_CASE(a_listener_with_interface_rules_binds_only_the_allowed_addresses,
                        loopback_fixture) {
    auto l = listen(ctx, local::any(0), with("selection:\n  interface: { require: [loopback] }\n"),
                    {{"tcp"}, "test"});
    const auto eps = l.local_endpoints();
    BOOST_REQUIRE(!eps.empty());
    for (const auto& ep : eps) {
        BOOST_TEST(!ep.address.is_unspecified(), ep.to_string());
        BOOST_TEST(ep.address.is_loopback(), ep.to_string());
    }
    auto none = [&] {
        listen(ctx, local::any(0),
               with("selection:\n  interface: { require: [cellular], prohibit: [loopback] }\n"),
               {{"tcp"}, "test"});
    };
    BOOST_CHECK_EXCEPTION(none(), boost::system::system_error, [](const auto& e) {
        return std::string(e.what()).find("no local address is allowed") != std::string::npos;
    });
}

BOOST_FIXTURE_TEST_CASE(the_learned_winner_goes_first_until_the_history_expires, loopback_fixture) {
    // Two stacks to one address: [framer, tls, tcp] ranks first but the listener speaks plain
    // post-frame, so [framer, tcp] wins (after the TLS attempt fails or the attempt delay).
    auto l = listen(ctx, local::parse("127.0.0.1:0"), policy::defaults(), {{"tcp"}, "test"});
    const auto r = remote::from_host_port("127.0.0.1", port_of(l));
    const std::string stacks = "stacks:\n  - [framer, tls, tcp]\n  - [framer, tcp]\n"
                               "racing: { attempt-delay: 100ms";
    const policy learning = with(stacks + " }\n");
    const policy forgetting = with(stacks + ", history-expiry: 0ms }\n");
    auto stacks_started = std::make_shared<std::vector<std::string>>();
    ctx.on_trace([stacks_started](const trace_event& e) {
        if (e.what != trace_event::kind::attempt_started) return;
        std::string s;
        for (const auto& layer : e.stack)
            s += (s.empty() ? "" : ",") + layer;
        stacks_started->push_back(s);
    });
    auto race = [&](const policy& p) {
        stacks_started->clear();
        watched c(initiate(ctx, r, p));
        auto e = wait_ready(io, c);
        BOOST_REQUIRE_MESSAGE(!e, (e ? e->reason : std::string()));
        BOOST_TEST(c.c.stack() == (std::vector<std::string>{"framer", "tcp"}));
        c.c.close();
        return *stacks_started;
    };
    const std::vector<std::string> both{"framer,tls,tcp", "framer,tcp"};
    const std::vector<std::string> winner_alone{"framer,tcp"};
    BOOST_TEST(race(learning) == both, boost::test_tools::per_element());
    // The winner first and alone: no TLS attempt, no delay.
    BOOST_TEST(race(learning) == winner_alone, boost::test_tools::per_element());
    // A history that expires at once: ordered afresh.
    BOOST_TEST(race(forgetting) == both, boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(a_listener_refuses_connections_beyond_its_limit, loopback_fixture) {
    policy limited = policy::defaults();
    limited.connection.max_connections = 2;
    auto l = listen(ctx, local::parse("127.0.0.1:0"), limited, {{"tcp"}, "test"});
    std::vector<carrier> accepted;
    std::vector<error> listener_errors;
    std::vector<std::string> received;
    l.on_carrier([&](carrier c) {
        c.on_received([&](message m) { received.emplace_back(m.text()); });
        accepted.push_back(c);
    });
    l.on_error([&](const error& e) { listener_errors.push_back(e); });
    const auto r = tcp_remote("127.0.0.1", port_of(l));
    watched a(initiate(ctx, r)), b(initiate(ctx, r));
    BOOST_REQUIRE(!wait_ready(io, a));
    BOOST_REQUIRE(!wait_ready(io, b));
    run_until(io, [&] { return accepted.size() == 2u; });

    carrier third = initiate(ctx, r);
    bool third_ended = false;
    third.on_error([&](const error&) { third_ended = true; });
    third.on_closed([&] { third_ended = true; });
    run_until(io, [&] { return !listener_errors.empty(); });
    BOOST_TEST((listener_errors[0].code == errc::resource_limit));
    BOOST_TEST(listener_errors[0].reason.find("max-connections") != std::string::npos);
    run_until(io, [&] { return third_ended; });
    BOOST_TEST(accepted.size() == 2u);

    // The two carriers already there are unharmed.
    a.c.send(message(std::string_view("still here a")));
    b.c.send(message(std::string_view("still here b")));
    run_until(io, [&] { return received.size() == 2u; });

    // Once one closes, a new connection is welcome again.
    accepted[0].close();
    a.c.close();
    run_until(io, [&] { return accepted[0].state() == carrier_state::closed; });
    watched fourth(initiate(ctx, r));
    BOOST_REQUIRE(!wait_ready(io, fourth));
    run_until(io, [&] { return accepted.size() == 3u; });
}
