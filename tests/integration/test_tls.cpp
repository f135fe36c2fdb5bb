// The tls layer over real loopback TCP, our client against our server: data both ways over
// TLS 1.2 and 1.3, ALPN, graceful close, resumption and early data, every certificate check
// (with the reason each failure gives), client certificates, and peers that are not TLS or
// damage records in flight.
#define BOOST_TEST_MODULE tls layer
#include <utility>

#include "test_tls_support.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
using early_data = post::plugins::tls::handshake_summary::early_data;

BOOST_TEST_GLOBAL_FIXTURE(ignore_sigpipe);

namespace {

/// Our tls server over tcp on loopback, echoing what it receives unless told otherwise.
struct tls_pair {
    asio::io_context io;
    log_capture client_log, server_log;
    std::unique_ptr<sdk::layer> tcp = make_layer(post_plugin_tcp(), io);
    std::unique_ptr<sdk::layer> server_tls;
    std::unique_ptr<sdk::layer> client_tls;
    std::shared_ptr<acceptor_recorder> server = std::make_shared<acceptor_recorder>();
    std::shared_ptr<sdk::acceptor> acc;
    std::uint64_t next_echo_id = 1000;

    tls_pair(sdk::options server_opts, sdk::options client_opts, bool echo = true) {
        server_tls = make_tls(io, std::move(server_opts), &server_log);
        client_tls = make_tls(io, std::move(client_opts), &client_log);
        if (echo)
            server->on_message = [this](flow_recorder&, const sdk::byte_buffer& m) {
                server->accepted.back().flow->send(m, meta(next_echo_id++));
            };
        acc = listen_tls(*tcp, *server_tls, server);
    }
    std::uint16_t port() const { return acc->local_endpoint().port; }

    std::shared_ptr<sdk::flow> connect(const std::shared_ptr<flow_recorder>& events,
                                       std::string host = "localhost",
                                       std::shared_ptr<sdk::session_store> store = {},
                                       bool start = true) {
        return open_tls_client(*tcp, *client_tls, port(), events, std::move(host), std::move(store),
                               start);
    }
    bool wait(std::function<bool()> f) { return run_until(io, std::move(f)); }
};

sdk::options with(sdk::options o, const std::string& key, sdk::option_value v) {
    o.set(key, std::move(v));
    return o;
}

/// Connects a client that must fail; returns its error (and checks it never got ready).
sdk::flow_error expect_client_failure(tls_pair& t, std::string host = "localhost") {
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, std::move(host));
    BOOST_REQUIRE_MESSAGE(t.wait([&] { return client->closed.has_value(); }),
                          "the client never closed");
    BOOST_TEST(!client->ready);
    BOOST_TEST(static_cast<bool>(*client->closed));
    return *client->closed;
}

void exchange_and_close(tls_pair& t, const char* version) {
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client);
    const auto big = pattern(1 << 20, 7);
    c->send(bytes("hello over tls"), meta(1));
    c->send(big, meta(2));
    const std::size_t total = 14 + big.size();
    BOOST_REQUIRE(t.wait([&] { return client->stream.size() >= total || client->closed; }));
    BOOST_TEST(client->ready);
    BOOST_REQUIRE_EQUAL(client->stream.size(), total);
    BOOST_TEST(text(sdk::byte_buffer(client->stream.begin(), client->stream.begin() + 14)) ==
               "hello over tls");
    BOOST_TEST((sdk::byte_buffer(client->stream.begin() + 14, client->stream.end()) == big));
    BOOST_REQUIRE(t.wait([&] { return client->sent.size() == 2; }));
    BOOST_TEST(client->sent == (std::vector<std::uint64_t>{1, 2}),
               boost::test_tools::per_element());
    BOOST_TEST(c->queued_bytes() == 0u);

    const auto& cs = summary_of(c);
    BOOST_TEST(cs.version == version);
    BOOST_TEST(cs.alpn == "post/1");
    BOOST_TEST(summary_of(t.server->accepted.at(0).flow).alpn == "post/1");
    BOOST_TEST(t.client_log.contains("full handshake (no ticket)"));

    c->close();
    auto& srv = *t.server->accepted.at(0).events;
    BOOST_REQUIRE(t.wait([&] { return client->closed && srv.closed; }));
    BOOST_TEST(!*client->closed, "client: " << client->closed->reason);
    BOOST_TEST(!*srv.closed, "server: " << srv.closed->reason);
    BOOST_TEST(client->events_after_close == 0);
    BOOST_TEST(srv.sent.size() == srv.messages.size()); // every echo was reported sent
}

} // namespace

