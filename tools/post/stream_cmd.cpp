// The stream mode of `post connect` / `post listen`. One io_context on the main thread runs the
// carrier, the stream-to-stdout copy and the writes of what stdin_pump reads; it reads the next
// chunk of stdin only once the previous one is written, so a fast producer cannot queue
// unbounded data.
#include "stream_cmd.hpp"
#include "stdin_pump.hpp"
// post::stream comes through post.hpp (via common.hpp): the tool's precompiled header holds it,
// and g++ does not honour #pragma once for headers inside a PCH when included again directly.

#include <fmt/core.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <memory>
#include <unistd.h>

namespace post_tool {
namespace {

constexpr std::size_t chunk_size = 64 * 1024;

std::string reason_of(const post::stream& s, boost::system::error_code ec) {
    if (auto e = s.carrier().last_error(); e && *e) return e->to_string();
    return ec.message();
}

/// Copy stdin to `s` and `s` to stdout until the stream ends. Returns the exit code.
int copy_both_ways(boost::asio::io_context& io, post::stream s, const std::string& url,
                   bool verbose) {
    int rc = 0;
    bool ready = false;

    s.carrier().async_wait_ready([&](boost::system::error_code ec) {
        if (ec) return; // the read below reports it
        ready = true;
        if (verbose)
            err_line(fmt::format("post: stream connected with {} over {}", url,
                                 join_stack(s.carrier().stack())));
    });

    std::vector<char> buf(chunk_size);
    std::function<void()> read_next = [&] {
        s.async_read_some(boost::asio::buffer(buf), [&](boost::system::error_code ec,
                                                        std::size_t n) {
            for (std::size_t off = 0; off < n;) {
                ssize_t w = ::write(STDOUT_FILENO, buf.data() + off, n - off);
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) {
                    err_line(fmt::format("post: cannot write to stdout: {}",
                                         std::system_category().message(errno)));
                    rc = 1;
                    s.abort();
                    io.stop();
                    return;
                }
                off += static_cast<std::size_t>(w);
            }
            if (ec == boost::asio::error::eof) {
                io.stop();
            } else if (ec) {
                err_line(fmt::format("post: {} {}: {}", ready ? "stream with" : "cannot connect to",
                                     url, reason_of(s, ec)));
                rc = 1;
                io.stop();
            } else {
                read_next();
            }
        });
    };
    read_next();
    // stdin to the stream: one write at a time; end of input closes our sending side.
    stdin_pump in(
        io.get_executor(),
        [&](std::string chunk, std::function<void()> done) {
            auto data = std::make_shared<std::string>(std::move(chunk));
            boost::asio::async_write(s, boost::asio::buffer(*data),
                                     [data, done](boost::system::error_code ec, std::size_t) {
                                         // A failed write ends the input side; the output side
                                         // reports why.
                                         if (!ec) done();
                                     });
        },
        [&] { s.close(); });
    in.start();

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        rc = 1;
        s.abort();
        io.stop();
    });
    io.run();
    in.stop();
    return rc;
}

post::policy load_policy(const global_options& g, const std::string& policy_file,
                         std::string_view scheme) {
    return policy_for(g, policy_file, scheme);
}

} // namespace

int run_stream_connect(const global_options& g, const std::string& url,
                       const std::string& policy_file) {
    try {
        std::string why;
        auto u = post::url::parse(url, &why);
        if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", url, why));
        constraint_for_scheme(u->scheme); // refuses schemes the tool does not know
        const auto r = post::remote::from_url(url);
        auto pol = load_policy(g, policy_file, u->scheme);

        boost::asio::io_context io;
        post::context ctx(io, context_options_for(g));
        print_context_warnings(ctx);
        if (g.verbose) trace_to_stderr(ctx);
        auto s = post::initiate_stream(ctx, r, pol);
        return copy_both_ways(io, s, url, g.verbose);
    } catch (const std::exception& e) {
        err_line(fmt::format("post: {}", e.what()));
        return 1;
    }
}

int run_stream_listen(const global_options& g, const std::string& url,
                      const std::string& policy_file) {
    try {
        std::string why;
        auto u = post::url::parse(url, &why);
        if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", url, why));
        auto constraint = constraint_for_scheme(u->scheme);
        constraint.stream_top = true;
        const auto where = local_from_url(*u);
        auto pol = load_policy(g, policy_file, u->scheme);

        boost::asio::io_context io;
        post::context ctx(io, context_options_for(g));
        print_context_warnings(ctx);
        if (g.verbose) trace_to_stderr(ctx);
        post::listener l;
        try {
            l = post::listen(ctx, where, pol, constraint);
        } catch (const std::system_error& e) {
            err_line(fmt::format("post: cannot listen on {}: {}", url, e.what()));
            return 1;
        }
        std::vector<std::string> names;
        for (const auto& st : l.stacks())
            names.push_back(join_stack(st));
        for (const auto& ep : l.local_endpoints())
            err_line(fmt::format("post: listening on {} (stacks: {})", ep.to_string(),
                                 join_stack(names, ", ")));

        // One carrier: accept it, stop listening, then copy both ways.
        post::carrier accepted;
        boost::system::error_code accept_ec;
        l.async_accept([&](boost::system::error_code ec, post::carrier c) {
            accept_ec = ec;
            accepted = std::move(c);
            io.stop();
        });
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](boost::system::error_code ec, int) {
            if (!ec) io.stop();
        });
        io.run();
        signals.cancel();
        l.close();
        if (accept_ec || !accepted) {
            if (accept_ec) err_line(fmt::format("post: accept failed: {}", accept_ec.message()));
            return 1;
        }
        io.restart();
        auto s = post::morph(accepted);
        if (g.verbose)
            err_line(fmt::format("post: accepted a stream over {}", join_stack(accepted.stack())));
        return copy_both_ways(io, s, url, false);
    } catch (const std::exception& e) {
        err_line(fmt::format("post: {}", e.what()));
        return 1;
    }
}

} // namespace post_tool
