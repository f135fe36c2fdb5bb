// `post demo`: the whole idea in one run on loopback. Plugins are loaded at run time, a shipped
// policy picks the stack (and says why the others lost), and messages go through a listener and
// a client carrier: first a reliable exchange chosen by the interactive policy, then a datagram
// exchange chosen by the datagram policy.
//
// The servers use the callback model (on_carrier, on_received); the client uses completion
// tokens (async_initiate / async_send / async_receive with C++20 coroutines). Both are the
// public API as an application would use it.
#include "common.hpp"

#include <fmt/core.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>

namespace post_tool {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int messages_per_exchange = 5;
constexpr auto step_timeout = 3s;  ///< For one establishment or one echo.
constexpr auto demo_timeout = 30s; ///< For everything.

struct exchange_result {
    std::string label;
    std::vector<std::string> stack;
    std::string path;
    double connect_ms = 0;
    std::vector<double> rtt_us;
    std::string failure; ///< Empty on success.
};

/// Load `name` from the shipped policies, or fall back (with a note) when it is not there.
post::policy shipped_policy(const std::string& name, std::string_view scheme) {
    auto file = policies_dir() / name;
    if (std::filesystem::exists(file)) {
        out_line(fmt::format("policy: {}", file.string()));
        return post::policy::load_file(file);
    }
    out_line(fmt::format("policy: {} not found in {}; using the built-in default", name,
                         policies_dir().string()));
    return policy_for("", scheme);
}

void print_selection(post::context& ctx, const post::policy& p,
                     const post::stack_constraint& constraint) {
    const auto catalog = ctx.plugins().catalog();
    auto merged = ctx.effective(p);
    post::validate(merged, catalog);
    auto result = post::select_stacks(merged, catalog, constraint);
    out_line(fmt::format("  candidate stacks, best first:"));
    int rank = 0;
    for (const auto& c : result.candidates) {
        out_line(fmt::format("    {}. {} (score {})", ++rank, join_stack(c.layers), c.score));
        for (const auto& n : c.notes)
            out_line(fmt::format("         {}", n));
    }
    if (result.excluded.empty()) return;
    out_line("  excluded:");
    for (const auto& x : result.excluded)
        out_line(fmt::format("    {}: {}{}", join_stack(x.layers), x.reason,
                             x.rule.file.empty() ? "" : " (" + x.rule.to_string() + ")"));
}

/// An echo server: every accepted carrier sends back what it receives.
post::listener start_echo_server(post::context& ctx, const post::policy& p,
                                 const post::stack_constraint& constraint, const char* label) {
    auto loopback = post::local{asio::ip::make_address("127.0.0.1"), 0, {}};
    post::listener l = post::listen(ctx, loopback, p, constraint);
    // The application owns accepted carriers: dropping the last handle closes one.
    auto accepted = std::make_shared<std::map<const void*, post::carrier>>();
    l.on_carrier([label, accepted](post::carrier c) {
        const void* key = c.impl().get();
        (*accepted)[key] = c;
        auto forget = [accepted, key, ex = c.get_executor()] {
            asio::post(ex, [accepted, key] { accepted->erase(key); });
        };
        c.on_closed(forget);
        c.on_error([forget](const post::error&) { forget(); });
        std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
        auto peer = c.path() ? c.path()->remote.to_string() : std::string("?");
        out_line(
            fmt::format("  [{} server] accepted {} over {}", label, peer, join_stack(c.stack())));
        c.on_received([weak](post::message m) {
            if (auto c = post::carrier(weak.lock())) c.send(post::message(std::move(m.payload())));
        });
    });
    return l;
}

/// The carrier's last error when it has one (it says more than the code).
std::string reason(const post::carrier& c, boost::system::error_code ec) {
    auto e = c ? c.last_error() : std::nullopt;
    return e && *e ? e->to_string() : ec.message();
}

/// Connect, send `messages_per_exchange` messages one at a time, check each echo, close.
asio::awaitable<void> exchange(post::context& ctx, std::string url, post::policy p,
                               exchange_result& out) {
    auto ex = co_await asio::this_coro::executor;
    boost::system::error_code ec;
    asio::steady_timer watchdog(ex);
    const auto r = post::remote::from_url(url);

    auto t0 = clock_type::now();
    post::carrier c;
    // A watchdog aborts the carrier when a step takes too long, which completes the pending
    // operation with an error instead of waiting forever.
    auto arm = [&] {
        watchdog.expires_after(step_timeout);
        watchdog.async_wait([&c](boost::system::error_code e) {
            if (!e && c) c.abort();
        });
    };
    c = co_await post::async_initiate(ctx, r, p, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        out.failure = fmt::format("cannot connect to {}: {}", url, reason(c, ec));
        co_return;
    }
    out.connect_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    out.stack = c.stack();
    if (auto path = c.path())
        out.path = fmt::format("{} -> {}", path->local.to_string(), path->remote.to_string());
    out_line(fmt::format("  [{} client] connected to {} over {} ({}) in {:.2f} ms", out.label, url,
                         join_stack(out.stack), out.path, out.connect_ms));

    for (int i = 1; i <= messages_per_exchange; ++i) {
        auto text = fmt::format("message {} of {} over {}", i, messages_per_exchange,
                                join_stack(out.stack));
        arm();
        auto start = clock_type::now();
        co_await c.async_send(post::message(text), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            out.failure = fmt::format("sending message {} failed: {}", i, reason(c, ec));
            break;
        }
        post::message reply =
            co_await c.async_receive(asio::redirect_error(asio::use_awaitable, ec));
        watchdog.cancel();
        if (ec) {
            out.failure = fmt::format("no echo for message {}: {}", i, reason(c, ec));
            break;
        }
        double us = std::chrono::duration<double, std::micro>(clock_type::now() - start).count();
        if (reply.text() != text) {
            out.failure = fmt::format("echo of message {} differs: got '{}'", i, reply.text());
            break;
        }
        out.rtt_us.push_back(us);
        out_line(fmt::format("  [{} client] #{} '{}' ({} bytes) echoed in {:.1f} us", out.label, i,
                             text, text.size(), us));
    }

    // Wait for on_closed (or give up after a step timeout): a timer cancelled by the handler.
    asio::steady_timer closed(ex, step_timeout);
    c.on_closed([&closed] { closed.cancel(); });
    c.on_error([&closed](const post::error&) { closed.cancel(); });
    c.close();
    co_await closed.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    watchdog.cancel();
    if (ec != asio::error::operation_aborted && out.failure.empty())
        out.failure = "the carrier did not report closed after close()";
}

std::string summary(const exchange_result& r) {
    if (!r.failure.empty()) return fmt::format("{}: FAILED: {}", r.label, r.failure);
    auto rtts = r.rtt_us;
    std::sort(rtts.begin(), rtts.end());
    return fmt::format("{}: ok, stack {} won, {} of {} messages echoed, connect {:.2f} ms, "
                       "round trip median {:.1f} us (min {:.1f}, max {:.1f})",
                       r.label, join_stack(r.stack), rtts.size(), messages_per_exchange,
                       r.connect_ms, rtts[rtts.size() / 2], rtts.front(), rtts.back());
}

int run_demo(const global_options& g) {
    asio::io_context io;
    exchange_result tcp_result, udp_result;
    tcp_result.label = "reliable";
    udp_result.label = "datagram";
    bool finished = false;
    post::context ctx(io, context_options_for(g));
    if (g.verbose) trace_to_stderr(ctx);

    // 1. Plugins, loaded at run time.
    const auto& reg = ctx.plugins();
    out_line(fmt::format("== plugins ({} loaded in {:.2f} ms, {} refused)", reg.plugins().size(),
                         reg.load_time().count() / 1000.0, reg.refused().size()));
    for (const auto& p : reg.plugins()) {
        std::vector<std::string> layers;
        for (const auto& l : p.layers)
            layers.push_back(fmt::format("{} ({} over {})", l.name, post::sdk::to_string(l.upper),
                                         post::sdk::to_string(l.lower)));
        out_line(fmt::format("  {} {}: {}", p.name, p.version, join_stack(layers, ", ")));
    }
    for (const auto& r : reg.refused())
        out_line(fmt::format("  refused {}: {}", r.file.string(), r.reason));

    // 2. Policies and what they select.
    const auto need_tcp = plain_tcp("demo: reliable exchange over tcp");
    auto need_udp = post::constraint_for_scheme("udp");
    need_udp.origin = "demo: datagram exchange over udp";
    out_line("== reliable exchange");
    auto policies = policies_dir();
    auto reliable = std::filesystem::exists(policies / "interactive.yaml")
                        ? shipped_policy("interactive.yaml", "tcp")
                        : shipped_policy("default.yaml", "tcp");
    print_selection(ctx, reliable, need_tcp);
    out_line("== datagram exchange");
    auto datagram = shipped_policy("datagram.yaml", "udp");
    print_selection(ctx, datagram, need_udp);

    // 3. Servers, then the client exchanges one after the other.
    auto tcp_server = start_echo_server(ctx, reliable, need_tcp, "reliable");
    auto udp_server = start_echo_server(ctx, datagram, need_udp, "datagram");
    auto tcp_eps = tcp_server.local_endpoints();
    auto udp_eps = udp_server.local_endpoints();
    if (tcp_eps.empty() || udp_eps.empty())
        throw std::runtime_error("a demo listener reports no local endpoint");
    auto tcp_url = "tcp://" + tcp_eps.front().to_string();
    auto udp_url = "udp://" + udp_eps.front().to_string();
    out_line(fmt::format("== exchanging (listeners on {} and {})", tcp_url, udp_url));

    asio::steady_timer deadline(io, demo_timeout);
    deadline.async_wait([&](boost::system::error_code ec) {
        if (!ec) io.stop();
    });
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            co_await exchange(ctx, tcp_url, reliable, tcp_result);
            co_await exchange(ctx, udp_url, datagram, udp_result);
        },
        [&](std::exception_ptr e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    tcp_result.failure = tcp_result.failure.empty() ? x.what() : tcp_result.failure;
                }
            }
            finished = true;
            tcp_server.close();
            udp_server.close();
            // A datagram server carrier never learns that its peer is gone; stop rather than
            // wait for it.
            io.stop();
        });
    io.run();

    // 4. Summary.
    out_line("== summary");
    if (!finished) {
        out_line(fmt::format("demo: FAILED: did not finish within {} s", demo_timeout.count()));
        return 1;
    }
    out_line(summary(tcp_result));
    out_line(summary(udp_result));
    bool ok = tcp_result.failure.empty() && udp_result.failure.empty();
    out_line(ok ? "demo: ok" : "demo: FAILED");
    return ok ? 0 : 1;
}

} // namespace

void add_demo(CLI::App& app, const global_options& g, runner& run) {
    auto* d = app.add_subcommand(
        "demo", "Load plugins and policies, then exchange messages over TCP and UDP on loopback");
    d->fallthrough();
    d->callback([&g, &run] { run = [&g] { return run_demo(g); }; });
}

} // namespace post_tool
