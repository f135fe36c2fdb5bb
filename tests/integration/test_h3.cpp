// HTTP/3 through the kernel (docs/http.md "HTTP/3"): our h3 client against our h3 server over
// [h3, quic, udp] on loopback, with a test PKI. GET and POST with bodies and fields both ways,
// 30 requests on one connection answered in order, a 3 MiB body both ways, a 404, HEAD, a body
// over max-message-size refused (sending) and fatal (receiving), a field section over
// max-header-size, a field with CRLF failing only its send, a server message with no request to
// answer, h3 over something other than quic refused by name, and a QUIC peer negotiating h3
// without being an HTTP/3 endpoint refused with the reason.
#define BOOST_TEST_MODULE h3
#include <utility>

#include "../support/test_pki.hpp"
#include "loopback_support.hpp"

#include <boost/test/unit_test.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace post;
using namespace post::test;

namespace {

const test_pki& pki() {
    static test_pki p;
    return p;
}

policy h3_policy(const std::string& extra = {}) {
    return policy::parse("version: 1\nname: h3\nstacks:\n  - [h3, quic, udp]\nprotocols:\n"
                         "  quic: { cert-file: " +
                             pki().server.cert + ", key-file: " + pki().server.key +
                             ", ca-file: " + pki().ca + " }\n" + extra,
                         "h3.yaml");
}

/// Our listener as an HTTP/3 server: answers each request with its method, path, authority and
/// body, and the status the request asks for in x-status.
struct h3_server {
    listener l;
    std::vector<std::map<std::string, std::string>> requests;
    h3_server(context& ctx, const policy& p)
        : l(listen(ctx, local::parse("127.0.0.1:0"), p)) {
        l.on_carrier([this](carrier c) {
            c.on_received([this, c](message m) mutable {
                auto& props = m.properties().extra;
                requests.push_back(props);
                message reply(props[":method"] + " " + props[":path"] + " " + props[":authority"] +
                              " " + std::string(m.text()));
                auto& out = reply.properties().extra;
                out["content-type"] = "text/plain";
                out["set-cookie"] = "a=1\nb=2";
                if (auto s = props.find("x-status"); s != props.end()) out[":status"] = s->second;
                c.send(std::move(reply));
            });
        });
    }
    std::uint16_t port() const { return port_of(l); }
    std::string url() const { return "https://localhost:" + std::to_string(port()); }
};

message request(std::string path, std::string body = {},
                std::map<std::string, std::string> fields = {}) {
    message m(body);
    fields[":path"] = std::move(path);
    m.properties().extra = std::move(fields);
    return m;
}

std::string why(const std::optional<error>& e) {
    return e ? e->to_string() : std::string();
}

struct client {
    carrier c;
    std::vector<message> responses;
    std::optional<error> failure;
    std::optional<error> send_failure;
    bool closed = false;
    client(context& ctx, const std::string& url, const policy& p)
        : c(initiate(ctx, remote::from_url(url), p)) {
        c.on_received([this](message m) { responses.push_back(std::move(m)); });
        c.on_send_error([this](message_id, const error& e) { send_failure = e; });
        c.on_error([this](const error& e) { failure = e; });
        c.on_closed([this] { closed = true; });
    }
    bool ended() const { return closed || failure.has_value(); }
    const std::map<std::string, std::string>& props(std::size_t i) const {
        return responses.at(i).properties().extra;
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(get_and_post_over_h3_quic_udp) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy());
    cl.c.send(request("/hello", "", {{"x-status", "201"}, {"accept", "a"}, {"X-Upper", "Up"}}));
    cl.c.send(request("/form", "name=value"));
    run_until(f.io, [&] { return cl.responses.size() == 2 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    const auto authority = "localhost:" + std::to_string(server.port());
    BOOST_TEST(cl.props(0).at(":status") == "201");
    BOOST_TEST(cl.responses[0].text() == "GET /hello " + authority + " ");
    BOOST_TEST(cl.props(0).at("content-type") == "text/plain");
    BOOST_TEST(cl.props(0).at("set-cookie") == "a=1\nb=2"); // two field lines, joined again
    BOOST_TEST(cl.props(0).at("content-length") == std::to_string(cl.responses[0].size()));
    BOOST_TEST(cl.props(1).at(":status") == "200");
    BOOST_TEST(cl.responses[1].text() == "POST /form " + authority + " name=value");
    BOOST_TEST_REQUIRE(server.requests.size() == 2u);
    // Defaults and fields as the server saw them: names in lower case, the HTTP/3 pseudo-headers.
    BOOST_TEST(server.requests[0].at(":scheme") == "https");
    BOOST_TEST(server.requests[0].at("accept") == "a");
    BOOST_TEST(server.requests[0].at("x-upper") == "Up");
    BOOST_TEST(server.requests[0].count("content-length") == 0u);
    BOOST_TEST(server.requests[1].at(":method") == "POST");
    BOOST_TEST(server.requests[1].at("content-length") == "10");
    BOOST_TEST(server.requests[1].count("ordered") == 0u);
    BOOST_TEST(cl.c.stack() == (std::vector<std::string>{"h3", "quic", "udp"}),
               boost::test_tools::per_element());
    cl.c.close();
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST(!cl.failure, why(cl.failure));
}

BOOST_AUTO_TEST_CASE(many_requests_on_one_connection_are_answered_in_order) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy());
    constexpr int n = 30;
    for (int i = 0; i < n; ++i)
        cl.c.send(
            request("/" + std::to_string(i), std::string(static_cast<std::size_t>(i) * 3000, 'x')));
    run_until(f.io, [&] { return cl.responses.size() == n || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    for (int i = 0; i < n; ++i) {
        const auto t = std::string(cl.responses[static_cast<std::size_t>(i)].text());
        BOOST_TEST(t.find(" /" + std::to_string(i) + " ") != std::string::npos, t.substr(0, 40));
        BOOST_TEST(t.size() > static_cast<std::size_t>(i) * 3000);
    }
}

BOOST_AUTO_TEST_CASE(a_large_body_both_ways) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy());
    std::string big(3 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 7 + i / 251);
    cl.c.send(request("/upload", big, {{":method", "PUT"}}));
    run_until(f.io, [&] { return cl.responses.size() == 1 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    const auto prefix = "PUT /upload localhost:" + std::to_string(server.port()) + " ";
    BOOST_TEST(cl.responses[0].text() == prefix + big);
}

BOOST_AUTO_TEST_CASE(a_404) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy());
    cl.c.send(request("/missing", "", {{"x-status", "404"}}));
    run_until(f.io, [&] { return cl.responses.size() == 1 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    BOOST_TEST(cl.props(0).at(":status") == "404");
    BOOST_TEST(cl.responses[0].text().find("/missing") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_head_request_gets_no_body) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy());
    cl.c.send(request("/head", "", {{":method", "HEAD"}}));
    run_until(f.io, [&] { return cl.responses.size() == 1 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    BOOST_TEST(cl.props(0).at(":status") == "200");
    BOOST_TEST(cl.responses[0].size() == 0u);
    BOOST_TEST(server.requests.at(0).at(":method") == "HEAD");
    // The length of the body a GET would have had (the server's reply text).
    BOOST_TEST(cl.props(0).at("content-length") != "0");
}

BOOST_AUTO_TEST_CASE(a_body_over_max_message_size_is_refused_to_send) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy("  h3: { max-message-size: 100 }\n"));
    cl.c.send(request("/big", std::string(101, 'b')));
    run_until(f.io, [&] { return cl.send_failure.has_value() || cl.ended(); });
    // The kernel refuses it already, from the flow's max_message_size (the layer would too).
    BOOST_TEST(why(cl.send_failure).find("exceeds the limit of 100 bytes") != std::string::npos,
               why(cl.send_failure));
    BOOST_TEST(server.requests.empty());
}

BOOST_AUTO_TEST_CASE(a_response_over_max_message_size_ends_the_connection) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy("  h3: { max-message-size: 100 }\n"));
    cl.c.send(request("/" + std::string(200, 'p')));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST_REQUIRE(cl.failure.has_value());
    BOOST_TEST(why(cl.failure).find("exceeds max-message-size 100") != std::string::npos,
               why(cl.failure));
    BOOST_TEST(cl.responses.empty());
}