BOOST_AUTO_TEST_CASE(tls13_data_both_ways_alpn_and_graceful_close) {
    tls_pair t(with(server_options(), "alpn", std::vector<std::string>{"post/1", "h2"}),
               with(client_options(), "alpn", std::vector<std::string>{"x/9", "post/1"}));
    exchange_and_close(t, "TLSv1.3");
}

BOOST_AUTO_TEST_CASE(tls12_data_both_ways_alpn_and_graceful_close) {
    tls_pair t(with(server_options(), "alpn", std::vector<std::string>{"post/1"}),
               with(with(client_options(), "alpn", std::vector<std::string>{"post/1"}),
                    "max-version", std::string("tls1.2")));
    exchange_and_close(t, "TLSv1.2");
}

BOOST_AUTO_TEST_CASE(stream_info_and_features) {
    const auto* d = post_plugin_tls();
    BOOST_REQUIRE_EQUAL(d->layer_count, 2u); // tls, then dtls (test_dtls)
    BOOST_TEST(std::string(d->layers[0].name) == "tls");
    BOOST_TEST(
        (d->layers[0].upper == sdk::edge::stream && d->layers[0].lower == sdk::edge::stream));
    BOOST_TEST(std::string(d->layers[0].features[0].name) == "security");
    tls_pair t(server_options(), client_options());
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client);
    const auto i = c->info();
    BOOST_TEST((i.kind == sdk::edge::stream));
    BOOST_TEST(i.max_message_size == 0u);
    BOOST_TEST((i.capabilities & sdk::cap_ordered));
    BOOST_TEST(!(i.capabilities & sdk::cap_early_data)); // no stored session
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(client->ready);
}

BOOST_AUTO_TEST_CASE(alpn_without_overlap_fails_the_handshake) {
    tls_pair t(with(server_options(), "alpn", std::vector<std::string>{"post/1"}),
               with(client_options(), "alpn", std::vector<std::string>{"h2", "http/1.1"}));
    const auto e = expect_client_failure(t);
    BOOST_TEST(e.reason.find("no shared ALPN protocol") != std::string::npos, e.reason);
    BOOST_REQUIRE(t.wait(
        [&] { return !t.server->accepted.empty() && t.server->accepted[0].events->closed; }));
    const auto& se = *t.server->accepted[0].events->closed;
    BOOST_TEST(se.reason.find("no shared ALPN protocol (the client offered 'h2', 'http/1.1'; we "
                              "accept 'post/1')") != std::string::npos,
               se.reason);
}

// A log sink that wants no debug messages gets none of the per-connection ones (the layer
// does not even build their text); one that wants them gets the handshake's summary.
BOOST_AUTO_TEST_CASE(debug_messages_only_when_the_sink_wants_them) {
    tls_pair t(server_options(), client_options());
    t.client_log.debug_wanted = false;
    t.server_log.debug_wanted = false;
    auto store = std::make_shared<memory_store>();
    for (int i = 0; i < 2; ++i) { // a full handshake, then a resumed one
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client, "localhost", store);
        c->send(bytes("ping"), meta(1));
        BOOST_REQUIRE(t.wait([&] { return client->stream.size() == 4 || client->closed; }));
        BOOST_TEST(summary_of(c).resumed == (i == 1));
        c->close();
        BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
        BOOST_TEST(!*client->closed, client->closed->reason);
    }
    for (const auto* log : {&t.client_log, &t.server_log})
        BOOST_TEST(log->lines.empty(), (log->lines.empty() ? "" : log->lines.front()));

    t.client_log.debug_wanted = true;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, "localhost", store);
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(t.client_log.contains("offering a stored session"));
    BOOST_TEST(t.client_log.contains("handshake complete with"));
    BOOST_TEST(t.client_log.contains("resumed session"));
}

