// QUIC through the kernel, from policies: carriers over [quic, udp] echo messages with their
// boundaries after a verified TLS 1.3 handshake; an untrusted server is refused with the
// reason. Multistreaming: fork() opens a stream of the same connection (trace `forked`, one
// accepted connection, a carrier per stream at the listener), and a server opens a stream to
// its client (carrier::on_incoming). Unreliable messages (reliable=false) travel as QUIC
// DATAGRAM frames; one too large for a packet fails by name. 0-RTT: the second carrier to a
// server resumes from the ticket the association kept, and its idempotent message goes early
// (the kernel's offer_early path), and the server's carrier gets it marked early-data; a context
// restarted with the association file resumes too. Migration: carrier::migrate moves every
// stream carrier of a connection; a stack that cannot migrate is refused by name; as root, in a
// network namespace of its own, removing the local address moves both carriers automatically.
// Unidirectional streams: initiate_source sends on a unidirectional stream to open_sink or to a
// listener (whose carrier is receive-only and refuses to send by name), forks send-only, and
// shares its connection with a bidirectional stream the server opens.
#define BOOST_TEST_MODULE quic carriers
#include <utility>

#include "../support/test_pki.hpp"
#include "carrier_log_support.hpp"
#include "loopback_support.hpp"
#include "stream_carriers_support.hpp"

#include <post/sink.hpp>
#include <post/source.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

using namespace post;
using namespace post::test;

namespace {

const test_pki& pki() {
    static test_pki p;
    return p;
}

/// [quic, udp] with the test PKI: the server's certificate and the CA that issued it.
policy quic_policy(const cert_files& cert = pki().server) {
    return policy::parse("version: 1\nname: quic\nstacks:\n  - [quic, udp]\nprotocols:\n"
                         "  quic: { cert-file: " +
                             cert.cert + ", key-file: " + cert.key + ", ca-file: " + pki().ca +
                             " }\n",
                         "quic.yaml");
}

/// Echoes every message back on its carrier; counts the carriers the listener hands out.
struct echo_server {
    listener l;
    int carriers = 0;
    echo_server(context& ctx, const policy& p)
        : l(listen(ctx, local::parse("127.0.0.1:0"), p)) {
        l.on_carrier([this](carrier c) {
            ++carriers;
            c.on_received([c](message m) mutable { c.send(std::move(m)); });
        });
    }
    remote where() const {
        return remote::from_url("quic://localhost:" + std::to_string(port_of(l)));
    }
};

/// [quic, udp] whose server side accepts 0-RTT (early-data: true).
policy quic_early_policy() {
    return policy::parse("version: 1\nname: quic\nstacks:\n  - [quic, udp]\nprotocols:\n"
                         "  quic: { cert-file: " +
                             pki().server.cert + ", key-file: " + pki().server.key +
                             ", ca-file: " + pki().ca + ", early-data: true }\n",
                         "quic-early.yaml");
}

} // namespace

BOOST_AUTO_TEST_CASE(quic_carrier_zero_rtt) {
    loopback_fixture f;
    layer_log log(f.ctx, "quic");
    recording_echo server(f.ctx, quic_early_policy(), "quic");
    const auto client = quic_policy();
    round_trip(f.io, f.ctx, server.where(), client, "first", false);
    BOOST_TEST(log.has("full handshake (no ticket)"), log.all());
    BOOST_TEST(log.has("stored a session ticket for quic/localhost/post (early data allowed)"),
               log.all());
    round_trip(f.io, f.ctx, server.where(), client, "second", true);
    BOOST_TEST(log.has("resumed session"), log.all());
    // Both sides say so: the client's verdict and the server's.
    std::size_t accepted = 0;
    for (const auto& l : log.lines)
        accepted += l.find("early data accepted") != std::string::npos ? 1 : 0;
    BOOST_TEST(accepted == 2u, log.all());
    // Once each: 0-RTT data is not delivered again after the handshake.
    BOOST_TEST(server.got == (std::vector<std::string>{"first", "second"}),
               boost::test_tools::per_element());
    // Not idempotent: resumed, but it waits for the handshake.
    const auto before = log.lines.size();
    round_trip(f.io, f.ctx, server.where(), client, "third", false);
    std::size_t early_after = 0;
    for (std::size_t i = before; i < log.lines.size(); ++i)
        early_after += log.lines[i].find("early data accepted") != std::string::npos ? 1 : 0;
    BOOST_TEST(early_after == 0u, log.all());
    BOOST_TEST(server.got.back() == "third");
}