BOOST_AUTO_TEST_CASE(a_request_over_the_servers_max_header_size_ends_the_connection) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy("  h3: { max-header-size: 1024 }\n"));
    client cl(f.ctx, server.url(), h3_policy());
    cl.c.send(request("/", "", {{"x-long", std::string(2000, 'h')}}));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST_REQUIRE(cl.failure.has_value());
    // The server closed with H3_EXCESSIVE_LOAD (0x107).
    BOOST_TEST(why(cl.failure).find("0x107") != std::string::npos, why(cl.failure));
    BOOST_TEST(server.requests.empty());
}

BOOST_AUTO_TEST_CASE(a_field_that_cannot_be_sent_fails_that_send) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    client cl(f.ctx, server.url(), h3_policy());
    cl.c.send(request("/", "", {{"x-bad", "a\r\nx-injected: 1"}}));
    run_until(f.io, [&] { return cl.send_failure.has_value() || cl.ended(); });
    BOOST_TEST(why(cl.send_failure).find("x-bad") != std::string::npos, why(cl.send_failure));
    // The connection goes on: the next request is answered.
    cl.c.send(request("/after"));
    run_until(f.io, [&] { return cl.responses.size() == 1 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    BOOST_TEST(cl.responses[0].text().find("/after") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_server_message_with_no_request_to_answer_fails_to_send) {
    loopback_fixture f;
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), h3_policy());
    std::optional<error> send_failure;
    l.on_carrier([&](carrier c) {
        c.on_send_error([&](message_id, const error& e) { send_failure = e; });
        c.send(message("unasked"));
    });
    client cl(f.ctx, "https://localhost:" + std::to_string(port_of(l)), h3_policy());
    run_until(f.io, [&] { return send_failure.has_value(); });
    BOOST_TEST(why(send_failure).find("no request to answer") != std::string::npos,
               why(send_failure));
}