BOOST_AUTO_TEST_CASE(resumption_and_early_data_between_our_client_and_server) {
    tls_pair t(with(server_options(), "early-data", true), client_options());
    auto store = std::make_shared<memory_store>();
    {
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client, "localhost", store);
        BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
        c->send(bytes("first"), meta(1));
        // TLS 1.3 tickets arrive after the handshake, with the first data.
        BOOST_REQUIRE(t.wait([&] { return !store->blobs.empty() && client->stream.size() == 5; }));
        BOOST_TEST(!summary_of(c).resumed);
        c->close();
        BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
    }
    BOOST_TEST(store->blobs.count("tls/localhost/") == 1u);

    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, "localhost", store, /*start=*/false);
    BOOST_TEST((c->info().capabilities & sdk::cap_early_data));
    sdk::send_meta m = meta(7);
    m.idempotent = true;
    c->send(bytes("GET /early"), m);
    c->start();
    BOOST_REQUIRE(t.wait([&] { return client->stream.size() == 10 || client->closed; }));
    BOOST_TEST(text(client->stream) == "GET /early");
    BOOST_REQUIRE(t.wait([&] { return !client->sent.empty(); }));
    BOOST_TEST(client->sent.front() == 7u);
    const auto& s = summary_of(c);
    BOOST_TEST(s.resumed);
    BOOST_TEST((s.early == early_data::accepted));
    BOOST_TEST(s.early_bytes == 10u);
    BOOST_TEST(t.client_log.contains("resumed session"));
    BOOST_TEST(!(c->info().capabilities & sdk::cap_early_data)); // over after the handshake
    const auto& server_flow = t.server->accepted.back();
    BOOST_TEST((summary_of(server_flow.flow).early == early_data::accepted));
    // Early data is delivered after on_ready, never before it.
    BOOST_TEST(server_flow.events->order.at(0) == "ready");
    BOOST_TEST(server_flow.events->order.at(1) == "recv");
}

// TLS 1.2 hands the session over inside the handshake (RFC 5077 ticket, then Finished), so the
// store holds it once the carrier is ready; the next carrier's abbreviated handshake resumes it.
// There is no early data in TLS 1.2: an idempotent first message waits for the handshake.
BOOST_AUTO_TEST_CASE(tls12_resumes_from_the_stored_ticket) {
    tls_pair t(with(server_options(), "early-data", true),
               with(client_options(), "max-version", std::string("tls1.2")));
    auto store = std::make_shared<memory_store>();
    {
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client, "localhost", store);
        BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
        BOOST_REQUIRE(client->ready);
        BOOST_TEST(store->blobs.count("tls/localhost/") == 1u);
        BOOST_TEST(!summary_of(c).resumed);
        BOOST_TEST(t.client_log.contains("full handshake (no ticket)"));
        c->close();
        BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
    }

    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, "localhost", store, /*start=*/false);
    BOOST_TEST(!(c->info().capabilities & sdk::cap_early_data));
    sdk::send_meta m = meta(3);
    m.idempotent = true;
    c->send(bytes("again"), m);
    c->start();
    BOOST_REQUIRE(t.wait([&] { return client->stream.size() == 5 || client->closed; }));
    BOOST_TEST(text(client->stream) == "again");
    const auto& s = summary_of(c);
    BOOST_TEST(s.resumed);
    BOOST_TEST(s.version == "TLSv1.2");
    BOOST_TEST((s.early == early_data::not_tried));
    BOOST_TEST(t.client_log.contains("resumed session"));
    BOOST_TEST((summary_of(t.server->accepted.back().flow).resumed));
}