// Through the kernel: the listener hands out the carrier whose first flow became ready on
// accepted 0-RTT data (before the QUIC handshake completed), and a message that arrived in
// 0-RTT carries properties().extra["early-data"] = "true" (it could be a replay); one sent
// after the handshake, on the same carrier, does not.
BOOST_AUTO_TEST_CASE(quic_carrier_marks_messages_that_came_in_early_data) {
    loopback_fixture f;
    std::vector<std::pair<std::string, std::string>> got; // text, its early-data mark
    auto l = listen(f.ctx, local::parse("127.0.0.1:0"), quic_early_policy());
    l.on_carrier([&got](carrier c) {
        c.on_received([&got, c](message m) mutable {
            const auto& extra = m.properties().extra;
            const auto it = extra.find("early-data");
            got.emplace_back(std::string(m.text()), it == extra.end() ? "-" : it->second);
            c.send(std::move(m));
        });
    });
    const auto where = remote::from_url("quic://localhost:" + std::to_string(port_of(l)));
    const auto client = quic_policy();
    round_trip(f.io, f.ctx, where, client, "ticket", false); // leaves a ticket with 0-RTT
    auto c = initiate(f.ctx, where, client);
    message first("early");
    first.properties().idempotent = true;
    c.send(std::move(first));
    int echoes = 0;
    bool closed = false;
    std::optional<error> failure;
    c.on_received([&](message) {
        // The carrier is up: this one goes after the handshake, in 1-RTT.
        if (++echoes == 1)
            c.send(message("late"));
        else
            c.close();
    });
    c.on_error([&](const error& e) { failure = e; });
    c.on_closed([&] { closed = true; });
    run_until(f.io, [&] { return closed || failure; });
    BOOST_REQUIRE_MESSAGE(!failure, (failure ? failure->to_string() : std::string()));
    const std::vector<std::pair<std::string, std::string>> want{
        {"ticket", "-"}, {"early", "true"}, {"late", "-"}};
    BOOST_TEST((got == want), [&] {
        std::string s;
        for (const auto& [text, mark] : got)
            s += " " + text + "=" + mark;
        return s;
    }());
}

