// The dtls layer (tls plugin) over real loopback UDP: our client against our server (datagrams
// both ways, boundaries, the size limit, close), certificate failures, garbage and spoofed
// ClientHellos at the server, lost and damaged datagrams through a relay, and timeouts.
#define BOOST_TEST_MODULE dtls layer
#include <utility>

#include "test_dtls_support.hpp"

#include <boost/test/unit_test.hpp>

#include <openssl/ssl.h>

using namespace post;
using namespace post::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

BOOST_TEST_GLOBAL_FIXTURE(ignore_sigpipe);

namespace {

struct dtls_pair {
    asio::io_context io;
    log_capture server_log, client_log;
    std::unique_ptr<sdk::layer> udp = make_layer(post_plugin_udp(), io);
    std::unique_ptr<sdk::layer> server_dtls;
    std::unique_ptr<sdk::layer> client_dtls;
    std::shared_ptr<acceptor_recorder> server = std::make_shared<acceptor_recorder>();
    std::shared_ptr<sdk::acceptor> acc;

    explicit dtls_pair(sdk::options server_opts = server_options(),
                       sdk::options client_opts = client_options())
        : server_dtls(make_dtls(io, std::move(server_opts), &server_log))
        , client_dtls(make_dtls(io, std::move(client_opts), &client_log)) {
        acc = listen_dtls(*udp, *server_dtls, server);
    }
    std::uint16_t port() const { return acc->local_endpoint().port; }
    bool wait(std::function<bool()> f, std::chrono::milliseconds limit = 10s) {
        return run_until(io, std::move(f), limit);
    }
    std::shared_ptr<sdk::flow> connect(const std::shared_ptr<flow_recorder>& events,
                                       std::uint16_t to = 0, std::string host = "localhost") {
        return open_dtls_client(*udp, *client_dtls, to ? to : port(), events, std::move(host));
    }
    std::shared_ptr<sdk::flow> connect_ready(const std::shared_ptr<flow_recorder>& events,
                                             std::uint16_t to = 0) {
        auto c = connect(events, to);
        BOOST_REQUIRE(wait([&] { return events->ready || events->closed; }));
        BOOST_REQUIRE_MESSAGE(events->ready, "handshake failed: " << events->closed->reason);
        BOOST_REQUIRE(wait([&] { return !server->accepted.empty(); }));
        return c;
    }
    acceptor_recorder::accepted_flow& first() { return server->accepted.front(); }
};

/// A genuine ClientHello, as an attacker spoofing a source address would send it.
sdk::byte_buffer client_hello() {
    SSL_CTX* ctx = SSL_CTX_new(DTLS_client_method());
    BOOST_REQUIRE(ctx);
    SSL* ssl = SSL_new(ctx);
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    SSL_do_handshake(ssl);
    sdk::byte_buffer out(BIO_ctrl_pending(wbio));
    BIO_read(wbio, out.data(), static_cast<int>(out.size()));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    BOOST_REQUIRE(out.size() > 13);
    return out;
}

/// A raw UDP socket on loopback that records every datagram it receives.
struct raw_peer {
    asio::ip::udp::socket socket;
    std::vector<sdk::byte_buffer> received;
    std::array<std::byte, 65536> buf{};

