// SCTP through the kernel, from policies: carriers over [sctp, udp] and over [sctp, dtls, udp]
// (the WebRTC data-channel stack: SCTP inside DTLS inside UDP) echo messages with their
// boundaries; over DTLS the server's certificate is verified, and an untrusted one is refused.
// Multistreaming: fork() opens streams on one association (no new handshake), against a
// server in this process and against `post listen` in another; a server opens a stream to the
// client (on_incoming); streams close one by one, and all of them when the listener process
// stops; with the stream count exhausted, fork() falls back to a new association; an urgent
// stream overtakes a backlog on another (the priority scheduler). The stream cases run with the
// other end in this process and in a `post listen --echo` process.
#define BOOST_TEST_MODULE sctp carriers
#include <utility>

#include "../support/child_process.hpp"
#include "../support/test_pki.hpp"
#include "loopback_support.hpp"
#include "stream_carriers_support.hpp"

#include <boost/asio/ip/udp.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

using namespace post;
using namespace post::test;

namespace {

policy sctp_policy(const std::string& stack, const std::string& protocols = {}) {
    return policy::parse("version: 1\nname: sctp\nstacks:\n  - " + stack + "\n" + protocols,
                         "sctp.yaml");
}

std::string dtls_server(const cert_files& cert) {
    return "protocols:\n  dtls: { cert-file: " + cert.cert + ", key-file: " + cert.key + " }\n";
}

std::string dtls_client(const test_pki& pki) {
    return "protocols:\n  dtls: { ca-file: " + pki.ca + " }\n";
}

/// Echoes every message back on its carrier.
struct echo_server {
    listener l;
    explicit echo_server(context& ctx, const policy& p)
        : l(listen(ctx, local::parse("127.0.0.1:0"), p)) {
        l.on_carrier(
            [](carrier c) { c.on_received([c](message m) mutable { c.send(std::move(m)); }); });
    }
    remote where() const {
        return remote::from_url("sctp://localhost:" + std::to_string(port_of(l)));
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(sctp_over_udp_echoes_messages_with_their_boundaries) {
    loopback_fixture f;
    echo_server server(f.ctx, sctp_policy("[sctp, udp]"));
    auto got = exchange(f.io, f.ctx, server.where(), sctp_policy("[sctp, udp]"),
                        {"a", std::string(70000, 'b'), "last"}, "sctp");
    BOOST_REQUIRE_MESSAGE(
        std::holds_alternative<std::vector<std::string>>(got),
        (std::holds_alternative<error>(got) ? std::get<error>(got).to_string() : std::string()));
    BOOST_TEST(std::get<std::vector<std::string>>(got) ==
                   (std::vector<std::string>{"a", std::string(70000, 'b'), "last"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(sctp_over_dtls_over_udp_is_the_data_channel_stack) {
    test_pki pki;
    loopback_fixture f;
    std::vector<std::string> dtls_log;
    f.ctx.on_trace([&](const trace_event& e) {
        if (e.what == trace_event::kind::layer_log && !e.stack.empty() && e.stack[0] == "dtls")
            dtls_log.push_back(e.detail);
    });
    echo_server server(f.ctx, sctp_policy("[sctp, dtls, udp]", dtls_server(pki.server)));
    const std::vector<std::string> sent{"a", std::string(70000, 'b'), "last"};
    auto got = exchange(f.io, f.ctx, server.where(),
                        sctp_policy("[sctp, dtls, udp]", dtls_client(pki)), sent, "sctp");
    BOOST_REQUIRE_MESSAGE(
        std::holds_alternative<std::vector<std::string>>(got),
        (std::holds_alternative<error>(got) ? std::get<error>(got).to_string() : std::string()));
    BOOST_TEST(std::get<std::vector<std::string>>(got) == sent, boost::test_tools::per_element());
    bool handshake = false;
    for (const auto& l : dtls_log)
        handshake |= l.find("handshake complete") != std::string::npos;
    BOOST_TEST(handshake, "no DTLS handshake in the dtls layer's log");
}

BOOST_AUTO_TEST_CASE(sctp_over_dtls_refuses_an_untrusted_server) {
    test_pki pki;
    loopback_fixture f;
    echo_server server(f.ctx, sctp_policy("[sctp, dtls, udp]", dtls_server(pki.foreign)));
    auto got = exchange(f.io, f.ctx, server.where(),
                        sctp_policy("[sctp, dtls, udp]", dtls_client(pki)), {"never"}, "sctp");
    BOOST_REQUIRE(std::holds_alternative<error>(got));
    BOOST_TEST_MESSAGE(std::get<error>(got).to_string());
    BOOST_TEST(std::get<error>(got).to_string().find("certificate") != std::string::npos,
               std::get<error>(got).to_string());
}

// ---- multistreaming ----

namespace {

/// Echo carriers counted as the listener hands them out.
struct counting_echo_server : echo_server {
    int carriers = 0;
    counting_echo_server(context& ctx, const policy& p)
        : echo_server(ctx, p) {
        l.on_carrier([this](carrier c) {
            ++carriers;
            c.on_received([c](message m) mutable { c.send(std::move(m)); });
        });
    }
};

/// A UDP port free a moment ago (the listener is retried should another process take it).
std::uint16_t free_udp_port() {
    boost::asio::io_context io;
    boost::asio::ip::udp::socket s(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return s.local_endpoint().port();
}

/// `post listen --echo` in a child process: the other end of the association is not ours.
struct external_echo {
    std::optional<child_process> proc;
    std::uint16_t port = 0;
    external_echo() {
        for (int attempt = 0; attempt < 5 && !proc; ++attempt) {
            port = free_udp_port();
            proc.emplace(std::vector<std::string>{POST_TOOL, "listen",
                                                  "sctp://127.0.0.1:" + std::to_string(port),
                                                  "--echo"},
                         child_stdout::discard);
            if (proc->wait_for_line("listening on").empty()) proc.reset();
        }
        BOOST_REQUIRE_MESSAGE(proc, "post listen did not start");
    }
    remote where() const { return remote::from_url("sctp://127.0.0.1:" + std::to_string(port)); }
};

/// Three carriers on one association: the first initiated, two forked from it; every one
/// echoes its own messages in order, with their boundaries.
void three_streams_on_one_association(loopback_fixture& f, trace_counts& counts,
                                      const remote& where) {
    stream_client client;
    client.add(initiate(f.ctx, where, sctp_policy("[sctp, udp]")));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    client.add(client.carriers[1].fork()); // a forked carrier forks too
    client.send_all(4);
    run_until(f.io, [&] { return client.all_echoed(4) || client.failure.has_value(); });
    BOOST_REQUIRE_MESSAGE(!client.failure,
                          (client.failure ? client.failure->to_string() : std::string()));
    client.check_echoes(4);
    BOOST_TEST(counts.forked == 2, "forked streams traced: " << counts.forked);
    // One association: the three carriers share the one UDP socket below.
    std::set<std::string> locals;
    for (auto& c : client.carriers) {
        BOOST_REQUIRE(c.path());
        BOOST_TEST(c.stack() == (std::vector<std::string>{"sctp", "udp"}),
                   boost::test_tools::per_element());
        locals.insert(c.path()->local.to_string());
    }
    BOOST_TEST(locals.size() == 1u, "carriers on different sockets: " << locals.size());
}

} // namespace

BOOST_AUTO_TEST_CASE(forked_carriers_are_streams_of_one_association) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    counting_echo_server server(f.ctx, sctp_policy("[sctp, udp]"));
    three_streams_on_one_association(f, counts, server.where());
    // The listener accepted one association and handed out a carrier per stream.
    BOOST_TEST(counts.accepted == 1);
    BOOST_TEST(server.carriers == 3);
    BOOST_TEST(counts.incoming == 2);
}

BOOST_AUTO_TEST_CASE(forked_carriers_against_post_listen_in_another_process) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    external_echo server;
    three_streams_on_one_association(f, counts, server.where());
    BOOST_TEST(counts.accepted == 0); // nothing of the server side runs here
}

BOOST_AUTO_TEST_CASE(streams_end_when_the_listener_process_stops) {
    loopback_fixture f;
    external_echo server;
    stream_client client;
    client.add(initiate(f.ctx, server.where(), sctp_policy("[sctp, udp]")));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    client.send_all(2);
    run_until(f.io, [&] { return client.all_echoed(2) || client.failure.has_value(); });
    int closed = 0;
    for (auto& c : client.carriers)
        c.on_closed([&] { ++closed; });
    // post listen closes its carriers when terminated: SHUTDOWN, not a silent disappearance,
    // so both streams end now rather than after the peer is presumed lost.
    server.proc->signal(SIGTERM);
    run_until(f.io, [&] { return closed == 2; });
    BOOST_TEST(server.proc->wait_exit() == 0);
    for (auto& c : client.carriers)
        BOOST_TEST((c.state() == carrier_state::closed));
}

BOOST_AUTO_TEST_CASE(a_server_opens_a_stream_to_its_client) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), sctp_policy("[sctp, udp]"));
    std::vector<carrier> server_side;
    std::vector<std::string> replies; // what the client sent back on the server's stream
    l.on_carrier([&](carrier c) {
        server_side.push_back(c);
        if (server_side.size() > 1) return;
        // The first carrier forks a stream of its own towards the client.
        carrier pushed = c.fork();
        pushed.on_received([&](message m) { replies.emplace_back(m.text()); });
        pushed.send(message(std::string_view("pushed by the server")));
        server_side.push_back(pushed);
    });
    auto c = initiate(f.ctx, remote::from_url("sctp://127.0.0.1:" + std::to_string(port_of(l))),
                      sctp_policy("[sctp, udp]"));
    std::vector<carrier> incoming;
    std::vector<std::string> pushed;
    c.on_incoming([&](carrier in) {
        in.on_received([&, in](message m) mutable {
            pushed.emplace_back(m.text());
            in.send(message(std::string_view("thanks")));
        });
        incoming.push_back(in);
    });
    c.send(message(std::string_view("hello"))); // the server learns of the association
    run_until(f.io, [&] { return !replies.empty(); });
    BOOST_TEST(incoming.size() == 1u);
    BOOST_TEST(pushed == (std::vector<std::string>{"pushed by the server"}),
               boost::test_tools::per_element());
    BOOST_TEST(replies == (std::vector<std::string>{"thanks"}), boost::test_tools::per_element());
    BOOST_TEST(counts.accepted == 1);
    BOOST_TEST(counts.forked == 1);   // on the server
    BOOST_TEST(counts.incoming == 1); // on the client
}

BOOST_AUTO_TEST_CASE(closing_one_stream_leaves_the_others_working) {
    loopback_fixture f;
    counting_echo_server server(f.ctx, sctp_policy("[sctp, udp]"));
    std::vector<carrier> server_carriers;
    int server_closed = 0;
    server.l.on_carrier([&](carrier c) {
        c.on_received([c](message m) mutable { c.send(std::move(m)); });
        c.on_closed([&] { ++server_closed; });
        server_carriers.push_back(c);
    });
    stream_client client;
    client.add(initiate(f.ctx, server.where(), sctp_policy("[sctp, udp]")));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    client.send_all(1);
    run_until(f.io, [&] { return client.all_echoed(1); });
    bool closed = false;
    client.carriers[1].on_closed([&] { closed = true; });
    client.carriers[1].close();
    run_until(f.io, [&] { return closed && server_closed == 1; });
    BOOST_TEST(!client.carriers[1].last_error());
    // The first stream still carries messages both ways.
    client.carriers[0].send(message(std::string_view("after")));
    run_until(f.io, [&] { return client.echoes[0].size() == 2; });
    BOOST_TEST(client.echoes[0].back() == "after");
    BOOST_TEST((client.carriers[0].state() == carrier_state::active));
    BOOST_TEST(server_closed == 1);
}

namespace {

/// With two streams each way the client's ids are the even ones, so only stream 0 is its own:
/// fork() falls back to a second association (the client alone asks for the count).
void fork_without_streams_left(loopback_fixture& f, trace_counts& counts, const remote& where) {
    const std::string two = "protocols:\n  sctp: { streams: 2 }\n";
    stream_client client;
    client.add(initiate(f.ctx, where, sctp_policy("[sctp, udp]", two)));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    client.send_all(2);
    run_until(f.io, [&] { return client.all_echoed(2) || client.failure.has_value(); });
    BOOST_REQUIRE_MESSAGE(!client.failure,
                          (client.failure ? client.failure->to_string() : std::string()));
    client.check_echoes(2);
    BOOST_TEST(counts.forked == 0);
    BOOST_TEST(client.carriers[0].path()->local.to_string() !=
               client.carriers[1].path()->local.to_string());
}

/// A backlog of niceness-9 messages on one stream, then one niceness-0 message on a forked
/// stream: the priority scheduler sends it ahead of the backlog, so its echo comes back before
/// the backlog's last echoes (arrival order, not timing).
void urgent_stream_overtakes_a_backlog(loopback_fixture& f, const remote& where) {
    constexpr int backlog = 48;
    auto bulk = initiate(f.ctx, where, sctp_policy("[sctp, udp]"));
    wait_ready(f.io, bulk);
    auto urgent = bulk.fork();
    wait_ready(f.io, urgent);
    std::vector<std::string> order; // "b" or "u", as echoes arrive
    bulk.on_received([&](message) { order.emplace_back("b"); });
    urgent.on_received([&](message) { order.emplace_back("u"); });
    for (int i = 0; i < backlog; ++i) {
        message m(std::string(64 * 1024, 'b'));
        m.properties().niceness = 9;
        bulk.send(std::move(m));
    }
    message u(std::string_view("urgent"));
    u.properties().niceness = 0;
    urgent.send(std::move(u));
    run_until(f.io, [&] { return order.size() == backlog + 1; });
    const auto at = std::find(order.begin(), order.end(), "u") - order.begin();
    BOOST_TEST_MESSAGE("urgent echo arrived after " << at << " of " << backlog << " bulk echoes");
    BOOST_TEST(at < backlog / 2, "the urgent message waited behind " << at << " of " << backlog);
}

} // namespace

BOOST_AUTO_TEST_CASE(with_no_stream_left_fork_opens_a_new_association) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    counting_echo_server server(f.ctx, sctp_policy("[sctp, udp]"));
    fork_without_streams_left(f, counts, server.where());
    BOOST_TEST(counts.accepted == 2); // a second association
}

BOOST_AUTO_TEST_CASE(with_no_stream_left_against_post_listen_in_another_process) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    external_echo server;
    fork_without_streams_left(f, counts, server.where());
}

BOOST_AUTO_TEST_CASE(an_urgent_stream_overtakes_a_backlog) {
    loopback_fixture f;
    counting_echo_server server(f.ctx, sctp_policy("[sctp, udp]"));
    urgent_stream_overtakes_a_backlog(f, server.where());
}

BOOST_AUTO_TEST_CASE(an_urgent_stream_overtakes_a_backlog_across_processes) {
    loopback_fixture f;
    external_echo server;
    urgent_stream_overtakes_a_backlog(f, server.where());
}