BOOST_AUTO_TEST_CASE(quic_resumes_from_the_association_file) {
    const auto file = pki().dir() / "quic-associations.json";
    std::filesystem::remove(file);
    boost::asio::io_context server_io;
    // The server lives across both client "runs" (its ticket key is per layer instance).
    context server_ctx(server_io, loopback_options());
    recording_echo server(server_ctx, quic_early_policy(), "quic");
    const auto client = quic_policy();
    auto run_client = [&](const std::string& text) {
        auto o = loopback_options();
        o.association_file = file;
        boost::asio::io_context io;
        context ctx(io, o);
        layer_log log(ctx, "quic");
        auto c = initiate(ctx, server.where(), client);
        message m(text);
        m.properties().idempotent = true;
        c.send(std::move(m));
        bool done = false;
        std::optional<error> failure;
        c.on_received([&](message) { c.close(); });
        c.on_closed([&] { done = true; });
        c.on_error([&](const error& e) { failure = e; });
        poll_both_until(io, server_io, [&] { return done || failure; });
        BOOST_REQUIRE_MESSAGE(done, (failure ? failure->to_string() : std::string("timed out")));
        io.poll();
        return log;
    };
    auto first = run_client("run 1");
    BOOST_TEST(first.has("full handshake"), first.all());
    BOOST_REQUIRE(std::filesystem::exists(file));
    auto second = run_client("run 2");
    BOOST_TEST(second.has("resumed session"), second.all());
    BOOST_TEST(second.has("early data accepted"), second.all());
    BOOST_TEST(server.got == (std::vector<std::string>{"run 1", "run 2"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(quic_over_udp_echoes_messages_with_their_boundaries) {
    loopback_fixture f;
    echo_server server(f.ctx, quic_policy());
    const std::vector<std::string> sent{"a", std::string(70000, 'b'), "", "last"};
    auto got = exchange(f.io, f.ctx, server.where(), quic_policy(), sent, "quic");
    BOOST_REQUIRE_MESSAGE(
        std::holds_alternative<std::vector<std::string>>(got),
        (std::holds_alternative<error>(got) ? std::get<error>(got).to_string() : std::string()));
    BOOST_TEST(std::get<std::vector<std::string>>(got) == sent, boost::test_tools::per_element());
    BOOST_TEST(server.carriers == 1);
}

BOOST_AUTO_TEST_CASE(an_untrusted_server_is_refused_with_the_reason) {
    loopback_fixture f;
    echo_server server(f.ctx, quic_policy(pki().foreign));
    auto got = exchange(f.io, f.ctx, server.where(), quic_policy(), {"never"}, "quic");
    BOOST_REQUIRE(std::holds_alternative<error>(got));
    const auto why = std::get<error>(got).to_string();
    BOOST_TEST(why.find("untrusted") != std::string::npos, why);
    BOOST_TEST(server.carriers == 0);
}

BOOST_AUTO_TEST_CASE(a_stack_that_cannot_be_set_up_is_left_out_of_the_listener_by_name) {
    // The quic layer cannot read its certificate, so [quic, udp] is left out, with why; the
    // listener still serves [framer, tcp].
    loopback_fixture f;
    auto p = policy::parse("version: 1\nname: two\nstacks:\n  - [framer, tcp]\n  - [quic, udp]\n"
                           "protocols:\n  quic: { cert-file: /nonexistent/cert.pem, key-file: " +
                               pki().server.key + " }\n",
                           "two.yaml");
    echo_server server(f.ctx, p);
    BOOST_TEST(server.l.stacks() == (std::vector<std::vector<std::string>>{{"framer", "tcp"}}));
    const auto left = server.l.left_out();
    BOOST_REQUIRE_EQUAL(left.size(), 1u);
    BOOST_TEST(left[0].starts_with("[quic, udp]: "), left[0]);
    BOOST_TEST(left[0].find("/nonexistent/cert.pem") != std::string::npos, left[0]);
    auto got = exchange(f.io, f.ctx,
                        remote::from_url("tcp://127.0.0.1:" + std::to_string(port_of(server.l))),
                        policy::defaults(), {"still here"}, "framer");
    BOOST_REQUIRE(std::holds_alternative<std::vector<std::string>>(got));
    BOOST_TEST(std::get<std::vector<std::string>>(got).at(0) == "still here");
}

BOOST_AUTO_TEST_CASE(a_stack_that_cannot_serve_is_left_out_before_it_binds) {
    // No certificate: the quic layer sets up (a client needs none), but says it cannot take
    // the server role (sdk::layer::can_serve), so the listener leaves [quic, udp] out before
    // binding its port, with why, and serves [framer, tcp].
    loopback_fixture f;
    auto p = policy::parse("version: 1\nname: nocert\nstacks:\n  - [framer, tcp]\n"
                           "  - [quic, udp]\n",
                           "nocert.yaml");
    auto l = listen(f.ctx, local::parse("127.0.0.1:0"), p);
    BOOST_TEST(l.stacks() == (std::vector<std::vector<std::string>>{{"framer", "tcp"}}));
    BOOST_REQUIRE_EQUAL(l.left_out().size(), 1u);
    BOOST_TEST(l.left_out()[0].starts_with("[quic, udp]: "), l.left_out()[0]);
    BOOST_TEST(l.left_out()[0].find("needs a certificate") != std::string::npos, l.left_out()[0]);
    // Nothing holds the port for UDP: the stack never bound it.
    boost::asio::ip::udp::socket probe(f.io, boost::asio::ip::udp::v4());
    boost::system::error_code ec;
    probe.bind({boost::asio::ip::make_address("127.0.0.1"), port_of(l)}, ec);
    BOOST_TEST(!ec, ec.message());

    // With no other stack there is nothing to listen over: listen fails and says why.
    auto only_quic =
        policy::parse("version: 1\nname: nocert\nstacks:\n  - [quic, udp]\n", "nocert.yaml");
    try {
        auto alone = listen(f.ctx, local::parse("127.0.0.1:0"), only_quic);
        BOOST_FAIL("listened over " << alone.stacks().size() << " stacks without a certificate");
    } catch (const boost::system::system_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("[quic, udp]: quic: the server role needs a certificate") !=
                       std::string::npos,
                   what);
    }
}

BOOST_AUTO_TEST_CASE(forked_carriers_are_streams_of_one_connection) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    echo_server server(f.ctx, quic_policy());
    stream_client client;
    client.add(initiate(f.ctx, server.where(), quic_policy()));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    // A forked carrier forks too, once it is active (the kernel opens a new connection for a
    // fork of a carrier still establishing).
    wait_ready(f.io, client.carriers[1]);
    client.add(client.carriers[1].fork());
    client.send_all(4);
    run_until(f.io, [&] { return client.all_echoed(4) || client.failure.has_value(); });
    BOOST_REQUIRE_MESSAGE(!client.failure,
                          (client.failure ? client.failure->to_string() : std::string()));
    for (std::size_t i = 0; i < client.carriers.size(); ++i) {
        std::vector<std::string> want;
        for (int n = 0; n < 4; ++n)
            want.push_back(stream_client::label(i, n));
        BOOST_TEST(client.echoes.at(i) == want, boost::test_tools::per_element());
    }
    BOOST_TEST(counts.forked == 2, "forked streams traced: " << counts.forked);
    // One connection: the three carriers share the one UDP socket below.
    std::set<std::string> locals;
    for (auto& c : client.carriers) {
        BOOST_REQUIRE(c.path());
        BOOST_TEST(c.stack() == (std::vector<std::string>{"quic", "udp"}),
                   boost::test_tools::per_element());
        locals.insert(c.path()->local.to_string());
    }
    BOOST_TEST(locals.size() == 1u, "carriers on different sockets: " << locals.size());
    // The listener accepted one connection and handed out a carrier per stream.
    BOOST_TEST(counts.accepted == 1);
    BOOST_TEST(server.carriers == 3);
    BOOST_TEST(counts.incoming == 2);
}

BOOST_AUTO_TEST_CASE(a_server_opens_a_stream_to_its_client) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), quic_policy());
    std::vector<carrier> server_side;
    std::vector<std::string> replies; // what the client sent back on the server's stream
    l.on_carrier([&](carrier c) {
        server_side.push_back(c);
        if (server_side.size() > 1) return;
        // The first carrier forks a stream of its own towards the client, at once: the
        // connection is up when the listener hands the carrier out.
        carrier pushed = c.fork();
        pushed.on_received([&](message m) { replies.emplace_back(m.text()); });
        pushed.send(message(std::string_view("pushed by the server")));
        server_side.push_back(pushed);
    });
    auto c = initiate(f.ctx, remote::from_url("quic://localhost:" + std::to_string(port_of(l))),
                      quic_policy());
    std::vector<carrier> incoming;
    std::vector<std::string> pushed;
    c.on_incoming([&](carrier in) {
        in.on_received([&, in](message m) mutable {
            pushed.emplace_back(m.text());
            in.send(message(std::string_view("thanks")));
        });
        incoming.push_back(in);
    });
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
    echo_server server(f.ctx, quic_policy());
    int server_closed = 0;
    server.l.on_carrier([&](carrier c) {
        c.on_received([c](message m) mutable { c.send(std::move(m)); });
        c.on_closed([&] { ++server_closed; });
    });
    stream_client client;
    client.add(initiate(f.ctx, server.where(), quic_policy()));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    client.send_all(1);
    run_until(f.io, [&] { return client.all_echoed(1); });
    bool closed = false;
    client.carriers[1].on_closed([&] { closed = true; });
    client.carriers[1].close();
    run_until(f.io, [&] { return closed && server_closed == 1; });
    BOOST_TEST(!client.carriers[1].last_error());
    client.carriers[0].send(message(std::string_view("after")));
    run_until(f.io, [&] { return client.echoes[0].size() == 2; });
    BOOST_TEST(client.echoes[0].back() == "after");
    BOOST_TEST((client.carriers[0].state() == carrier_state::active));
}