    explicit raw_peer(asio::io_context& io)
        : socket(io, {asio::ip::make_address("127.0.0.1"), 0}) {
        receive();
    }
    void receive() {
        socket.async_receive(asio::buffer(buf),
                             [this](const boost::system::error_code& ec, std::size_t n) {
                                 if (ec) return;
                                 received.emplace_back(buf.begin(), buf.begin() + n);
                                 receive();
                             });
    }
    void send_to(std::uint16_t port, const sdk::byte_buffer& d) {
        socket.send_to(asio::buffer(d), {asio::ip::make_address("127.0.0.1"), port});
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(descriptor_datagram_over_datagram_with_security) {
    const auto& d = dtls_descriptor();
    BOOST_TEST((d.upper == sdk::edge::datagram && d.lower == sdk::edge::datagram));
    BOOST_REQUIRE(d.feature_count >= 1u);
    BOOST_TEST(std::string(d.features[0].name) == "security");
    std::vector<std::string> names;
    for (std::size_t i = 0; i < d.option_count; ++i)
        names.emplace_back(d.options[i].name);
    for (const char* want :
         {"verify-peer", "ca-file", "pin-sha256", "cert-file", "key-file", "client-auth",
          "server-name", "alpn", "ciphers", "keylog", "max-message-size", "handshake-timeout"})
        BOOST_TEST((std::find(names.begin(), names.end(), want) != names.end()), want);
    // DTLS 1.2 only: no version options, no TLS 1.3 suites, no 0-RTT.
    for (const char* absent : {"min-version", "max-version", "ciphersuites", "early-data"})
        BOOST_TEST((std::find(names.begin(), names.end(), absent) == names.end()), absent);
}

BOOST_AUTO_TEST_CASE(datagrams_both_ways_keep_boundaries_oversize_refused_and_close) {
    dtls_pair t;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    BOOST_TEST(dtls_summary_of(c).version == "DTLSv1.2");
    const auto i = c->info();
    BOOST_TEST((i.kind == sdk::edge::datagram));
    BOOST_TEST(i.max_message_size == 16384u);
    BOOST_TEST(i.remote.port == t.port());

    const std::vector<std::size_t> sizes{1, 100, 1400, 5000, 16384};
    for (std::size_t k = 0; k < sizes.size(); ++k)
        c->send(pattern(sizes[k], static_cast<unsigned>(k)), meta(k + 1));
    auto& s = t.first();
    BOOST_REQUIRE(
        t.wait([&] { return s.events->messages.size() == sizes.size() || s.events->closed; }));
    BOOST_TEST(s.events->ready);
    for (std::size_t k = 0; k < sizes.size(); ++k)
        BOOST_TEST((s.events->messages[k] == pattern(sizes[k], static_cast<unsigned>(k))),
                   "message " << k << " of " << sizes[k] << " bytes");
    BOOST_REQUIRE(t.wait([&] { return client->sent.size() == sizes.size(); }));
    BOOST_TEST(client->sent == (std::vector<std::uint64_t>{1, 2, 3, 4, 5}),
               boost::test_tools::per_element());
    BOOST_TEST(c->queued_bytes() == 0u);

    for (std::size_t k = 0; k < sizes.size(); ++k)
        s.flow->send(pattern(sizes[k], static_cast<unsigned>(100 + k)), meta(k + 1));
    BOOST_REQUIRE(t.wait([&] { return client->messages.size() == sizes.size(); }));
    for (std::size_t k = 0; k < sizes.size(); ++k)
        BOOST_TEST((client->messages[k] == pattern(sizes[k], static_cast<unsigned>(100 + k))));

    // One byte over the limit: refused, nothing sent, the flow carries on.
    c->send(pattern(16385, 7), meta(99));
    BOOST_REQUIRE(t.wait([&] { return !client->send_errors.empty(); }));
    BOOST_TEST(client->send_errors[0].first == 99u);
    BOOST_TEST((client->send_errors[0].second.code == std::errc::message_size));
    BOOST_TEST(client->send_errors[0].second.reason.find("16384") != std::string::npos);
    c->send(bytes("after"), meta(100));
    BOOST_REQUIRE(t.wait([&] { return s.events->messages.size() == sizes.size() + 1; }));
    BOOST_TEST(text(s.events->messages.back()) == "after");

    // close_notify reaches the server, which closes too.
    c->close();
    BOOST_REQUIRE(t.wait([&] { return client->closed && s.events->closed; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.events->closed, s.events->closed->reason);
    BOOST_TEST(t.server_log.contains("the peer sent close_notify"));
    BOOST_TEST(client->events_after_close == 0);
}

BOOST_AUTO_TEST_CASE(max_message_size_option_lowers_the_limit) {
    dtls_pair t(server_options(), with(client_options(), "max-message-size", std::int64_t{1000}));
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    BOOST_TEST(c->info().max_message_size == 1000u);
    c->send(pattern(1001, 1), meta(1));
    c->send(pattern(1000, 2), meta(2));
    BOOST_REQUIRE(t.wait([&] { return !client->send_errors.empty() && !client->sent.empty(); }));
    BOOST_TEST((client->send_errors[0].second.code == std::errc::message_size));
    BOOST_TEST(client->sent == (std::vector<std::uint64_t>{2}), boost::test_tools::per_element());
    BOOST_REQUIRE(t.wait([&] { return !t.first().events->messages.empty(); }));
    BOOST_TEST((t.first().events->messages[0] == pattern(1000, 2)));
}

BOOST_AUTO_TEST_CASE(wrong_ca_fails_naming_the_check) {
    dtls_pair t(server_options(), with(sdk::options{}, "ca-file", pki().other_ca));
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client);
    BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
    BOOST_TEST(!client->ready);
    BOOST_TEST((client->closed->code == std::errc::permission_denied));
    BOOST_TEST(client->closed->reason.find("certificate verify failed") != std::string::npos,
               client->closed->reason);
    BOOST_TEST(client->closed->reason.find("issuing CA is not trusted") != std::string::npos,
               client->closed->reason);
    // The client's alert ends the server's flow too, and says why.
    BOOST_REQUIRE(t.wait([&] { return !t.server->accepted.empty() && t.first().events->closed; }));
    BOOST_TEST(!t.first().events->ready);
    BOOST_TEST(t.first().events->closed->reason.find("alert") != std::string::npos,
               t.first().events->closed->reason);
}

BOOST_AUTO_TEST_CASE(wrong_name_fails_with_hostname_mismatch) {
    dtls_pair t;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, 0, "example.org");
    BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
    BOOST_TEST((client->closed->code == std::errc::permission_denied));
    BOOST_TEST(client->closed->reason.find("hostname mismatch") != std::string::npos,
               client->closed->reason);
}

BOOST_AUTO_TEST_CASE(garbage_before_the_handshake_ends_the_flow_and_the_server_carries_on) {
    dtls_pair t;
    raw_peer raw(t.io);
    raw.send_to(t.port(), bytes("GET / HTTP/1.1\r\n\r\n"));
    BOOST_REQUIRE(t.wait([&] { return !t.server->accepted.empty() && t.first().events->closed; }));
    const auto& e = *t.first().events->closed;
    BOOST_TEST((e.code == std::errc::protocol_error));
    BOOST_TEST(e.reason == "peer does not speak DTLS: first bytes were 47 45 54 20 2f 20 48 54 "
                           "... (\"GET / HT\")");
    BOOST_TEST(!t.first().events->ready);
    // A short datagram, then a real client: served as if nothing happened.
    raw.send_to(t.port(), bytes("\x16"));
    BOOST_REQUIRE(t.wait(
        [&] { return t.server->accepted.size() == 2 && t.server->accepted[1].events->closed; }));
    BOOST_TEST(t.server->accepted[1].events->closed->reason.find("peer does not speak DTLS") == 0u);
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client);
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(client->ready);
}

BOOST_AUTO_TEST_CASE(spoofed_client_hello_gets_a_cookie_only_and_its_flow_times_out) {
    dtls_pair t(with(server_options(), "handshake-timeout", std::chrono::milliseconds(300)));
    raw_peer raw(t.io);
    const auto hello = client_hello();
    raw.send_to(t.port(), hello);
    BOOST_REQUIRE(t.wait([&] { return !raw.received.empty(); }));
    // A HelloVerifyRequest (handshake type 3), not a ServerHello and certificate.
    BOOST_TEST(static_cast<int>(raw.received[0][0]) == 22);
    BOOST_TEST(static_cast<int>(raw.received[0][13]) == 3);
    BOOST_TEST(raw.received[0].size() < 100u);
    BOOST_REQUIRE(!t.server->accepted.empty());
    const auto started = std::chrono::steady_clock::now();
    BOOST_REQUIRE(t.wait([&] { return t.first().events->closed.has_value(); }, 5s));
    BOOST_TEST((t.first().events->closed->code == std::errc::timed_out));
    BOOST_TEST(t.first().events->closed->reason.find("timed out after 300 ms") != std::string::npos,
               t.first().events->closed->reason);
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
    for (const auto& d : raw.received)
        BOOST_TEST(static_cast<int>(d[13]) == 3); // never more than cookies
    // The state is gone: the same sender starts a new flow.
    raw.send_to(t.port(), hello);
    BOOST_REQUIRE(t.wait([&] { return t.server->accepted.size() == 2; }));
}

BOOST_AUTO_TEST_CASE(lost_server_flight_is_retransmitted) {
    dtls_pair t;
    udp_relay relay(t.io, t.port());
    relay.drop_from_server = 1;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client, relay.port());
    BOOST_TEST(relay.dropped == 1);
    BOOST_TEST(dtls_summary_of(c).retransmissions >= 1u);
    BOOST_TEST(t.client_log.contains("sent the last flight again"));
    c->send(bytes("through the relay"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return !t.first().events->messages.empty(); }));
    BOOST_TEST(text(t.first().events->messages[0]) == "through the relay");
}

