// `post listen` and `post connect`: netcat for messages. One line of stdin is one message; every
// received message is printed on its own line (or as a JSON event).
//
// Both run a single io_context on the main thread; every carrier handler runs there, so the
// state below needs no locking. Only the stdin reader is another thread (reading a pipe, a file
// or a terminal portably means blocking), and it hands lines over with asio::post.
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace post_tool {
namespace {

using namespace std::chrono_literals;

struct listen_options {
    std::string url, policy_file;
    bool echo = false, json = false;
    long count = 0; ///< 0: until interrupted.
};

struct connect_options {
    std::string url, policy_file, file;
    bool json = false, trace = false;
    long count = 0; ///< 0: do not wait for replies.
};

/// Reads stdin on its own thread and posts each line (without its newline) to the executor.
/// shutdown() guarantees that nothing is posted afterwards, so the io_context can go away while
/// the thread is still blocked in read().
class line_pump : public std::enable_shared_from_this<line_pump> {
public:
    line_pump(boost::asio::any_io_executor ex, std::function<void(std::string)> on_line,
              std::function<void()> on_eof)
        : executor_(std::move(ex))
        , on_line_(std::move(on_line))
        , on_eof_(std::move(on_eof)) {}

    void start() {
        std::thread([self = shared_from_this()] { self->read_loop(); }).detach();
    }

    /// Call on the executor's thread once it no longer runs.
    void shutdown() {
        std::lock_guard lock(mutex_);
        open_ = false;
    }

private:
    void read_loop() {
        std::string pending;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break; // EOF, or an error that ends input the same way
            pending.append(buf, static_cast<std::size_t>(n));
            std::size_t start = 0;
            for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos;
                 start = nl + 1)
                deliver(pending.substr(start, nl - start));
            pending.erase(0, start);
        }
        if (!pending.empty()) deliver(std::move(pending)); // last line without a newline
        std::lock_guard lock(mutex_);
        if (open_) boost::asio::post(executor_, [self = shared_from_this()] { self->on_eof_(); });
    }

    void deliver(std::string line) {
        std::lock_guard lock(mutex_);
        if (!open_) return;
        boost::asio::post(executor_, [self = shared_from_this(), line = std::move(line)]() mutable {
            self->on_line_(std::move(line));
        });
    }

    boost::asio::any_io_executor executor_;
    std::function<void(std::string)> on_line_;
    std::function<void()> on_eof_;
    std::mutex mutex_;
    bool open_ = true;
};

void print_received(const post::message& m, const post::carrier& c, bool json) {
    if (!json) {
        out_line(m.text());
        return;
    }
    auto j = carrier_event("received", c);
    j["id"] = m.id();
    j["size"] = m.size();
    j["message"] = std::string(m.text());
    if (m.sender()) j["remote"] = m.sender()->to_string();
    emit_json(j);
}

void report_error(const char* what, const std::string& reason, const post::carrier& c, bool json) {
    err_line(fmt::format("post: {}: {}", what, reason));
    if (json) {
        auto j = carrier_event("error", c);
        j["reason"] = reason;
        emit_json(j);
    }
}

std::string error_reason(const post::carrier& c, boost::system::error_code ec) {
    if (auto e = c.last_error(); e && *e) return e->to_string();
    return ec ? ec.message() : std::string("unknown error");
}

// ---------------------------------------------------------------------------------------------