BOOST_AUTO_TEST_CASE(a_quic_source_sends_to_a_sink_on_a_unidirectional_stream) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    auto s = open_sink(f.ctx, local::parse("127.0.0.1:0"), quic_policy());
    std::vector<std::string> got;
    s.on_received([&](message m) { got.emplace_back(m.text()); });
    std::uint16_t port = 0;
    for (const auto& e : s.local_endpoints())
        if (e.address.is_v4()) port = e.port;
    BOOST_REQUIRE(port != 0);
    auto src = initiate_source(f.ctx, remote::from_url("quic://localhost:" + std::to_string(port)),
                               quic_policy());
    std::vector<std::string> sent;
    for (int k = 0; k < 300; ++k) {
        sent.push_back("message " + std::to_string(k));
        src.send(message(sent.back()));
    }
    run_until(f.io, [&] { return got.size() == sent.size(); });
    BOOST_TEST(got == sent, boost::test_tools::per_element());
    // The plugin says the flow is a unidirectional stream it opened (a bidirectional one with
    // its receive half unused would report bidirectional).
    BOOST_TEST((src.carrier().capabilities().direction == sdk::flow_direction::send_only));
    BOOST_TEST(src.carrier().stack() == (std::vector<std::string>{"quic", "udp"}),
               boost::test_tools::per_element());
    BOOST_TEST(counts.accepted == 1);
    bool closed = false;
    src.on_closed([&] { closed = true; });
    src.close();
    run_until(f.io, [&] { return closed; });
    BOOST_TEST(!src.carrier().last_error());
    s.close();
}