BOOST_AUTO_TEST_CASE(h3_over_anything_but_quic_is_refused_by_name) {
    loopback_fixture f;
    // framer gives a message edge too, so the stack is well formed; only h3 can tell.
    client cl(f.ctx, "tcp://127.0.0.1:9",
              policy::parse("version: 1\nname: x\nstacks:\n  - [h3, framer, tcp]\n", "x.yaml"));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST_REQUIRE(cl.failure.has_value());
    BOOST_TEST(why(cl.failure).find("h3 runs only directly over the quic layer") !=
                   std::string::npos,
               why(cl.failure));
}

// A QUIC peer that negotiates ALPN h3 but is no HTTP/3 endpoint (our own quic layer, here
// allowing only two unidirectional streams, max-streams: 2): the server cannot open its control
// and QPACK streams and closes the connection with H3_STREAM_CREATION_ERROR (0x103) and the
// reason; the peer's bytes (this library's framing on stream 0) never become a request, and
// nothing crashes.
BOOST_AUTO_TEST_CASE(a_quic_peer_that_is_no_http3_endpoint_is_refused_with_a_reason) {
    loopback_fixture f;
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), h3_policy());
    int carriers = 0;
    l.on_carrier([&](carrier) { ++carriers; });
    const auto raw = policy::parse("version: 1\nname: q\nstacks:\n  - [quic, udp]\nprotocols:\n"
                                   "  quic: { ca-file: " +
                                       pki().ca + ", alpn: [h3], max-streams: 2 }\n",
                                   "q.yaml");
    client cl(f.ctx, "quic://localhost:" + std::to_string(port_of(l)), raw);
    cl.c.send(message("hello"));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST_REQUIRE(cl.failure.has_value());
    BOOST_TEST(why(cl.failure).find("0x103") != std::string::npos, why(cl.failure));
    BOOST_TEST(why(cl.failure).find("fewer than 3 unidirectional streams") != std::string::npos,
               why(cl.failure));
    BOOST_TEST(carriers == 0);
}

// close() right after sending: the connection stays until the response is in, then closes
// cleanly (H3_NO_ERROR) on both sides.
BOOST_AUTO_TEST_CASE(close_waits_for_the_outstanding_responses) {
    loopback_fixture f;
    h3_server server(f.ctx, h3_policy());
    std::optional<error> server_failure;
    bool server_closed = false;
    server.l.on_carrier([&](carrier c) {
        c.on_received([c](message m) mutable { c.send(message("re: " + std::string(m.text()))); });
        c.on_error([&](const error& e) { server_failure = e; });
        c.on_closed([&] { server_closed = true; });
    });
    client cl(f.ctx, server.url(), h3_policy());
    cl.c.send(request("/a", "one"));
    cl.c.send(request("/b", "two"));
    cl.c.close();
    run_until(f.io, [&] { return cl.ended() && (server_closed || server_failure); });
    BOOST_TEST(!cl.failure, why(cl.failure));
    BOOST_TEST_REQUIRE(cl.responses.size() == 2u);
    BOOST_TEST(cl.responses[0].text() == "re: one");
    BOOST_TEST(cl.responses[1].text() == "re: two");
    BOOST_TEST(!server_failure, why(server_failure));
}
