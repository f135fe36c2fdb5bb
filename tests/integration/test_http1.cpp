// The http1 layer: its decoder alone (every split of the input gives the same messages, bounds,
// malformed input), its encoder, then requests and responses through the kernel over
// [http1, tcp] and [http1, tls, tcp] on loopback between our client and our listener, and
// against a plain Asio socket playing a server where the case needs bytes our listener never
// sends (chunked bodies, read-until-close, garbage).
#define BOOST_TEST_MODULE http1 layer
#include <utility>

#include "../support/test_pki.hpp"
#include "http1_decoder.hpp"
#include "http1_encoder.hpp"
#include "loopback_support.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <boost/test/unit_test.hpp>

#include <memory>
#include <optional>

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
namespace http = post::plugins::http;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text(const sdk::byte_buffer& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Feeds `wire` split at `at` (two calls) and then ends the stream.
std::vector<http::http1_message> decode_split(http::http1_decoder::mode m, std::string_view wire,
                                              std::size_t at, bool end = false,
                                              http::http1_limits limits = {}) {
    http::http1_decoder d(m, limits);
    std::vector<http::http1_message> out;
    BOOST_REQUIRE_MESSAGE(d.feed(bytes(wire.substr(0, at)), out), d.error());
    BOOST_REQUIRE_MESSAGE(d.feed(bytes(wire.substr(at)), out), d.error());
    if (end) BOOST_REQUIRE_MESSAGE(d.finish(out), d.error());
    return out;
}

const std::string pipelined_requests =
    "GET /a?x=1 HTTP/1.1\r\nHost: example.org\r\nAccept: text/html\r\nAccept:  text/plain \r\n"
    "Cookie: a=1\r\n\r\n"
    "POST /upload HTTP/1.1\r\nhost: example.org\r\nContent-Length: 5\r\n\r\nhello"
    "PUT http://other.example:8080/p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n0\r\n\r\n";

const std::string chunked_response =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1, b\r\n"
    "Set-Cookie: c=2\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";

} // namespace

BOOST_AUTO_TEST_SUITE(decoder)

BOOST_AUTO_TEST_CASE(pipelined_requests_split_at_every_byte_give_the_same_messages) {
    for (std::size_t at = 0; at <= pipelined_requests.size(); ++at) {
        BOOST_TEST_CONTEXT("split at " << at) {
            auto out = decode_split(http::http1_decoder::mode::request, pipelined_requests, at);
            BOOST_TEST_REQUIRE(out.size() == 3u);
            auto& get = out[0].properties;
            BOOST_TEST(get[":method"] == "GET");
            BOOST_TEST(get[":path"] == "/a?x=1");
            BOOST_TEST(get[":authority"] == "example.org");
            BOOST_TEST(get.count("host") == 0u);
            BOOST_TEST(get["accept"] == "text/html, text/plain");
            BOOST_TEST(get["cookie"] == "a=1");
            BOOST_TEST(out[0].body.empty());
            BOOST_TEST(out[1].properties[":method"] == "POST");
            BOOST_TEST(text(out[1].body) == "hello");
            auto& put = out[2].properties;
            BOOST_TEST(put[":scheme"] == "http");
            BOOST_TEST(put[":authority"] == "other.example:8080");
            BOOST_TEST(put[":path"] == "/p");
            BOOST_TEST(text(out[2].body) == "abc");
        }
    }
}