BOOST_AUTO_TEST_CASE(a_source_to_a_listener_gives_a_receive_only_carrier_beside_bidi_ones) {
    loopback_fixture f;
    trace_counts counts(f.ctx);
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), quic_policy());
    std::vector<carrier> server_side;
    std::map<std::size_t, std::vector<std::string>> got; // per server carrier
    std::vector<std::pair<message_id, error>> send_errors;
    std::vector<std::string> replies; // on the server's bidirectional stream
    l.on_carrier([&](carrier c) {
        const auto index = server_side.size();
        c.on_received([&, index](message m) { got[index].emplace_back(m.text()); });
        c.on_send_error([&](message_id id, const error& e) { send_errors.emplace_back(id, e); });
        server_side.push_back(c);
    });
    auto src = initiate_source(
        f.ctx, remote::from_url("quic://localhost:" + std::to_string(port_of(l))), quic_policy());
    carrier client = src.carrier();
    std::vector<carrier> incoming;
    client.on_incoming([&](carrier in) {
        in.on_received(
            [in](message m) mutable { in.send(message("re: " + std::string(m.text()))); });
        incoming.push_back(in);
    });
    src.send(message(std::string_view("one way")));
    run_until(f.io, [&] { return got[0].size() == 1; });
    BOOST_TEST(got[0][0] == "one way");
    carrier first = server_side.at(0); // a handle: server_side grows below
    BOOST_TEST((first.capabilities().direction == sdk::flow_direction::receive_only));
    // Sending on it fails by name, and the carrier stays up.
    const auto refused = first.send(message(std::string_view("back")));
    run_until(f.io, [&] { return !send_errors.empty(); });
    BOOST_TEST(send_errors[0].first == refused);
    BOOST_TEST((send_errors[0].second.code == make_error_code(errc::not_supported)));
    BOOST_TEST(send_errors[0].second.reason.find("unidirectional") != std::string::npos,
               send_errors[0].second.reason);
    BOOST_TEST((first.state() == carrier_state::active));
    // A fork of the source is send-only too: another unidirectional stream, another
    // receive-only carrier at the listener.
    carrier second = client.fork();
    second.send(message(std::string_view("second stream")));
    run_until(f.io, [&] { return got[1].size() == 1; });
    BOOST_TEST(got[1][0] == "second stream");
    BOOST_TEST((second.capabilities().direction == sdk::flow_direction::send_only));
    BOOST_TEST((server_side.at(1).capabilities().direction == sdk::flow_direction::receive_only));
    // The receive-only carrier forks a bidirectional stream to the client, on the same
    // connection: messages go both ways on it.
    carrier pushed = first.fork();
    pushed.on_received([&](message m) { replies.emplace_back(m.text()); });
    pushed.send(message(std::string_view("ping")));
    run_until(f.io, [&] { return !replies.empty(); });
    BOOST_TEST(replies == (std::vector<std::string>{"re: ping"}), boost::test_tools::per_element());
    BOOST_REQUIRE(incoming.size() == 1u);
    BOOST_TEST((incoming[0].capabilities().direction == sdk::flow_direction::bidirectional));
    BOOST_TEST((pushed.capabilities().direction == sdk::flow_direction::bidirectional));
    BOOST_TEST(counts.accepted == 1); // one connection for all of them
    BOOST_TEST(server_side.size() == 2u);
    BOOST_TEST(send_errors.size() == 1u);
}

