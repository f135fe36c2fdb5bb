// The tls layer against real OpenSSL peers: our client against `openssl s_server` (full
// handshake, resumption, early data accepted and refused), and `openssl s_client` against our
// listener. Each case is skipped, with the reason, when the openssl program is missing.
#define BOOST_TEST_MODULE tls layer against openssl
#include <utility>

#include "test_tls_support.hpp"

#include <boost/test/unit_test.hpp>

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
namespace utf = boost::unit_test;
using early_data = post::plugins::tls::handshake_summary::early_data;

BOOST_TEST_GLOBAL_FIXTURE(ignore_sigpipe);

namespace {

struct openssl_available {
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        boost::test_tools::assertion_result r{!find_program("openssl").empty()};
        if (!r)
            r.message() << "SKIPPED: the `openssl` program is not on PATH (apt-get install "
                           "openssl)";
        return r;
    }
};

struct client_side {
    asio::io_context io;
    log_capture log;
    std::unique_ptr<sdk::layer> tcp = make_layer(post_plugin_tcp(), io);
    std::unique_ptr<sdk::layer> tls = make_tls(io, client_options(), &log);
    std::string openssl = find_program("openssl");
    std::shared_ptr<memory_store> store = std::make_shared<memory_store>();

    bool wait(std::function<bool()> f) { return run_until(io, std::move(f)); }

    /// A connection that completes its handshake, gets a ticket, then closes cleanly.
    void connect_for_ticket(std::uint16_t port) {
        auto client = std::make_shared<flow_recorder>();
        auto c = open_tls_client(*tcp, *tls, port, client, "localhost", store);
        BOOST_REQUIRE(wait([&] { return client->ready || client->closed; }));
        BOOST_REQUIRE_MESSAGE(client->ready, "handshake failed: " << client->closed->reason);
        BOOST_REQUIRE(wait([&] { return !store->blobs.empty() || client->closed; }));
        BOOST_REQUIRE(!store->blobs.empty());
        c->close();
        BOOST_REQUIRE(wait([&] { return client->closed.has_value(); }));
    }