int run_listen(const global_options& g, const listen_options& o) {
    std::string why;
    auto u = post::url::parse(o.url, &why);
    if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", o.url, why));
    const auto constraint = constraint_for_scheme(u->scheme);
    const auto where = local_from_url(*u);

    boost::asio::io_context io;
    // Declared before the context so that it outlives every handler the context holds.
    struct state_t {
        std::map<const void*, post::carrier> carriers; ///< Accepted and not yet closed.
        /// Echoes not yet reported sent: (carrier, message id) -> size.
        std::map<std::pair<const void*, post::message_id>, std::size_t> echoes;
        long received = 0;
        bool stopping = false;
        int rc = 0;
    } st;
    boost::asio::steady_timer grace(io);

    post::context ctx(io, context_options_for(g));
    if (g.verbose) trace_to_stderr(ctx);
    auto pol = policy_for(o.policy_file, u->scheme);

    post::listener l;
    try {
        l = post::listen(ctx, where, pol, constraint);
    } catch (const std::system_error& e) {
        err_line(fmt::format("post: cannot listen on {}: {}", o.url, e.what()));
        return 1;
    }

    // Stop accepting, close every carrier gracefully (queued echoes still go out), and leave
    // once they are closed or after a grace period.
    auto finish = [&](int rc) {
        if (st.stopping) return;
        st.stopping = true;
        st.rc = rc;
        l.close();
        for (auto& [key, c] : st.carriers)
            c.close();
        if (st.carriers.empty()) return io.stop();
        grace.expires_after(2s);
        grace.async_wait([&](boost::system::error_code ec) {
            if (!ec) io.stop();
        });
    };

    l.on_error(
        [&](const post::error& e) { report_error("listener error", e.to_string(), {}, o.json); });
    l.on_carrier([&](post::carrier c) {
        const void* key = c.impl().get();
        st.carriers[key] = c;
        // Handlers capture a weak handle: the carrier owns its handlers, so a strong one would
        // keep it alive forever.
        std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
        auto self = [weak] { return post::carrier(weak.lock()); };
        if (o.json) emit_json(carrier_event("ready", c));
        c.on_received([&, self](post::message m) {
            // --count N means exactly N: later arrivals (while closing) are not printed.
            if (o.count > 0 && st.received >= o.count) return;
            auto c = self();
            print_received(m, c, o.json);
            if (o.echo && c) {
                auto size = m.size();
                auto id = c.send(post::message(std::move(m.payload())));
                if (o.json) st.echoes[{c.impl().get(), id}] = size;
            }
            if (o.count > 0 && ++st.received >= o.count) finish(0);
        });
        c.on_sent([&, self, key](post::message_id id) {
            if (!o.json) return;
            auto j = carrier_event("sent", self());
            j["id"] = id;
            if (auto it = st.echoes.find({key, id}); it != st.echoes.end()) {
                j["size"] = it->second;
                st.echoes.erase(it);
            }
            emit_json(j);
        });
        c.on_send_error([&, self](post::message_id id, const post::error& e) {
            report_error(fmt::format("echo of message {} failed", id).c_str(), e.to_string(),
                         self(), o.json);
        });
        // Forget a carrier after its last handler returns: erasing the last handle inside the
        // handler could destroy the handler while it runs.
        auto forget = [&, key] {
            boost::asio::post(io, [&, key] {
                st.carriers.erase(key);
                if (st.stopping && st.carriers.empty()) io.stop();
            });
        };
        // A carrier ends with either on_closed (clean) or on_error (with the reason).
        c.on_error([&, self, forget](const post::error& e) {
            auto c = self();
            report_error("carrier error", e.to_string(), c, o.json);
            if (!c || c.state() == post::carrier_state::closed) forget();
        });
        c.on_closed([&, self, forget] {
            if (o.json) emit_json(carrier_event("closed", self()));
            forget();
        });
    });

    auto stacks = l.stacks();
    std::vector<std::string> names;
    for (const auto& s : stacks)
        names.push_back(join_stack(s));
    for (const auto& ep : l.local_endpoints()) {
        if (o.json) {
            nlohmann::json j{{"event", "listening"}, {"local", ep.to_string()}, {"stacks", stacks}};
            emit_json(j);
        } else {
            err_line(fmt::format("post: listening on {} (stacks: {})", ep.to_string(),
                                 join_stack(names, ", ")));
        }
    }

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) finish(0);
    });
    io.run();
    return st.rc;
}

// ---------------------------------------------------------------------------------------------

