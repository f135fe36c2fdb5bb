// TLS through the kernel: carriers over [framer, tls, tcp] share an association, so the second
// one resumes the first one's session, and an idempotent message sent before it is ready goes
// as TLS 1.3 early data (after the framer's preface); a context restarted with the same
// association file resumes too. What happened is read from the tls layer's log, which reaches
// the application as trace events.
#define BOOST_TEST_MODULE tls carriers
#include <utility>

#include "../support/test_pki.hpp"
#include "carrier_log_support.hpp"
#include "loopback_support.hpp"

#include <boost/test/unit_test.hpp>

#include <filesystem>

using namespace post;
using namespace post::test;

namespace {

std::string tls_options(const test_pki& pki, bool server) {
    return server ? "protocols:\n  tls: { cert-file: " + pki.server.cert +
                        ", key-file: " + pki.server.key + ", early-data: true }\n"
                  : "protocols:\n  tls: { ca-file: " + pki.ca + " }\n";
}

policy tls_policy(const test_pki& pki, bool server) {
    return policy::parse("version: 1\nname: tls\nstacks:\n  - [framer, tls, tcp]\n" +
                             tls_options(pki, server),
                         server ? "server.yaml" : "client.yaml");
}

} // namespace

BOOST_AUTO_TEST_CASE(the_second_carrier_resumes_and_sends_its_idempotent_message_as_early_data) {
    test_pki pki;
    loopback_fixture f;
    layer_log log(f.ctx, "tls");
    recording_echo server(f.ctx, tls_policy(pki, true), "tls");
    const auto client = tls_policy(pki, false);

    round_trip(f.io, f.ctx, server.where(), client, "first", false);
    BOOST_TEST(log.has("full handshake"), log.all());

    round_trip(f.io, f.ctx, server.where(), client, "second", true);
    BOOST_TEST(log.has("resumed session"), log.all());
    BOOST_TEST(log.has("early data accepted"), log.all());
    // Once each: early data is not delivered again after the handshake.
    BOOST_TEST(server.got == (std::vector<std::string>{"first", "second"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_message_that_is_not_idempotent_waits_for_the_handshake) {
    test_pki pki;
    loopback_fixture f;
    layer_log log(f.ctx, "tls");
    recording_echo server(f.ctx, tls_policy(pki, true), "tls");
    const auto client = tls_policy(pki, false);
    round_trip(f.io, f.ctx, server.where(), client, "ticket", false);
    round_trip(f.io, f.ctx, server.where(), client, "not idempotent", false);
    BOOST_TEST(log.has("resumed session"), log.all());
    BOOST_TEST(!log.has("early data accepted"), log.all());
    BOOST_TEST(server.got.back() == "not idempotent");
}

BOOST_AUTO_TEST_CASE(a_restarted_application_resumes_from_the_association_file) {
    test_pki pki;
    const auto file = pki.dir() / "associations.json";
    boost::asio::io_context server_io;
    // The server lives across both client "runs" (its ticket keys are per process).
    context server_ctx(server_io, loopback_options());
    recording_echo server(server_ctx, tls_policy(pki, true), "tls");
    const auto client = tls_policy(pki, false);
    auto run_client = [&](const std::string& text) {
        auto o = loopback_options();
        o.association_file = file;
        // Client and server share one thread here: run the server's io from the client's.
        boost::asio::io_context io;
        context ctx(io, o);
        BOOST_TEST(ctx.warnings().empty());
        layer_log log(ctx, "tls");
        auto c = initiate(ctx, server.where(), client);
        c.send(message(text));
        bool done = false;
        std::optional<error> failure;
        c.on_received([&](message) { c.close(); });
        c.on_closed([&] { done = true; });
        c.on_error([&](const error& e) { failure = e; });
        poll_both_until(io, server_io, [&] { return done || failure; });
        BOOST_REQUIRE_MESSAGE(done, (failure ? failure->to_string() : std::string("timed out")));
        // Tickets arrive after the handshake: let the last save run before the context goes.
        io.poll();
        return log;
    };
    auto first = run_client("run 1");
    BOOST_TEST(first.has("full handshake"), first.all());
    BOOST_REQUIRE(std::filesystem::exists(file));
    BOOST_TEST(((std::filesystem::status(file).permissions() & std::filesystem::perms::all) ==
                (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)));
    auto second = run_client("run 2");
    BOOST_TEST(second.has("resumed session"), second.all());
}