BOOST_AUTO_TEST_CASE(early_data_refused_by_our_server_is_sent_again_once) {
    // The server issues tickets but does not accept early data; the ticket comes from a server
    // that did (same certificate and settings otherwise), so the client tries.
    tls_pair t(with(server_options(), "early-data", false), client_options());
    auto store = std::make_shared<memory_store>();
    {
        tls_pair early(with(server_options(), "early-data", true), client_options());
        auto client = std::make_shared<flow_recorder>();
        auto c = early.connect(client, "localhost", store);
        BOOST_REQUIRE(early.wait([&] { return client->ready || client->closed; }));
        c->send(bytes("x"), meta(1));
        BOOST_REQUIRE(
            early.wait([&] { return !store->blobs.empty() && client->stream.size() == 1; }));
        c->close();
        BOOST_REQUIRE(early.wait([&] { return client->closed.has_value(); }));
    }
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, "localhost", store, false);
    BOOST_REQUIRE((c->info().capabilities & sdk::cap_early_data));
    sdk::send_meta m = meta(1);
    m.idempotent = true;
    c->send(bytes("once-"), m);
    c->send(bytes("then-"), meta(2)); // not idempotent: waits, and so does what follows
    m.id = 3;
    c->send(bytes("last"), m);
    c->start();
    BOOST_REQUIRE(t.wait([&] { return client->stream.size() >= 14 || client->closed; }));
    BOOST_TEST(text(client->stream) == "once-then-last");
    BOOST_REQUIRE(t.wait([&] { return client->sent.size() == 3; }));
    BOOST_TEST(client->sent == (std::vector<std::uint64_t>{1, 2, 3}),
               boost::test_tools::per_element());
    BOOST_TEST((summary_of(c).early == early_data::rejected));
    BOOST_TEST(summary_of(c).early_bytes == 5u); // only the first went early
}

BOOST_AUTO_TEST_CASE(bad_server_certificates_fail_with_the_failed_check) {
    struct bad {
        const cert_files* cert;
        const char* expect;
    };
    const bad cases[] = {
        {&pki().self_signed, "certificate verify failed: self-signed certificate"},
        {&pki().expired, "certificate verify failed: certificate has expired (depth 0, subject "
                         "CN=localhost)"},
        {&pki().wrong_name, "certificate verify failed: hostname mismatch: the certificate is "
                            "not valid for 'localhost'"},
        {&pki().foreign, "the issuing CA is not trusted"},
    };
    for (const auto& b : cases) {
        BOOST_TEST_CONTEXT("server certificate " << b.cert->cert) {
            tls_pair t(server_options(*b.cert), client_options());
            const auto e = expect_client_failure(t);
            BOOST_TEST(e.reason.find(b.expect) != std::string::npos, e.reason);
            BOOST_TEST((e.code == std::errc::permission_denied));
        }
    }
}

BOOST_AUTO_TEST_CASE(address_is_verified_when_there_is_no_name) {
    tls_pair t(server_options(), client_options());
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client, ""); // verified against 127.0.0.1 (an IP SAN)
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(client->ready);
    const auto e = expect_client_failure(t, "127.0.0.2");
    BOOST_TEST(e.reason.find("IP address mismatch: the certificate is not valid for '127.0.0.2'") !=
                   std::string::npos,
               e.reason);
    // server-name overrides the host name the application gave.
    tls_pair named(server_options(),
                   with(client_options(), "server-name", std::string("wrong.example")));
    const auto e2 = expect_client_failure(named, "localhost");
    BOOST_TEST(e2.reason.find("not valid for 'wrong.example'") != std::string::npos, e2.reason);
}

BOOST_AUTO_TEST_CASE(verify_peer_false_connects_and_warns) {
    tls_pair t(server_options(pki().self_signed), with(client_options(), "verify-peer", false));
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client);
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(client->ready);
    BOOST_TEST(t.client_log.contains("certificate verification is OFF"));
}

BOOST_AUTO_TEST_CASE(pinned_keys_match_and_mismatch) {
    {
        tls_pair t(server_options(), with(client_options(), "pin-sha256",
                                          std::vector<std::string>{pin_of(pki().client.cert),
                                                                   pin_of(pki().server.cert)}));
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client);
        BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
        BOOST_TEST(client->ready);
    }
    {
        tls_pair t(server_options(), with(client_options(), "pin-sha256",
                                          std::vector<std::string>{pin_of(pki().wrong_name.cert)}));
        const auto e = expect_client_failure(t);
        BOOST_TEST(e.reason.find("pinned key mismatch") != std::string::npos, e.reason);
        BOOST_TEST((e.code == std::errc::permission_denied));
    }
    {
        // Pins still apply with verify-peer off (a self-signed server pinned by key).
        tls_pair t(server_options(pki().self_signed),
                   with(with(client_options(), "verify-peer", false), "pin-sha256",
                        std::vector<std::string>{pin_of(pki().self_signed.cert)}));
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client);
        BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
        BOOST_TEST(client->ready);
    }
}