BOOST_AUTO_TEST_CASE(unreliable_messages_go_as_datagrams_and_too_large_ones_fail_by_name) {
    loopback_fixture f;
    std::vector<std::string> got;
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), quic_policy());
    l.on_carrier([&](carrier c) { c.on_received([&](message m) { got.emplace_back(m.text()); }); });
    auto c = initiate(f.ctx, remote::from_url("quic://localhost:" + std::to_string(port_of(l))),
                      quic_policy());
    std::optional<error> failure;
    std::vector<std::pair<message_id, std::string>> send_errors;
    c.on_error([&](const error& e) { failure = e; });
    c.on_send_error(
        [&](message_id id, const error& e) { send_errors.emplace_back(id, e.to_string()); });
    auto unreliable = [](message m) {
        m.properties().reliable = false;
        return m;
    };
    c.send(unreliable(message(std::string_view("datagram 1"))));
    c.send(unreliable(message(std::string_view("datagram 2"))));
    // A datagram never spans packets: this one cannot go, and is not sent reliably instead.
    const auto big = c.send(unreliable(message(std::string(5000, 'x'))));
    c.send(message(std::string_view("reliable")));
    run_until(f.io, [&] { return (got.size() == 3u && !send_errors.empty()) || failure; });
    BOOST_REQUIRE_MESSAGE(!failure, (failure ? failure->to_string() : std::string()));
    BOOST_TEST((std::multiset<std::string>(got.begin(), got.end()) ==
                std::multiset<std::string>{"datagram 1", "datagram 2", "reliable"}));
    BOOST_REQUIRE(send_errors.size() == 1u);
    BOOST_TEST(send_errors[0].first == big);
    BOOST_TEST(send_errors[0].second.find("too large for a QUIC datagram") != std::string::npos,
               send_errors[0].second);
    BOOST_TEST(c.capabilities().expires_in_flight);
}

// ---- migration (docs/quic.md "Migration") ---------------------------------------------------