int run_connect(const global_options& g, const connect_options& o) {
    std::string why;
    auto u = post::url::parse(o.url, &why);
    if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", o.url, why));
    constraint_for_scheme(u->scheme); // refuses schemes the tool does not know
    const auto r = post::remote::from_url(o.url);

    std::vector<std::byte> file_payload;
    if (!o.file.empty()) {
        // Read before connecting, so that a missing file fails fast and cleanly.
        std::ifstream in(o.file, std::ios::binary);
        if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", o.file));
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto* p = reinterpret_cast<const std::byte*>(bytes.data());
        file_payload.assign(p, p + bytes.size());
    }

    boost::asio::io_context io;
    struct state_t {
        std::map<post::message_id, std::size_t> sizes; ///< Sent and not yet reported.
        std::uint64_t queued = 0, done = 0;
        long received = 0;
        bool ready = false, eof = false, closing = false;
        int rc = 0;
    } st;
    std::shared_ptr<line_pump> pump;
    boost::asio::steady_timer grace(io);

    post::context ctx(io, context_options_for(g));
    if (g.verbose || o.trace) trace_to_stderr(ctx);
    auto pol = policy_for(o.policy_file, u->scheme);

    post::carrier c = post::initiate(ctx, r, pol);

    // Close once input is exhausted, every message has left, and the replies we wait for came.
    auto maybe_close = [&] {
        if (st.closing || !st.eof || st.done < st.queued) return;
        if (o.count > 0 && st.received < o.count) return;
        st.closing = true;
        c.close();
        grace.expires_after(5s);
        grace.async_wait([&](boost::system::error_code ec) {
            if (ec) return;
            err_line("post: the carrier did not close in time; aborting it");
            c.abort();
            io.stop();
        });
    };
    auto send = [&](post::message m) {
        auto size = m.size();
        ++st.queued; // before send(): its error may be reported from inside the call
        auto id = c.send(std::move(m));
        if (st.done < st.queued) st.sizes[id] = size;
    };

    c.on_received([&](post::message m) {
        print_received(m, c, o.json);
        ++st.received;
        maybe_close();
    });
    c.on_sent([&](post::message_id id) {
        if (o.json) {
            auto j = carrier_event("sent", c);
            j["id"] = id;
            if (auto it = st.sizes.find(id); it != st.sizes.end()) j["size"] = it->second;
            emit_json(j);
        }
        st.sizes.erase(id);
        ++st.done;
        maybe_close();
    });
    c.on_send_error([&](post::message_id id, const post::error& e) {
        auto it = st.sizes.find(id);
        std::string what = it == st.sizes.end()
                               ? fmt::format("message {} not sent", id)
                               : fmt::format("message {} ({} bytes) not sent", id, it->second);
        report_error(what.c_str(), e.to_string(), c, o.json);
        st.sizes.erase(id);
        st.rc = 1;
        ++st.done;
        maybe_close();
    });
    // A carrier ends with either on_closed (clean) or on_error (with the reason), not both.
    c.on_error([&](const post::error& e) {
        if (!st.ready) return; // establishment failures are reported by async_wait_ready
        report_error("error", e.to_string(), c, o.json);
        st.rc = 1;
        if (c.state() == post::carrier_state::closed) io.stop();
    });
    c.on_closed([&] {
        if (!st.ready) return;
        if (!st.closing) {
            bool lost = st.done < st.queued || (o.count > 0 && st.received < o.count);
            if (lost) {
                report_error("closed by peer",
                             fmt::format("{} of {} messages sent, {} received", st.done, st.queued,
                                         st.received),
                             c, o.json);
                st.rc = 1;
            } else {
                err_line("post: closed by peer");
            }
        }
        if (o.json) emit_json(carrier_event("closed", c));
        io.stop();
    });
    c.async_wait_ready([&](boost::system::error_code ec) {
        if (ec) {
            report_error(fmt::format("cannot connect to {}", o.url).c_str(), error_reason(c, ec), c,
                         o.json);
            st.rc = 1;
            io.stop();
            return;
        }
        st.ready = true;
        if (o.json)
            emit_json(carrier_event("ready", c));
        else if (g.verbose || o.trace)
            err_line(fmt::format("post: connected to {} over {}", o.url, join_stack(c.stack())));
        if (!o.file.empty()) {
            send(post::message(std::move(file_payload)));
            st.eof = true;
            maybe_close();
            return;
        }
        pump = std::make_shared<line_pump>(
            io.get_executor(), [&](std::string line) { send(post::message(line)); },
            [&] {
                st.eof = true;
                maybe_close();
            });
        pump->start();
    });

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        st.eof = true;
        st.closing = true;
        c.abort();
        io.stop();
    });

    io.run();
    if (pump) pump->shutdown();
    return st.rc;
}

} // namespace

void add_listen_connect(CLI::App& app, const global_options& g, runner& run) {
    auto lo = std::make_shared<listen_options>();
    auto* l = app.add_subcommand("listen", "Listen on URL's address and print received messages");
    l->fallthrough();
    l->add_option("url", lo->url, "tcp://HOST:PORT, udp://HOST:PORT or HOST:PORT (policy decides)")
        ->required();
    l->add_option("--policy", lo->policy_file, "Policy file (default: built-in defaults)")
        ->check(CLI::ExistingFile);
    l->add_flag("--echo", lo->echo, "Send every received message back to its sender");
    l->add_flag("--json", lo->json, "One JSON object per line per event");
    l->add_option("--count", lo->count, "Exit 0 after N received messages")
        ->check(CLI::PositiveNumber);
    l->callback([&g, &run, lo] { run = [&g, lo] { return run_listen(g, *lo); }; });

    auto co = std::make_shared<connect_options>();
    auto* c = app.add_subcommand("connect", "Send each line of stdin as a message to URL");
    c->fallthrough();
    c->add_option("url", co->url, "tcp://HOST:PORT, udp://HOST:PORT or HOST:PORT (policy decides)")
        ->required();
    c->add_option("--policy", co->policy_file, "Policy file (default: built-in defaults)")
        ->check(CLI::ExistingFile);
    c->add_flag("--json", co->json, "One JSON object per line per event");
    c->add_option("--count", co->count, "Wait for N received messages before closing")
        ->check(CLI::PositiveNumber);
    c->add_option("--file", co->file, "Send this file as one message instead of reading stdin")
        ->check(CLI::ExistingFile);
    c->add_flag("--trace", co->trace, "Print establishment trace events to stderr");
    c->callback([&g, &run, co] { run = [&g, co] { return run_connect(g, *co); }; });
}

} // namespace post_tool