BOOST_AUTO_TEST_CASE(client_certificates_required) {
    auto server_opts =
        with(with(server_options(), "client-auth", std::string("require")), "ca-file", pki().ca);
    {
        tls_pair t(server_opts, client_options());
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client);
        c->send(bytes("let me in"), meta(1));
        BOOST_REQUIRE(t.wait([&] {
            return client->closed && !t.server->accepted.empty() &&
                   t.server->accepted[0].events->closed;
        }));
        const auto& se = *t.server->accepted[0].events->closed;
        BOOST_TEST(se.reason.find("the client sent no certificate") != std::string::npos,
                   se.reason);
        BOOST_TEST(!t.server->accepted[0].events->ready);
        BOOST_TEST(t.server->accepted[0].events->stream.empty());
        BOOST_TEST(static_cast<bool>(*client->closed)); // TLS 1.3: the client learns it late
        BOOST_TEST(client->closed->reason.find("requires a client certificate") !=
                       std::string::npos,
                   client->closed->reason);
    }
    {
        tls_pair t(server_opts, with(with(client_options(), "cert-file", pki().client.cert),
                                     "key-file", pki().client.key));
        auto client = std::make_shared<flow_recorder>();
        auto c = t.connect(client);
        c->send(bytes("let me in"), meta(1));
        BOOST_REQUIRE(t.wait([&] { return client->stream.size() == 9 || client->closed; }));
        BOOST_TEST(text(client->stream) == "let me in");
        BOOST_TEST(t.server->accepted.at(0).events->ready);
    }
}

namespace {

/// A TLS server that is not ours (OpenSSL through Asio's ssl::stream), accepting one client,
/// to watch what our client puts on the wire when it closes.
struct openssl_peer {
    asio::io_context& io;
    asio::ssl::context ctx{asio::ssl::context::tls_server};
    asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    /// Made once ctx holds the certificate: SSL_new copies it from there.
    std::optional<asio::ssl::stream<asio::ip::tcp::socket>> tls;
    bool handshake_done = false;
    std::optional<boost::system::error_code> read_end; ///< How its read of the client ended.
    std::optional<bool> fin_with_close_notify;         ///< Client FIN already there then?

    explicit openssl_peer(asio::io_context& io)
        : io(io) {
        ctx.use_certificate_chain_file(pki().server.cert);
        ctx.use_private_key_file(pki().server.key, asio::ssl::context::pem);
        tls.emplace(io, ctx);
        acceptor.async_accept(tls->next_layer(), [this](boost::system::error_code ec) {
            if (ec) return;
            tls->async_handshake(asio::ssl::stream_base::server,
                                 [this](boost::system::error_code ec) {
                                     handshake_done = !ec;
                                     if (!ec) read();
                                 });
        });
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }

    void read() {
        tls->async_read_some(asio::buffer(buf), [this](boost::system::error_code ec, std::size_t) {
            if (!ec) return read();
            // The client's close_notify (eof): is its TCP FIN already behind it?
            char c;
            const auto n =
                ::recv(tls->next_layer().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
            fin_with_close_notify = n == 0;
            read_end = ec;
        });
    }
    char buf[4096];
};

/// Our tls client connected to an openssl_peer, closing.
struct closing_client {
    asio::io_context io;
    openssl_peer peer{io};
    log_capture tcp_log;
    std::unique_ptr<sdk::layer> tcp = make_layer(post_plugin_tcp(), io, {}, &tcp_log);
    log_capture log;
    std::unique_ptr<sdk::layer> tls = make_tls(io, client_options(), &log);
    std::shared_ptr<flow_recorder> client = std::make_shared<flow_recorder>();
    std::shared_ptr<sdk::flow> c = open_tls_client(*tcp, *tls, peer.port(), client);

