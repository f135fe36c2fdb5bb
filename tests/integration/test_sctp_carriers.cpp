// SCTP through the kernel, from policies: carriers over [sctp, udp] and over [sctp, dtls, udp]
// (the WebRTC data-channel stack: SCTP inside DTLS inside UDP) echo messages with their
// boundaries; over DTLS the server's certificate is verified, and an untrusted one is refused.
#define BOOST_TEST_MODULE sctp carriers
#include <utility>

#include "../support/test_pki.hpp"
#include "loopback_support.hpp"

#include <boost/test/unit_test.hpp>

#include <optional>
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

/// Sends `texts` on one carrier and collects the echoes, then closes. Returns the failure, if
/// any, else the echoes.
std::variant<error, std::vector<std::string>> exchange(boost::asio::io_context& io, context& ctx,
                                                       const remote& r, const policy& p,
                                                       const std::vector<std::string>& texts) {
    auto c = initiate(ctx, r, p);
    std::vector<std::string> echoes;
    std::optional<error> failure;
    bool closed = false;
    for (const auto& t : texts)
        c.send(message(std::string_view(t)));
    c.on_received([&](message m) {
        echoes.emplace_back(m.text());
        if (echoes.size() == texts.size()) c.close();
    });
    c.on_error([&](const error& e) { failure = e; });
    c.on_closed([&] { closed = true; });
    run_until(io, [&] { return closed || failure.has_value(); });
    if (failure) return *failure;
    BOOST_TEST(c.stack().front() == "sctp");
    return echoes;
}

} // namespace

BOOST_AUTO_TEST_CASE(sctp_over_udp_echoes_messages_with_their_boundaries) {
    loopback_fixture f;
    echo_server server(f.ctx, sctp_policy("[sctp, udp]"));
    auto got = exchange(f.io, f.ctx, server.where(), sctp_policy("[sctp, udp]"),
                        {"a", std::string(70000, 'b'), "last"});
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
                        sctp_policy("[sctp, dtls, udp]", dtls_client(pki)), sent);
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
                        sctp_policy("[sctp, dtls, udp]", dtls_client(pki)), {"never"});
    BOOST_REQUIRE(std::holds_alternative<error>(got));
    BOOST_TEST_MESSAGE(std::get<error>(got).to_string());
    BOOST_TEST(std::get<error>(got).to_string().find("certificate") != std::string::npos,
               std::get<error>(got).to_string());
}