BOOST_AUTO_TEST_CASE(bad_records_after_the_handshake_are_dropped_silently) {
    dtls_pair t;
    udp_relay relay(t.io, t.port());
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client, relay.port());
    c->send(bytes("one"), meta(1));
    auto& s = t.first();
    BOOST_REQUIRE(t.wait([&] { return s.events->messages.size() == 1; }));
    const auto record = relay.from_client.back(); // the record that carried "one"
    BOOST_REQUIRE(static_cast<int>(record[0]) == 23);

    relay.inject(bytes("not a record at all"));
    auto damaged = record;
    damaged.back() ^= std::byte{0x55};
    relay.inject(damaged);
    relay.inject(record); // a replay
    c->send(bytes("two"), meta(2));
    BOOST_REQUIRE(t.wait([&] { return s.events->messages.size() == 2 || s.events->closed; }));
    BOOST_TEST(!s.events->closed);
    BOOST_TEST(text(s.events->messages[1]) == "two");
    BOOST_TEST(dtls_summary_of(s.flow).dropped_records == 3u);
    BOOST_TEST(t.server_log.contains("dropped a damaged or replayed DTLS record"));
}

BOOST_AUTO_TEST_CASE(client_handshake_gives_up_after_its_timeout) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    auto dtls =
        make_dtls(io, with(client_options(), "handshake-timeout", std::chrono::milliseconds(1500)));
    raw_peer silent(io); // bound, so no ICMP error: it just never answers
    auto client = std::make_shared<flow_recorder>();
    auto c = open_dtls_client(*udp, *dtls, silent.socket.local_endpoint().port(), client);
    BOOST_REQUIRE(run_until(
        io, [&] { return client->closed.has_value(); }, 5s));
    BOOST_TEST((client->closed->code == std::errc::timed_out));
    BOOST_TEST(client->closed->reason.find("no answer from the server") != std::string::npos,
               client->closed->reason);
    // The ClientHello went out again after 1 s.
    BOOST_TEST(silent.received.size() >= 2u);
    BOOST_TEST(dtls_summary_of(c).retransmissions >= 1u);
}