namespace {

/// Every migration trace line, in order.
struct migration_traces {
    std::vector<std::string> lines;
    explicit migration_traces(context& ctx) {
        ctx.on_trace([this](const trace_event& e) {
            if (e.what == trace_event::kind::migration || e.what == trace_event::kind::migrated)
                lines.push_back(std::string(to_string(e.what)) + " " + e.detail);
        });
    }
    bool has(const std::string& needle) const {
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
    std::string all() const {
        std::string out;
        for (const auto& l : lines)
            out += l + "\n";
        return out;
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(migrate_moves_every_stream_of_the_connection_to_the_new_address) {
    loopback_fixture f;
    migration_traces traces(f.ctx);
    trace_counts counts(f.ctx);
    echo_server server(f.ctx, quic_policy());
    std::vector<error> listener_errors;
    server.l.on_error([&](const error& e) { listener_errors.push_back(e); });
    stream_client client;
    client.add(initiate(f.ctx, server.where(), quic_policy()));
    wait_ready(f.io, client.carriers[0]);
    client.add(client.carriers[0].fork());
    wait_ready(f.io, client.carriers[1]);
    client.send_all(2);
    run_until(f.io, [&] { return client.all_echoed(2) || client.failure.has_value(); });
    BOOST_REQUIRE(!client.failure);
    BOOST_TEST(client.carriers[0].path()->local.address.to_string() == "127.0.0.1");
    std::vector<path> changed[2];
    for (int i = 0; i < 2; ++i)
        client.carriers[i].on_path_changed(
            [&changed, i](const path& p) { changed[i].push_back(p); });
    std::optional<error> done;
    client.carriers[0].migrate(local::parse("127.0.0.2:0"), [&](const error& e) { done = e; });
    run_until(f.io, [&] { return done && !changed[0].empty() && !changed[1].empty(); });
    BOOST_REQUIRE(done.has_value());
    BOOST_REQUIRE_MESSAGE(!*done, done->to_string());
    BOOST_REQUIRE(!changed[0].empty() && !changed[1].empty());
    for (int i = 0; i < 2; ++i) {
        BOOST_TEST(changed[i].back().local.address.to_string() == "127.0.0.2");
        BOOST_TEST(client.carriers[i].path()->local.address.to_string() == "127.0.0.2");
        BOOST_TEST((client.carriers[i].state() == carrier_state::active));
    }
    // Both carriers go on over the moved connection.
    client.send_all(4);
    run_until(f.io, [&] { return client.all_echoed(4) || client.failure.has_value(); });
    BOOST_REQUIRE_MESSAGE(!client.failure,
                          (client.failure ? client.failure->to_string() : std::string()));
    BOOST_TEST(traces.has("migration moving from 127.0.0.1:"), traces.all());
    BOOST_TEST(traces.has("to 127.0.0.2 (asked for by the application)"), traces.all());
    BOOST_TEST(traces.has("migrated now from 127.0.0.2:"), traces.all());
    // The server's listener took the new address's datagrams for the existing connection: no
    // new carrier, no error.
    BOOST_TEST(server.carriers == 2);
    BOOST_TEST(listener_errors.empty(),
               (listener_errors.empty() ? std::string() : listener_errors[0].to_string()));
}

BOOST_AUTO_TEST_CASE(migrate_on_a_stack_that_cannot_names_it_and_changes_nothing) {
    loopback_fixture f;
    migration_traces traces(f.ctx);
    const auto tcp =
        policy::parse("version: 1\nname: plain\nstacks:\n  - [framer, tcp]\n", "p.yaml");
    auto l = listen(f.ctx, local::parse("127.0.0.1:0"), tcp);
    l.on_carrier(
        [](carrier c) { c.on_received([c](message m) mutable { c.send(std::move(m)); }); });
    auto c = initiate(f.ctx, remote::from_host_port("127.0.0.1", port_of(l)), tcp);
    wait_ready(f.io, c);
    const auto before = c.path()->local;
    std::optional<error> done;
    c.migrate(local::parse("127.0.0.2:0"), [&](const error& e) { done = e; });
    run_until(f.io, [&] { return done.has_value(); });
    BOOST_REQUIRE(done.has_value());
    BOOST_TEST((done->code == make_error_code(errc::not_supported)));
    BOOST_TEST(done->reason.find("the stack [framer, tcp] cannot move its connection") !=
                   std::string::npos,
               done->reason);
    BOOST_TEST(traces.has("migration refused: cannot migrate: the stack [framer, tcp]"),
               traces.all());
    // The carrier is as it was.
    BOOST_TEST((c.state() == carrier_state::active));
    BOOST_TEST((c.path()->local == before));
    std::optional<std::string> echo;
    c.on_received([&](message m) { echo = std::string(m.text()); });
    c.send(message("still here"));
    run_until(f.io, [&] { return echo.has_value(); });
    BOOST_TEST(echo.value_or("") == "still here");
}

namespace {

/// Root only: this thread moves into a network namespace of its own for one test (every socket
/// and netlink socket the test's context opens lives there) and back at the end.
struct private_netns {
    int home = -1;
    bool ok = false;
    private_netns() {
        home = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ok = home >= 0 && ::unshare(CLONE_NEWNET) == 0;
        if (ok) run("ip link set lo up");
    }
    ~private_netns() {
        if (home >= 0) {
            if (ok) (void)::setns(home, CLONE_NEWNET);
            ::close(home);
        }
    }
    /// An always-up ethernet-like interface (dummy, or one end of a veth pair without the
    /// dummy driver), as tests/netns/topology.sh makes them.
    static void interface(const std::string& name) {
        if (std::system(("ip link add " + name + " type dummy 2>/dev/null").c_str()) != 0) {
            run("ip link add " + name + " type veth peer name " + name + "-peer");
            run("ip link set " + name + "-peer up");
        }
        run("ip link set " + name + " up");
    }
    static void run(const std::string& command) {
        BOOST_REQUIRE_MESSAGE(std::system(command.c_str()) == 0, "failed: " << command);
    }
};

boost::test_tools::assertion_result root_with_ip(boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result r(false);
    if (::geteuid() != 0) {
        r.message() << "SKIP: needs root (a network namespace, interfaces)";
        return r;
    }
    if (std::system("command -v ip >/dev/null 2>&1") != 0) {
        r.message() << "SKIP: needs ip (iproute2)";
        return r;
    }
    return true;
}

} // namespace

// The requirement itself, through the kernel: two carriers (streams of one connection) from
// the first of the client's two interfaces; mid-transfer its address is removed; the kernel
// moves the connection to the other interface the policy allows and both carriers finish
// their transfer, in order, on the new path.
BOOST_AUTO_TEST_CASE(removing_the_local_address_moves_every_carrier_to_another,
                     *boost::unit_test::precondition(root_with_ip)) {
    private_netns ns;
    BOOST_REQUIRE_MESSAGE(ns.ok, "cannot enter a new network namespace");
    private_netns::interface("srv0");
    private_netns::interface("mig0");
    private_netns::interface("mig1");
    private_netns::run("ip addr add 10.99.0.1/24 dev srv0");
    private_netns::run("ip addr add 10.98.0.2/24 dev mig0");
    private_netns::run("ip addr add 10.96.0.2/24 dev mig1");
    const auto p = policy::parse(
        "version: 1\nname: quic\nstacks:\n  - [quic, udp]\nprotocols:\n  quic: { cert-file: " +
            pki().server.cert + ", key-file: " + pki().server.key + ", ca-file: " + pki().ca +
            ", server-name: localhost }\nselection:\n  interface:\n    require: [mig0, mig1]\n"
            "    prefer: [mig0]\n",
        "quic-mig.yaml");
    loopback_fixture f;
    migration_traces traces(f.ctx);
    auto l = listen(f.ctx, local::parse("10.99.0.1:0"), p);
    int accepted = 0;
    std::vector<error> listener_errors;
    l.on_carrier([&accepted](carrier c) {
        ++accepted;
        c.on_received([c](message m) mutable { c.send(std::move(m)); });
    });
    l.on_error([&](const error& e) { listener_errors.push_back(e); });
    const auto where = remote::from_host_port("10.99.0.1", port_of(l));
    std::vector<carrier> carriers{initiate(f.ctx, where, p)};
    wait_ready(f.io, carriers[0]);
    carriers.push_back(carriers[0].fork());
    wait_ready(f.io, carriers[1]);
    BOOST_REQUIRE(carriers[0].path());
    BOOST_TEST(carriers[0].path()->local.address.to_string() == "10.98.0.2");
    std::vector<std::string> echoes[2];
    std::optional<error> failure;
    for (int i = 0; i < 2; ++i) {
        carriers[i].on_received([&echoes, i](message m) { echoes[i].emplace_back(m.text()); });
        carriers[i].on_error([&failure](const error& e) { failure = e; });
    }
    constexpr int half = 20;
    auto send = [&](int from, int to) {
        for (int i = 0; i < 2; ++i)
            for (int n = from; n < to; ++n)
                carriers[i].send(message(std::string_view(stream_client::label(i, n))));
    };
    send(0, half);
    run_until(f.io, [&] { return (echoes[0].size() >= 5 && echoes[1].size() >= 5) || failure; });
    BOOST_REQUIRE(!failure);
    private_netns::run("ip addr del 10.98.0.2/24 dev mig0");
    send(half, 2 * half);
    run_until(f.io, [&] {
        return (echoes[0].size() == 2 * half && echoes[1].size() == 2 * half) || failure;
    });
    BOOST_REQUIRE_MESSAGE(!failure, (failure ? failure->to_string() : std::string()));
    for (int i = 0; i < 2; ++i) {
        std::vector<std::string> want;
        for (int n = 0; n < 2 * half; ++n)
            want.push_back(stream_client::label(i, n));
        BOOST_TEST(echoes[i] == want, boost::test_tools::per_element());
        BOOST_TEST((carriers[i].state() == carrier_state::active));
        BOOST_TEST(carriers[i].path()->local.address.to_string() == "10.96.0.2");
        BOOST_TEST(carriers[i].path()->interface == "mig1");
    }
    BOOST_TEST(traces.has("migration moving from 10.98.0.2:"), traces.all());
    BOOST_TEST(traces.has("to 10.96.0.2 (local address 10.98.0.2 removed)"), traces.all());
    BOOST_TEST(traces.has("already moving off 10.98.0.2:"), traces.all());
    BOOST_TEST(traces.has("migrated now from 10.96.0.2:"), traces.all());
    BOOST_TEST(accepted == 2);
    BOOST_TEST(listener_errors.empty(),
               (listener_errors.empty() ? std::string() : listener_errors[0].to_string()));
    // Nowhere left to go (the policy requires mig0 or mig1): the carriers stay, and the trace
    // says why; QUIC's idle timeout decides later.
    private_netns::run("ip addr del 10.96.0.2/24 dev mig1");
    run_until(f.io, [&] { return traces.has("local address 10.96.0.2 removed: no other"); });
    BOOST_TEST(traces.has("local address 10.96.0.2 removed: no other usable IPv4 address; "),
               traces.all());
    BOOST_TEST(traces.has("staying on it (the connection's idle timeout decides)"), traces.all());
    for (auto& c : carriers)
        BOOST_TEST((c.state() == carrier_state::active));
    BOOST_TEST(!failure);
}
