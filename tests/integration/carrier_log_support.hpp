// Shared by the carrier tests of layers that resume sessions (tls, quic): what a layer logged
// (it reaches the application as trace events), an echo server that records what it got, and
// one send-and-echo round trip on a new carrier.
#pragma once

#include <utility>

#include "loopback_support.hpp"

#include <post.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace post::test {

/// The log lines of one layer (by name) in one context.
struct layer_log {
    std::vector<std::string> lines;
    layer_log(context& ctx, std::string layer) {
        ctx.on_trace([this, layer = std::move(layer)](const trace_event& e) {
            if (e.what == trace_event::kind::layer_log && !e.stack.empty() && e.stack[0] == layer)
                lines.push_back(e.detail);
        });
    }
    bool has(const std::string& part) const {
        for (const auto& l : lines)
            if (l.find(part) != std::string::npos) return true;
        return false;
    }
    std::string all() const {
        std::string s;
        for (const auto& l : lines)
            s += l + "\n";
        return s;
    }
};

/// An echo server on 127.0.0.1 recording, in order, the text of what it receives.
struct recording_echo {
    listener l;
    std::string scheme;
    std::vector<std::string> got;
    recording_echo(context& ctx, const policy& p, std::string url_scheme)
        : l(listen(ctx, local::parse("127.0.0.1:0"), p))
        , scheme(std::move(url_scheme)) {
        l.on_carrier([this](carrier c) {
            c.on_received([this, c](message m) mutable {
                got.emplace_back(m.text());
                c.send(std::move(m));
            });
        });
    }
    remote where() const {
        return remote::from_url(scheme + "://localhost:" + std::to_string(port_of(l)));
    }
};

/// Polls two io_contexts (a client's and a server's, each with its own context) until `done()`
/// or `limit`; true when done.
template <class Pred>
bool poll_both_until(boost::asio::io_context& a, boost::asio::io_context& b, Pred done,
                     std::chrono::steady_clock::duration limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        a.poll();
        b.poll();
        if (a.stopped()) a.restart();
        if (b.stopped()) b.restart();
    }
    return done();
}

/// One carrier: send `text` (idempotent or not) at once, wait for the echo, close.
inline void round_trip(boost::asio::io_context& io, context& ctx, const remote& r, const policy& p,
                       const std::string& text, bool idempotent) {
    auto c = initiate(ctx, r, p);
    message m(text);
    m.properties().idempotent = idempotent;
    c.send(std::move(m));
    std::optional<std::string> echo;
    std::optional<error> failure;
    bool closed = false;
    c.on_received([&](message reply) {
        echo = std::string(reply.text());
        c.close();
    });
    c.on_error([&](const error& e) { failure = e; });
    c.on_closed([&] { closed = true; });
    run_until(io, [&] { return closed || failure; });
    BOOST_REQUIRE_MESSAGE(!failure, (failure ? failure->to_string() : std::string()));
    BOOST_TEST(echo.value_or("") == text);
}

} // namespace post::test
