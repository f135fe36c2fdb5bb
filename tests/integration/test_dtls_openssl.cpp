// The dtls layer against real OpenSSL peers: our client against `openssl s_server -dtls1_2
// -listen`, and `openssl s_client -dtls1_2` against our listener. Skipped, with the reason, when
// the openssl program is missing.
#define BOOST_TEST_MODULE dtls layer against openssl
#include <utility>

#include "test_dtls_support.hpp"

#include <boost/test/unit_test.hpp>

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
namespace utf = boost::unit_test;

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

} // namespace

BOOST_AUTO_TEST_CASE(our_client_against_s_server, *utf::precondition(openssl_available())) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    auto dtls = make_dtls(io, client_options());
    s_server srv(io, find_program("openssl"), {"-dtls1_2", "-listen"});
    auto client = std::make_shared<flow_recorder>();
    auto c = open_dtls_client(*udp, *dtls, srv.port, client);
    c->send(bytes("hello s_server\n"), meta(1));
    BOOST_REQUIRE(
        run_until(io, [&] { return srv.proc->contains("hello s_server") || client->closed; }));
    BOOST_TEST(client->ready);
    BOOST_TEST(dtls_summary_of(c).version == "DTLSv1.2");
    srv.proc->write("hello post\n");
    BOOST_REQUIRE(run_until(io, [&] { return !client->messages.empty() || client->closed; }));
    BOOST_REQUIRE(!client->messages.empty());
    BOOST_TEST(text(client->messages[0]) == "hello post\n");
    BOOST_REQUIRE(run_until(io, [&] { return client->sent.size() == 1; }));
    c->close();
    BOOST_REQUIRE(run_until(io, [&] { return client->closed.has_value(); }));
    BOOST_TEST(!*client->closed, client->closed->reason);
}

BOOST_AUTO_TEST_CASE(s_client_against_our_listener, *utf::precondition(openssl_available())) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    auto dtls = make_dtls(io, with(server_options(), "alpn", std::vector<std::string>{"post/1"}));
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen_dtls(*udp, *dtls, server);
    child_process client(io, {find_program("openssl"), "s_client", "-dtls1_2", "-connect",
                              "127.0.0.1:" + std::to_string(acc->local_endpoint().port), "-CAfile",
                              pki().ca, "-servername", "localhost", "-verify_return_error", "-alpn",
                              "post/1"});
    client.write("ping from s_client\n");
    BOOST_REQUIRE(run_until(io, [&] {
        return (!server->accepted.empty() && !server->accepted.back().events->messages.empty()) ||
               client.eof();
    }));
    BOOST_REQUIRE(!server->accepted.empty());
    auto& s = server->accepted.back();
    BOOST_TEST(s.events->ready);
    BOOST_TEST(text(s.events->messages[0]) == "ping from s_client\n");
    BOOST_TEST(dtls_summary_of(s.flow).alpn == "post/1");
    s.flow->send(bytes("pong from post\n"), meta(1));
    BOOST_REQUIRE(run_until(io, [&] { return client.contains("pong from post") || client.eof(); }));
    BOOST_TEST(client.contains("Verify return code: 0 (ok)"), client.output());
    BOOST_TEST(client.contains("ALPN protocol: post/1"));
    s.flow->close();
    BOOST_REQUIRE(run_until(io, [&] { return s.events->closed.has_value(); }));
    BOOST_TEST(!*s.events->closed, s.events->closed->reason);
}