BOOST_AUTO_TEST_CASE(configuration_errors_name_the_problem) {
    asio::io_context io;
    BOOST_TEST(dtls_create_error(io, with(sdk::options{}, "max-message-size", std::int64_t{20000}))
                   .find("dtls: max-message-size") == 0u);
    BOOST_TEST(dtls_create_error(io, with(sdk::options{}, "cert-file", pki().server.cert))
                   .find("dtls: cert-file is set but key-file is not") == 0u);
    // Over a stream flow, and as a server without a certificate.
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto dtls = make_dtls(io, client_options());
    sdk::open_params p;
    p.remote = ep("127.0.0.1", 9);
    sdk::flow_error err;
    auto lower = tcp->open(nullptr, p, err);
    BOOST_REQUIRE(lower);
    BOOST_TEST(!dtls->open(lower, p, err));
    BOOST_TEST(err.reason == "dtls needs a datagram flow below it, got a stream flow");
    auto udp = make_layer(post_plugin_udp(), io);
    p.side = sdk::role::server;
    auto dlower = udp->open(nullptr, p, err);
    BOOST_REQUIRE(dlower);
    BOOST_TEST(!dtls->open(dlower, p, err));
    BOOST_TEST(err.reason.find("cert-file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(only_a_dtls_layer_with_a_certificate_can_serve) {
    asio::io_context io;
    sdk::flow_error err;
    BOOST_TEST(!make_dtls(io, client_options())->can_serve(err));
    BOOST_TEST(err.reason.find("dtls: the server role needs a certificate") != std::string::npos,
               err.reason);
    sdk::flow_error none;
    BOOST_TEST(make_dtls(io, server_options())->can_serve(none));
    BOOST_TEST(!none);
}