    /// A connection that sends `payload` as an idempotent message before it starts.
    std::shared_ptr<sdk::flow> connect_with_early(std::uint16_t port, const std::string& payload,
                                                  const std::shared_ptr<flow_recorder>& client) {
        auto c = open_tls_client(*tcp, *tls, port, client, "localhost", store, false);
        BOOST_TEST((c->info().capabilities & sdk::cap_early_data));
        sdk::send_meta m = meta(42);
        m.idempotent = true;
        c->send(bytes(payload), m);
        c->start();
        return c;
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(our_client_against_s_server, *utf::precondition(openssl_available())) {
    client_side t;
    s_server srv(t.io, t.openssl, {});
    auto client = std::make_shared<flow_recorder>();
    auto c = open_tls_client(*t.tcp, *t.tls, srv.port, client);
    c->send(bytes("hello s_server\n"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return srv.proc->contains("hello s_server") || client->closed; }));
    BOOST_TEST(client->ready);
    BOOST_TEST(summary_of(c).version == "TLSv1.3");
    srv.proc->write("hello post\n");
    BOOST_REQUIRE(t.wait([&] { return text(client->stream) == "hello post\n" || client->closed; }));
    BOOST_TEST(text(client->stream) == "hello post\n");
    BOOST_REQUIRE(t.wait([&] { return client->sent.size() == 1; }));
    c->close();
    BOOST_REQUIRE(t.wait([&] { return client->closed.has_value(); }));
    BOOST_TEST(!*client->closed, client->closed->reason);
}

BOOST_AUTO_TEST_CASE(resumption_against_s_server, *utf::precondition(openssl_available())) {
    client_side t;
    s_server srv(t.io, t.openssl, {});
    t.connect_for_ticket(srv.port);
    BOOST_TEST(t.log.contains("full handshake (no ticket)"));
    auto client = std::make_shared<flow_recorder>();
    auto c = open_tls_client(*t.tcp, *t.tls, srv.port, client, "localhost", t.store);
    BOOST_REQUIRE(t.wait([&] { return client->ready || client->closed; }));
    BOOST_TEST(client->ready);
    BOOST_TEST(summary_of(c).resumed);
    BOOST_TEST(t.log.contains("resumed session"));
    // s_server's ticket carries no early-data allowance without -early_data.
    BOOST_TEST(!(c->info().capabilities & sdk::cap_early_data));
}

BOOST_AUTO_TEST_CASE(early_data_accepted_by_s_server, *utf::precondition(openssl_available())) {
    client_side t;
    s_server srv(t.io, t.openssl, {"-early_data"});
    t.connect_for_ticket(srv.port);
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_with_early(srv.port, "early-token-1234\n", client);
    // s_server writes the data unbuffered but its "Early data received" note through stdio,
    // which may come later: wait for both.
    BOOST_REQUIRE(t.wait([&] {
        return (!client->sent.empty() && srv.proc->contains("early-token-1234") &&
                srv.proc->contains("Early data received")) ||
               client->closed;
    }));
    BOOST_TEST(client->ready);
    BOOST_TEST(client->sent == (std::vector<std::uint64_t>{42}), boost::test_tools::per_element());
    BOOST_TEST(summary_of(c).resumed);
    BOOST_TEST((summary_of(c).early == early_data::accepted));
    BOOST_TEST(srv.proc->contains("Early data received"), srv.proc->output());
    BOOST_TEST(srv.proc->count("early-token-1234") == 1u);
}

BOOST_AUTO_TEST_CASE(early_data_refused_by_s_server_arrives_once,
                     *utf::precondition(openssl_available())) {
    client_side t;
    {
        s_server ticket_source(t.io, t.openssl, {"-early_data"});
        t.connect_for_ticket(ticket_source.port);
    }
    // Another server (other ticket keys) without -early_data: the ticket and the early data
    // are refused, and the bytes must still arrive, once.
    s_server srv(t.io, t.openssl, {});
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_with_early(srv.port, "replay-token-5678\n", client);
    BOOST_REQUIRE(t.wait([&] {
        return (!client->sent.empty() && srv.proc->contains("replay-token-5678")) || client->closed;
    }));
    BOOST_TEST(client->ready);
    BOOST_TEST(client->sent == (std::vector<std::uint64_t>{42}), boost::test_tools::per_element());
    BOOST_TEST((summary_of(c).early == early_data::rejected));
    BOOST_TEST(t.log.contains("full handshake (ticket refused)"));
    // Give a duplicate every chance to show up: a round trip through the server after it.
    srv.proc->write("after\n");
    BOOST_REQUIRE(t.wait([&] { return text(client->stream) == "after\n" || client->closed; }));
    BOOST_TEST(srv.proc->count("replay-token-5678") == 1u, srv.proc->output());
}

BOOST_AUTO_TEST_CASE(s_client_against_our_listener, *utf::precondition(openssl_available())) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto tls = make_tls(io, [] {
        auto o = server_options();
        o.set("alpn", std::vector<std::string>{"post/1"});
        return o;
    }());
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen_tls(*tcp, *tls, server);
    child_process client(io, {find_program("openssl"), "s_client", "-connect",
                              "127.0.0.1:" + std::to_string(acc->local_endpoint().port), "-CAfile",
                              pki().ca, "-servername", "localhost", "-verify_return_error", "-alpn",
                              "post/1"});
    client.write("ping from s_client\n");
    BOOST_REQUIRE(run_until(io, [&] {
        return (!server->accepted.empty() &&
                text(server->accepted[0].events->stream) == "ping from s_client\n") ||
               client.eof();
    }));
    BOOST_REQUIRE(!server->accepted.empty());
    auto& s = server->accepted[0];
    BOOST_TEST(s.events->ready);
    BOOST_TEST(summary_of(s.flow).alpn == "post/1");
    s.flow->send(bytes("pong from post\n"), meta(1));
    BOOST_REQUIRE(run_until(io, [&] { return client.contains("pong from post") || client.eof(); }));
    BOOST_TEST(client.contains("Verify return code: 0 (ok)"), client.output());
    BOOST_TEST(client.contains("ALPN protocol: post/1"));
    s.flow->close();
    BOOST_REQUIRE(run_until(io, [&] { return s.events->closed.has_value() && client.eof(); }));
    BOOST_TEST(!*s.events->closed, s.events->closed->reason);
}