BOOST_AUTO_TEST_CASE(chunked_response_split_at_every_byte) {
    for (std::size_t at = 0; at <= chunked_response.size(); ++at) {
        BOOST_TEST_CONTEXT("split at " << at) {
            auto out = decode_split(http::http1_decoder::mode::response, chunked_response, at);
            BOOST_TEST_REQUIRE(out.size() == 1u);
            BOOST_TEST(out[0].properties[":status"] == "200");
            BOOST_TEST(out[0].properties["set-cookie"] == "a=1, b\nc=2");
            BOOST_TEST(out[0].properties["x-trailer"] == "t");
            BOOST_TEST(text(out[0].body) == "hello world");
            BOOST_TEST(out[0].keep_alive);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_body_delimited_by_the_end_of_the_stream_completes_at_finish) {
    const std::string wire = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end";
    for (std::size_t at = 0; at <= wire.size(); ++at) {
        auto out = decode_split(http::http1_decoder::mode::response, wire, at, true);
        BOOST_TEST_REQUIRE(out.size() == 1u);
        BOOST_TEST(text(out[0].body) == "until the end");
        BOOST_TEST(!out[0].keep_alive);
    }
}

BOOST_AUTO_TEST_CASE(interim_responses_are_skipped_and_head_responses_have_no_body) {
    http::http1_decoder d(http::http1_decoder::mode::response, {});
    d.expect_response(true);  // HEAD
    d.expect_response(false); // GET
    std::vector<http::http1_message> out;
    BOOST_TEST_REQUIRE(d.feed(bytes("HTTP/1.1 100 Continue\r\n\r\n"
                                    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                                    "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"),
                              out),
                       d.error());
    BOOST_TEST_REQUIRE(out.size() == 2u);
    BOOST_TEST(out[0].properties[":status"] == "200");
    BOOST_TEST(out[0].body.empty());
    BOOST_TEST(out[1].properties[":status"] == "404");
    BOOST_TEST(text(out[1].body) == "no");
}

BOOST_AUTO_TEST_CASE(bounds_and_malformed_input_are_errors_with_reasons) {
    std::vector<http::http1_message> out;
    {
        http::http1_decoder d(http::http1_decoder::mode::response, {10, 1024});
        BOOST_TEST(!d.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"), out));
        BOOST_TEST(d.error().find("max-message-size 10") != std::string::npos, d.error());
    }
    {
        // Chunked: the size is only known as the chunks arrive.
        http::http1_decoder d(http::http1_decoder::mode::response, {10, 1024});
        BOOST_TEST(!d.feed(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "8\r\n12345678\r\n8\r\n12345678\r\n"),
                           out));
        BOOST_TEST(d.error().find("max-message-size") != std::string::npos, d.error());
    }
    {
        http::http1_decoder d(http::http1_decoder::mode::request, {10, 256});
        BOOST_TEST(
            !d.feed(bytes("GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n"), out));
        BOOST_TEST(d.error().find("max-header-size") != std::string::npos, d.error());
    }
    {
        http::http1_decoder d(http::http1_decoder::mode::request, {});
        BOOST_TEST(!d.feed(bytes("\x16\x03\x01 not http\r\n\r\n"), out));
        BOOST_TEST(d.error().find("HPE_") == 0u, d.error());
        // Failed for good: later input is refused too.
        BOOST_TEST(!d.feed(bytes("GET / HTTP/1.1\r\n\r\n"), out));
    }
    {
        http::http1_decoder d(http::http1_decoder::mode::response, {});
        BOOST_TEST(d.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), out));
        BOOST_TEST(d.mid_message());
        BOOST_TEST(!d.finish(out));
    }
    BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(encoder)

BOOST_AUTO_TEST_CASE(request_defaults_and_fields) {
    std::string head, error;
    http::sent_request info;
    BOOST_TEST_REQUIRE(http::encode_request({{"accept", "*/*"}, {"ordered", "false"}}, 0,
                                            "example.org:8080", head, info, error));
    BOOST_TEST(head == "GET / HTTP/1.1\r\nhost: example.org:8080\r\naccept: */*\r\n\r\n");
    BOOST_TEST_REQUIRE(http::encode_request(
        {{":path", "/x"}, {":authority", "a.example"}, {"connection", "keep-alive, Close"}}, 3,
        "ignored", head, info, error));
    BOOST_TEST(head == "POST /x HTTP/1.1\r\nhost: a.example\r\nconnection: keep-alive, Close\r\n"
                       "content-length: 3\r\n\r\n");
    BOOST_TEST(info.close);
    BOOST_TEST(!http::encode_request({{"x-bad", "a\r\nInjected: 1"}}, 0, "h", head, info, error));
    BOOST_TEST(error.find("x-bad") != std::string::npos);
    BOOST_TEST(!http::encode_request({{":path", "/a b"}}, 0, "h", head, info, error));
    BOOST_TEST(!http::encode_request({{"bad name", "v"}}, 0, "h", head, info, error));
}

BOOST_AUTO_TEST_CASE(response_status_and_length) {
    std::string head, error;
    bool with_body = false, close = false;
    BOOST_TEST_REQUIRE(http::encode_response({{":status", "404"}, {"set-cookie", "a\nb"}}, 2, false,
                                             head, with_body, close, error));
    BOOST_TEST(head == "HTTP/1.1 404 Not Found\r\nset-cookie: a\r\nset-cookie: b\r\n"
                       "content-length: 2\r\n\r\n");
    BOOST_TEST(with_body);
    BOOST_TEST_REQUIRE(http::encode_response({}, 5, true, head, with_body, close, error));
    BOOST_TEST(head == "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    BOOST_TEST(!with_body); // answers a HEAD request
    BOOST_TEST(
        !http::encode_response({{":status", "1000"}}, 0, false, head, with_body, close, error));
    BOOST_TEST(
        !http::encode_response({{":status", "101"}}, 0, false, head, with_body, close, error));
}

BOOST_AUTO_TEST_SUITE_END()

// ---- through the kernel ----

namespace {

policy http_policy(const std::string& stack, const std::string& protocols = {}) {
    return policy::parse("version: 1\nname: h\nstacks:\n  - [" + stack + "]\n" +
                             (protocols.empty() ? std::string() : "protocols:\n" + protocols),
                         "http.yaml");
}

/// Our listener as an HTTP server: answers each request with its method, path, authority and
/// body, and the status the request asks for in x-status.
struct http_server {
    listener l;
    std::vector<std::map<std::string, std::string>> requests;
    http_server(context& ctx, const policy& p)
        : l(listen(ctx, local::parse("127.0.0.1:0"), p)) {
        l.on_carrier([this](carrier c) {
            c.on_received([this, c](message m) mutable {
                auto& props = m.properties().extra;
                requests.push_back(props);
                message reply(props[":method"] + " " + props[":path"] + " " + props[":authority"] +
                              " " + std::string(m.text()));
                auto& out = reply.properties().extra;
                out["content-type"] = "text/plain";
                if (auto s = props.find("x-status"); s != props.end()) out[":status"] = s->second;
                if (auto c2 = props.find("connection"); c2 != props.end())
                    out["connection"] = c2->second;
                c.send(std::move(reply));
            });
        });
    }
    std::uint16_t port() const { return port_of(l); }
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

/// A client carrier that records responses and how it ended.
struct client {
    carrier c;
    std::vector<message> responses;
    std::optional<error> failure;
    bool closed = false;
    client(context& ctx, const std::string& url, const policy& p)
        : c(initiate(ctx, remote::from_url(url), p)) {
        c.on_received([this](message m) { responses.push_back(std::move(m)); });
        c.on_error([this](const error& e) { failure = e; });
        c.on_closed([this] { closed = true; });
    }
    bool ended() const { return closed || failure.has_value(); }
    std::string status(std::size_t i) const {
        return responses.at(i).properties().extra.at(":status");
    }
};

/// A plain TCP socket playing a server: reads one request head, writes `reply`, then closes
/// the socket if `close_after`.
struct raw_server {
    asio::ip::tcp::acceptor acceptor;
    std::shared_ptr<asio::ip::tcp::socket> socket;
    asio::streambuf in;
    std::string reply;
    bool close_after;
    raw_server(asio::io_context& io, std::string r, bool close)
        : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0})
        , reply(std::move(r))
        , close_after(close) {
        socket = std::make_shared<asio::ip::tcp::socket>(io);
        acceptor.async_accept(*socket, [this](boost::system::error_code ec) {
            if (ec) return;
            asio::async_read_until(
                *socket, in, "\r\n\r\n", [this](boost::system::error_code ec2, std::size_t) {
                    if (ec2) return;
                    asio::async_write(*socket, asio::buffer(reply),
                                      [this](boost::system::error_code, std::size_t) {
                                          if (close_after) socket->close();
                                      });
                });
        });
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(carriers)

BOOST_AUTO_TEST_CASE(get_and_post_over_http1_tcp) {
    loopback_fixture f;
    http_server server(f.ctx, http_policy("http1, tcp"));
    const auto url = "http://127.0.0.1:" + std::to_string(server.port());
    client cl(f.ctx, url, http_policy("http1, tcp"));
    cl.c.send(request("/hello", "", {{"x-status", "201"}, {"accept", "a"}}));
    cl.c.send(request("/form", "name=value"));
    run_until(f.io, [&] { return cl.responses.size() == 2 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    BOOST_TEST(cl.status(0) == "201");
    BOOST_TEST(cl.responses[0].text() ==
               "GET /hello 127.0.0.1:" + std::to_string(server.port()) + " ");
    BOOST_TEST(cl.responses[0].properties().extra.at("content-type") == "text/plain");
    BOOST_TEST(cl.status(1) == "200");
    BOOST_TEST(cl.responses[1].text() ==
               "POST /form 127.0.0.1:" + std::to_string(server.port()) + " name=value");
    BOOST_TEST_REQUIRE(server.requests.size() == 2u);
    BOOST_TEST(server.requests[0].at("accept") == "a");
    BOOST_TEST(server.requests[1].at("content-length") == "10");
    cl.c.close();
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST(!cl.failure);
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
    loopback_fixture f;
    http_server server(f.ctx, http_policy("http1, tcp"));
    client cl(f.ctx, "http://127.0.0.1:" + std::to_string(server.port()),
              http_policy("http1, tcp"));
    constexpr int n = 20;
    for (int i = 0; i < n; ++i)
        cl.c.send(
            request("/" + std::to_string(i), std::string(static_cast<std::size_t>(i) * 1000, 'x')));
    run_until(f.io, [&] { return cl.responses.size() == n || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    for (int i = 0; i < n; ++i) {
        const auto t = std::string(cl.responses[static_cast<std::size_t>(i)].text());
        BOOST_TEST(t.find(" /" + std::to_string(i) + " ") != std::string::npos, t.substr(0, 40));
        BOOST_TEST(t.size() > static_cast<std::size_t>(i) * 1000);
    }
}

BOOST_AUTO_TEST_CASE(get_over_http1_tls_tcp) {
    test_pki pki;
    loopback_fixture f;
    http_server server(
        f.ctx, http_policy("http1, tls, tcp", "  tls: { cert-file: " + pki.server.cert +
                                                  ", key-file: " + pki.server.key + " }\n"));
    client cl(f.ctx, "https://localhost:" + std::to_string(server.port()),
              http_policy("http1, tls, tcp", "  tls: { ca-file: " + pki.ca + " }\n"));
    cl.c.send(request("/secure"));
    run_until(f.io, [&] { return cl.responses.size() == 1 || cl.ended(); });
    BOOST_REQUIRE_MESSAGE(!cl.failure, why(cl.failure));
    BOOST_TEST(cl.responses[0].text() ==
               "GET /secure localhost:" + std::to_string(server.port()) + " ");
}

BOOST_AUTO_TEST_CASE(connection_close_ends_the_carrier_cleanly_after_the_response) {
    loopback_fixture f;
    http_server server(f.ctx, http_policy("http1, tcp"));
    client cl(f.ctx, "http://127.0.0.1:" + std::to_string(server.port()),
              http_policy("http1, tcp"));
    cl.c.send(request("/bye", "", {{"connection", "close"}}));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST(!cl.failure, why(cl.failure));
    BOOST_TEST_REQUIRE(cl.responses.size() == 1u);
    BOOST_TEST(cl.responses[0].properties().extra.at("connection") == "close");
}

BOOST_AUTO_TEST_CASE(a_server_closing_with_connection_close_and_no_eof_still_ends_the_carrier) {
    loopback_fixture f;
    raw_server raw(f.io, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                   false);
    client cl(f.ctx, raw.url(), http_policy("http1, tcp"));
    cl.c.send(request("/"));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST(!cl.failure, why(cl.failure));
    BOOST_TEST_REQUIRE(cl.responses.size() == 1u);
    BOOST_TEST(cl.responses[0].text() == "ok");
}

BOOST_AUTO_TEST_CASE(chunked_and_read_until_close_responses) {
    loopback_fixture f;
    raw_server chunked(f.io, chunked_response, false);
    raw_server until_close(f.io, "HTTP/1.1 200 OK\r\n\r\nall of it", true);
    client a(f.ctx, chunked.url(), http_policy("http1, tcp"));
    client b(f.ctx, until_close.url(), http_policy("http1, tcp"));
    a.c.send(request("/"));
    b.c.send(request("/"));
    run_until(f.io, [&] { return (a.responses.size() == 1 || a.ended()) && b.ended(); });
    BOOST_REQUIRE_MESSAGE(!a.failure, why(a.failure));
    BOOST_REQUIRE_MESSAGE(!b.failure, why(b.failure));
    BOOST_TEST_REQUIRE(a.responses.size() == 1u);
    BOOST_TEST(a.responses[0].text() == "hello world");
    BOOST_TEST(a.responses[0].properties().extra.at("set-cookie") == "a=1, b\nc=2");
    BOOST_TEST_REQUIRE(b.responses.size() == 1u);
    BOOST_TEST(b.responses[0].text() == "all of it");
}

BOOST_AUTO_TEST_CASE(an_oversized_body_is_an_error) {
    loopback_fixture f;
    http_server server(f.ctx, http_policy("http1, tcp"));
    client cl(f.ctx, "http://127.0.0.1:" + std::to_string(server.port()),
              http_policy("http1, tcp", "  http1: { max-message-size: 100 }\n"));
    cl.c.send(request("/" + std::string(200, 'p')));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST_REQUIRE(cl.failure.has_value());
    BOOST_TEST(cl.failure->to_string().find("max-message-size 100") != std::string::npos,
               cl.failure->to_string());
    BOOST_TEST(cl.responses.empty());
}

BOOST_AUTO_TEST_CASE(garbage_from_the_server_is_an_error_naming_the_parser_error) {
    loopback_fixture f;
    raw_server raw(f.io, "SSH-2.0-OpenSSH_9.2\r\n\r\n", false);
    client cl(f.ctx, raw.url(), http_policy("http1, tcp"));
    cl.c.send(request("/"));
    run_until(f.io, [&] { return cl.ended(); });
    BOOST_TEST_REQUIRE(cl.failure.has_value());
    BOOST_TEST(cl.failure->to_string().find("HPE_") != std::string::npos, cl.failure->to_string());
}

BOOST_AUTO_TEST_CASE(a_server_message_with_no_request_to_answer_fails_to_send) {
    loopback_fixture f;
    listener l = listen(f.ctx, local::parse("127.0.0.1:0"), http_policy("http1, tcp"));
    std::optional<error> send_failure;
    l.on_carrier([&](carrier c) {
        c.on_send_error([&](message_id, const error& e) { send_failure = e; });
        c.send(message("unasked"));
    });
    client cl(f.ctx, "http://127.0.0.1:" + std::to_string(port_of(l)), http_policy("http1, tcp"));
    run_until(f.io, [&] { return send_failure.has_value(); });
    BOOST_TEST(why(send_failure).find("no request to answer") != std::string::npos,
               why(send_failure));
}

BOOST_AUTO_TEST_SUITE_END()