    closing_client() {
        BOOST_REQUIRE(run_until(io, [&] { return client->ready || client->closed; }));
        BOOST_REQUIRE_MESSAGE(client->ready, (client->closed ? client->closed->reason : ""));
        c->close();
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(graceful_close_leaves_the_peer_to_close_the_connection_first) {
    // Our close_notify goes at once, but our FIN waits for the peer's close_notify: the peer's
    // FIN goes first, so the TIME_WAIT is the peer's (the server's), not the client's.
    closing_client t;
    auto& io = t.io;
    auto& log = t.log;
    auto& peer = t.peer;
    auto& client = t.client;
    BOOST_REQUIRE(run_until(io, [&] { return peer.read_end.has_value(); }));
    BOOST_TEST((*peer.read_end == asio::error::eof), peer.read_end->message());
    BOOST_TEST(!*peer.fin_with_close_notify, "the client sent its FIN with close_notify");
    BOOST_TEST(!client->closed.has_value());

    // The peer answers and closes; our client ends cleanly, with the FIN already there.
    bool shut = false;
    peer.tls->async_shutdown([&](boost::system::error_code) {
        boost::system::error_code ignored;
        peer.tls->next_layer().close(ignored);
        shut = true;
    });
    BOOST_REQUIRE(run_until(io, [&] { return shut && client->closed.has_value(); }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!log.contains("did not answer close_notify"));
}

BOOST_AUTO_TEST_CASE(graceful_close_ends_once_close_notify_went_both_ways) {
    // The peer answers our close_notify but keeps its TCP connection open. The TLS connection is
    // over, so our client closes its socket at once (the tcp layer's release) instead of
    // half-closing and waiting for the peer's FIN, which would take the tcp grace period.
    closing_client t;
    auto& io = t.io;
    auto& peer = t.peer;
    auto& client = t.client;
    BOOST_REQUIRE(run_until(io, [&] { return peer.read_end.has_value(); }));
    bool answered = false;
    peer.tls->async_shutdown([&](boost::system::error_code) { answered = true; });
    BOOST_REQUIRE(run_until(io, [&] { return answered && client->closed.has_value(); }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!t.log.contains("did not answer close_notify"));
    BOOST_TEST(!t.tcp_log.contains("close grace"));
    // Our FIN reaches the peer, whose socket is still open.
    const int fd = peer.tls->next_layer().native_handle();
    BOOST_REQUIRE(run_until(io, [&] {
        char c;
        return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }));
}

BOOST_AUTO_TEST_CASE(graceful_close_to_a_peer_that_never_answers_ends_after_the_grace) {
    closing_client t; // the peer reads our close_notify, then neither answers nor closes
    auto& io = t.io;
    auto& log = t.log;
    auto& peer = t.peer;
    auto& client = t.client;
    // The tls grace (2 s), then the tcp layer's own for the peer's FIN (2 s).
    BOOST_REQUIRE(run_until(
        io, [&] { return client->closed.has_value(); }, std::chrono::seconds(15)));
    BOOST_TEST(!*client->closed, client->closed->reason); // our close_notify went out
    BOOST_TEST(log.contains("did not answer close_notify within the close grace period"));
    BOOST_TEST(peer.read_end.has_value());
}

BOOST_AUTO_TEST_CASE(peer_that_does_not_speak_tls) {
    asio::io_context io;
    asio::ip::tcp::acceptor http(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket peer(io);
    http.async_accept(peer, [&](const boost::system::error_code& ec) {
        if (!ec)
            asio::write(peer,
                        asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")));
    });
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto tls = make_tls(io, client_options());
    auto client = std::make_shared<flow_recorder>();
    auto c = open_tls_client(*tcp, *tls, http.local_endpoint().port(), client);
    BOOST_REQUIRE(run_until(io, [&] { return client->closed.has_value(); }));
    BOOST_TEST(!client->ready);
    BOOST_TEST(client->closed->reason.find(
                   "peer does not speak TLS: first bytes were 48 54 54 50") != std::string::npos,
               client->closed->reason);
    BOOST_TEST((client->closed->code == std::errc::protocol_error));
}

BOOST_AUTO_TEST_CASE(truncated_and_corrupted_records_end_with_clear_errors) {
    struct damage_case {
        tcp_relay::damage how;
        const char* expect;
        std::errc code;
    };
    const damage_case cases[] = {
        {tcp_relay::damage::cut_mid_record,
         "TLS connection truncated: the peer closed the connection without close_notify, in the "
         "middle of a record",
         std::errc::connection_aborted},
        {tcp_relay::damage::flip_last_byte, "TLS record corrupted: bad record mac",
         std::errc::bad_message},
    };
    for (const auto& d : cases) {
        BOOST_TEST_CONTEXT("expecting " << d.expect) {
            tls_pair t(server_options(), client_options());
            tcp_relay relay(t.io, t.port());
            auto client = std::make_shared<flow_recorder>();
            auto c = open_tls_client(*t.tcp, *t.client_tls, relay.port(), client);
            c->send(bytes("ping"), meta(1));
            BOOST_REQUIRE(t.wait([&] { return client->stream.size() == 4 || client->closed; }));
            relay.armed = d.how;
            c->send(bytes("payload that will come back damaged"), meta(2));
            BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
            BOOST_TEST(client->closed->reason.find(d.expect) != std::string::npos,
                       client->closed->reason);
            BOOST_TEST((client->closed->code == d.code));
            BOOST_TEST(text(client->stream) == "ping"); // nothing damaged was delivered
        }
    }
}

BOOST_AUTO_TEST_CASE(sslkeylogfile_gets_the_traffic_secrets) {
    const auto path = pki().dir() / "keylog.txt";
    ::setenv("SSLKEYLOGFILE", path.c_str(), 1);
    tls_pair t(server_options(), client_options()); // the environment is read at creation
    ::unsetenv("SSLKEYLOGFILE");
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect(client);
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(client->ready);
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    BOOST_TEST(ss.str().find("CLIENT_TRAFFIC_SECRET_0 ") != std::string::npos, ss.str());
    BOOST_TEST(ss.str().find("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_configuration_is_refused_with_the_option_named) {
    asio::io_context io;
    BOOST_TEST(tls_create_error(io, with({}, "client-auth", std::string("always")))
                   .find("client-auth must be none, optional or require") != std::string::npos);
    BOOST_TEST(tls_create_error(io, with({}, "min-version", std::string("ssl3")))
                   .find("min-version must be tls1.2 or tls1.3") != std::string::npos);
    BOOST_TEST(tls_create_error(io, with({}, "pin-sha256", std::vector<std::string>{"abc"}))
                   .find("pin-sha256 entry 'abc'") != std::string::npos);
    BOOST_TEST(tls_create_error(io, with({}, "ca-file", std::string("/nonexistent/ca.pem")))
                   .find("cannot load ca-file '/nonexistent/ca.pem'") != std::string::npos);
    BOOST_TEST(tls_create_error(io, with({}, "cert-file", pki().server.cert))
                   .find("cert-file is set but key-file is not") != std::string::npos);
    BOOST_TEST(tls_create_error(io, with({}, "ciphers", std::string("NO-SUCH-CIPHER")))
                   .find("ciphers 'NO-SUCH-CIPHER'") != std::string::npos);

    // A server without a certificate: refused at open, naming the options.
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto tls = make_tls(io, client_options());
    sdk::open_params p;
    p.side = sdk::role::server;
    p.remote = ep("127.0.0.1", 1);
    sdk::flow_error err;
    auto lower = tcp->open(
        nullptr,
        [] {
            sdk::open_params q;
            q.remote = ep("127.0.0.1", 1);
            return q;
        }(),
        err);
    BOOST_REQUIRE(lower);
    BOOST_TEST(!tls->open(lower, p, err));
    BOOST_TEST(err.reason.find("cert-file and key-file") != std::string::npos, err.reason);
    BOOST_TEST(!tls->open(nullptr, p, err));
    BOOST_TEST(err.reason.find("needs a stream flow below it") != std::string::npos, err.reason);
}

BOOST_AUTO_TEST_CASE(only_a_layer_with_a_certificate_can_serve) {
    // What a listener asks before it binds (sdk::layer::can_serve): a client needs no
    // certificate, so the layer is created without one, but it cannot take the server role.
    asio::io_context io;
    sdk::flow_error err;
    BOOST_TEST(!make_tls(io, client_options())->can_serve(err));
    BOOST_TEST((err.code == std::errc::invalid_argument));
    BOOST_TEST(err.reason.find("tls: the server role needs a certificate") != std::string::npos,
               err.reason);
    sdk::flow_error none;
    BOOST_TEST(make_tls(io, server_options())->can_serve(none));
    BOOST_TEST(!none);
}
