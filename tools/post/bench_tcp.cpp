// `post bench tcp`: our carrier over [framer, tcp] against a hand-written Boost.Asio TCP program
// doing the same work, in one process, on loopback. See docs/benchmarks.md for the method.
//
// Both sides of both contenders run on the same two threads: one io_context for the servers and
// one for the clients, each run by its own thread. The servers behave identically for both:
// a 64-byte message is echoed, a 1-byte message is answered with a 1-byte acknowledgement, any
// other message is counted and dropped. All timing is taken on the client thread.
#include "bench_support.hpp"
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <set>
#include <span>
#include <thread>

namespace post_tool {
namespace {

using namespace bench;
using boost::asio::ip::tcp;

// ---- the post side --------------------------------------------------------------------------

post::policy bench_policy(const post::plugin_registry& reg, const std::string& framer) {
    post::policy p = post::policy::defaults();
    p.name = "bench";
    p.stacks = {{{framer, "tcp"}, {"<post bench>", 0, 0}}};
    // The baseline disables Nagle; give our tcp layer the same setting when it has one.
    if (const auto* tcp_layer = reg.find_layer("tcp"))
        for (const auto& o : tcp_layer->options)
            if (o.name && std::string_view(o.name) == "nodelay")
                p.protocols["tcp"]["nodelay"] = post::raw_option{std::string("true"), {}};
    return p;
}

/// The post server: lives on the server thread; every accepted carrier follows the rules above.
struct post_server {
    std::map<const void*, post::carrier> carriers;

    void accept(post::carrier c) {
        const void* key = c.impl().get();
        carriers[key] = c;
        std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
        c.on_received([weak](post::message m) {
            post::carrier c(weak.lock());
            if (!c) return;
            if (m.size() == ping_size)
                c.send(post::message(std::move(m.payload())));
            else if (m.size() == end_marker_size)
                c.send(post::message(std::string_view("k")));
        });
        // Forget the carrier later, not inside its own handler (that could destroy the handler
        // while it runs).
        auto forget = [this, key, ex = c.get_executor()] {
            boost::asio::post(ex, [this, key] { carriers.erase(key); });
        };
        c.on_closed(forget);
        c.on_error([forget, weak](const post::error&) {
            if (auto c = post::carrier(weak.lock())) c.abort();
            forget();
        });
    }
};

struct post_client : post_workload {
    // (c) sequential connections: initiate, ready, graceful close, closed; repeat.
    void connections(std::chrono::duration<double> duration,
                     std::shared_ptr<once_promise<double>> result) {
        struct state : std::enable_shared_from_this<state> {
            post_client* self;
            post::carrier current;
            std::shared_ptr<once_promise<double>> result;
            clock_type::time_point start, deadline;
            std::uint64_t done = 0;

            void next() {
                if (clock_type::now() >= deadline) {
                    current = {};
                    return result->set(done / seconds_since(start));
                }
                current = post::initiate(self->ctx, self->remote, self->policy);
                // The handlers hold the state and the state holds the carrier: the cycle ends
                // when the next iteration (or the end) replaces `current`.
                auto st = shared_from_this();
                current.on_closed([st] {
                    ++st->done;
                    boost::asio::post(st->current.get_executor(), [st] { st->next(); });
                });
                current.on_error([st](const post::error& e) {
                    st->result->fail(e.to_string());
                    boost::asio::post(st->current.get_executor(), [st] { st->current = {}; });
                });
                current.async_wait_ready([st](boost::system::error_code ec) {
                    if (ec) return st->result->fail(error_reason(ec, st->current));
                    st->current.close();
                });
            }
        };
        auto st = std::make_shared<state>();
        st->self = this;
        st->result = std::move(result);
        st->start = clock_type::now();
        st->deadline = st->start + std::chrono::duration_cast<clock_type::duration>(duration);
        st->next();
    }
};

// ---- the Asio baseline ----------------------------------------------------------------------

class asio_session : public std::enable_shared_from_this<asio_session> {
public:
    explicit asio_session(tcp::socket s)
        : socket_(std::move(s)) {}
    void start() { read(); }

private:
    void read() {
        socket_.async_read_some(in_.prepare(), [self = shared_from_this()](
                                                   boost::system::error_code ec, std::size_t n) {
            if (ec) return self->socket_.close(); // EOF: the client closed; so do we
            self->in_.commit(n);
            std::span<const std::uint8_t> f;
            while (self->in_.next(f)) {
                if (f.size() == ping_size) {
                    std::uint8_t h[4];
                    put_header(h, f.size());
                    self->out_.insert(self->out_.end(), h, h + 4);
                    self->out_.insert(self->out_.end(), f.begin(), f.end());
                } else if (f.size() == end_marker_size) {
                    const std::uint8_t ack[5] = {0, 0, 0, 1, 'k'};
                    self->out_.insert(self->out_.end(), ack, ack + 5);
                }
            }
            self->flush();
            self->read();
        });
    }
    void flush() {
        if (writing_active_ || out_.empty()) return;
        std::swap(out_, writing_);
        out_.clear();
        writing_active_ = true;
        boost::asio::async_write(
            socket_, boost::asio::buffer(writing_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                self->writing_active_ = false;
                self->writing_.clear();
                if (!ec) self->flush();
            });
    }

    tcp::socket socket_;
    frame_reader in_;
    std::vector<std::uint8_t> out_, writing_;
    bool writing_active_ = false;
};

class asio_server {
public:
    explicit asio_server(boost::asio::io_context& io)
        : acceptor_(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
        acceptor_.listen(4096);
    }
    tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
    void start() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return; // closed at the end of the run
            s.set_option(tcp::no_delay(true));
            std::make_shared<asio_session>(std::move(s))->start();
            start();
        });
    }
    void close() { acceptor_.close(); }

private:
    tcp::acceptor acceptor_;
};

struct asio_client {
    boost::asio::io_context& io;
    tcp::endpoint server;

    void throughput(std::chrono::duration<double> duration,
                    std::shared_ptr<once_promise<double>> result) {
        struct state : std::enable_shared_from_this<state> {
            tcp::socket s;
            std::shared_ptr<once_promise<double>> result;
            std::vector<std::uint8_t> payload = std::vector<std::uint8_t>(bulk_size, 0x5a);
            std::uint8_t header[4];
            std::vector<std::uint8_t> marker = make_frame(end_marker_size, 'e');
            frame_reader in;
            clock_type::time_point start, deadline;
            std::uint64_t sent = 0;
            explicit state(boost::asio::io_context& io)
                : s(io) {
                put_header(header, bulk_size);
            }

            void write() {
                if (clock_type::now() >= deadline) return end();
                std::array<boost::asio::const_buffer, 2> bufs{boost::asio::buffer(header),
                                                              boost::asio::buffer(payload)};
                boost::asio::async_write(
                    s, bufs, [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return st->result->fail(ec.message());
                        ++st->sent;
                        st->write();
                    });
            }
            void end() {
                boost::asio::async_write(
                    s, boost::asio::buffer(marker),
                    [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return st->result->fail(ec.message());
                        st->wait_ack();
                    });
            }
            void wait_ack() {
                s.async_read_some(in.prepare(), [st = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
                    if (ec) return st->result->fail(ec.message());
                    st->in.commit(n);
                    std::span<const std::uint8_t> f;
                    if (!st->in.next(f)) return st->wait_ack();
                    double secs = seconds_since(st->start);
                    st->result->set(st->sent * bulk_size * 8 / secs / 1e9);
                    st->s.close();
                });
            }
        };
        auto st = std::make_shared<state>(io);
        st->result = std::move(result);
        st->s.async_connect(server, [st, duration](boost::system::error_code ec) {
            if (ec) return st->result->fail(ec.message());
            st->s.set_option(tcp::no_delay(true));
            st->start = clock_type::now();
            st->deadline = st->start + std::chrono::duration_cast<clock_type::duration>(duration);
            st->write();
        });
    }

    void round_trips(int count, std::shared_ptr<once_promise<latency>> result) {
        struct state : std::enable_shared_from_this<state> {
            tcp::socket s;
            std::shared_ptr<once_promise<latency>> result;
            std::vector<std::uint8_t> frame = make_frame(ping_size, 1);
            frame_reader in;
            std::vector<double> us;
            int remaining = 0, measured = 0;
            clock_type::time_point t0;
            explicit state(boost::asio::io_context& io)
                : s(io) {}

            void ping() {
                t0 = clock_type::now();
                boost::asio::async_write(
                    s, boost::asio::buffer(frame),
                    [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return st->result->fail(ec.message());
                    });
                read();
            }
            void read() {
                s.async_read_some(in.prepare(), [st = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
                    if (ec) return st->result->fail(ec.message());
                    st->in.commit(n);
                    std::span<const std::uint8_t> f;
                    if (!st->in.next(f)) return st->read();
                    double us = seconds_since(st->t0) * 1e6;
                    if (st->remaining-- <= st->measured) st->us.push_back(us);
                    if (st->remaining > 0) return st->ping();
                    st->result->set(percentiles(std::move(st->us)));
                    st->s.close();
                });
            }
        };
        auto st = std::make_shared<state>(io);
        st->result = std::move(result);
        st->measured = count;
        st->remaining = count + warmup_round_trips;
        st->us.reserve(count);
        st->s.async_connect(server, [st](boost::system::error_code ec) {
            if (ec) return st->result->fail(ec.message());
            st->s.set_option(tcp::no_delay(true));
            st->ping();
        });
    }

    // connect, then a graceful close: shut down our side and wait for the server's FIN.
    void connections(std::chrono::duration<double> duration,
                     std::shared_ptr<once_promise<double>> result) {
        struct state : std::enable_shared_from_this<state> {
            boost::asio::io_context& io;
            tcp::endpoint server;
            std::shared_ptr<once_promise<double>> result;
            std::shared_ptr<tcp::socket> s;
            clock_type::time_point start, deadline;
            std::uint64_t done = 0;
            char sink[64];
            state(boost::asio::io_context& io, tcp::endpoint ep)
                : io(io)
                , server(ep) {}

            void next() {
                if (clock_type::now() >= deadline) return result->set(done / seconds_since(start));
                s = std::make_shared<tcp::socket>(io);
                s->async_connect(server, [st = shared_from_this()](boost::system::error_code ec) {
                    if (ec) return st->result->fail(ec.message());
                    boost::system::error_code ignored;
                    st->s->shutdown(tcp::socket::shutdown_send, ignored);
                    st->drain();
                });
            }
            void drain() {
                s->async_read_some(
                    boost::asio::buffer(sink),
                    [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) return st->drain();
                        st->s->close();
                        ++st->done;
                        st->next();
                    });
            }
        };
        auto st = std::make_shared<state>(io, server);
        st->result = std::move(result);
        st->start = clock_type::now();
        st->deadline = st->start + std::chrono::duration_cast<clock_type::duration>(duration);
        st->next();
    }
};

// ---- the run --------------------------------------------------------------------------------

struct bench_options {
    double seconds = 2;
    bool json = false;
    /// The message layer over tcp: framer (post-frame) or length-prefix (the baseline's own
    /// wire format).
    std::string framer = "framer";
    /// Phases to run (throughput, rtt, connections); empty = all. Skipped ones print as n/a.
    std::vector<std::string> only;
    bool runs(std::string_view phase) const {
        return only.empty() || std::find(only.begin(), only.end(), phase) != only.end();
    }
};

int run_bench(const global_options& g, const bench_options& o) {
    const std::chrono::duration<double> bulk_time(o.seconds);
    // Connections get the whole --seconds when they are the only phase (for profiling).
    const std::chrono::duration<double> connect_time(
        o.only == std::vector<std::string>{"connections"} ? o.seconds : std::min(o.seconds, 1.5));
    const int round_trip_count =
        static_cast<int>(std::clamp(std::lround(o.seconds * 10000), 1000L, 20000L));

    io_thread server_thread, client_thread;
    post::context server_ctx(server_thread.io, context_options_for(g));
    post::context client_ctx(client_thread.io, context_options_for(g));
    const double plugin_load_ms = server_ctx.plugins().load_time().count() / 1000.0;
    if (g.verbose) trace_to_stderr(client_ctx);

    auto policy = bench_policy(server_ctx.plugins(), o.framer);
    const auto need_tcp = plain_tcp("post bench tcp");
    auto loopback = post::local{boost::asio::ip::make_address("127.0.0.1"), 0, {}};
    post::listener listener = post::listen(server_ctx, loopback, policy, need_tcp);
    post_server post_srv;
    listener.on_carrier([&post_srv](post::carrier c) { post_srv.accept(std::move(c)); });
    auto endpoints = listener.local_endpoints();
    if (endpoints.empty()) throw std::runtime_error("the post listener has no local endpoint");
    post_client post_cli{{client_ctx, post::remote::from_endpoint(endpoints.front()), policy}};

    asio_server asio_srv(server_thread.io);
    asio_srv.start();
    asio_client asio_cli{client_thread.io, asio_srv.endpoint()};

    // Whatever happens below (a phase that times out throws), the threads stop before the
    // objects their handlers use are destroyed.
    struct stopper {
        io_thread &a, &b;
        ~stopper() {
            b.stop();
            a.stop();
        }
    } stop_threads{server_thread, client_thread};
    server_thread.start();
    client_thread.start();

    if (!o.json)
        err_line(fmt::format("post bench tcp: {:.1f} s bulk per side, {} round trips, {:.1f} s of "
                             "connections; stack [{}, tcp] vs raw Asio",
                             o.seconds, round_trip_count, connect_time.count(), o.framer));

    pair_result tput, p50, p99, conns;
    auto& cio = client_thread.io;
    if (o.runs("throughput")) {
        tput.post = run_phase<double>(cio, bulk_time, "post throughput",
                                      [&](auto p) { post_cli.throughput(bulk_time, p); });
        tput.asio = run_phase<double>(cio, bulk_time, "asio throughput",
                                      [&](auto p) { asio_cli.throughput(bulk_time, p); });
    }
    if (o.runs("rtt")) {
        const auto rtt_budget = std::chrono::duration<double>(round_trip_count * 1e-3);
        auto lp = run_phase<latency>(cio, rtt_budget, "post round trips",
                                     [&](auto p) { post_cli.round_trips(round_trip_count, p); });
        auto la = run_phase<latency>(cio, rtt_budget, "asio round trips",
                                     [&](auto p) { asio_cli.round_trips(round_trip_count, p); });
        p50 = {lp.p50_us, la.p50_us};
        p99 = {lp.p99_us, la.p99_us};
    }
    if (o.runs("connections")) {
        conns.post = run_phase<double>(cio, connect_time, "post connections",
                                       [&](auto p) { post_cli.connections(connect_time, p); });
        conns.asio = run_phase<double>(cio, connect_time, "asio connections",
                                       [&](auto p) { asio_cli.connections(connect_time, p); });
    }

    // Close the servers on their own thread, then stop both threads before the contexts go.
    std::promise<void> closed;
    boost::asio::post(server_thread.io, [&] {
        listener.close();
        asio_srv.close();
        closed.set_value();
    });
    closed.get_future().wait_for(5s);
    client_thread.stop();
    server_thread.stop();

    auto pair_json = [](const pair_result& r) {
        return nlohmann::json{{"post", r.post}, {"asio", r.asio}, {"ratio", r.ratio()}};
    };
    if (o.json) {
        nlohmann::json j{{"throughput_gbps", pair_json(tput)},
                         {"rtt_p50_us", pair_json(p50)},
                         {"rtt_p99_us", pair_json(p99)},
                         {"connections_per_s", pair_json(conns)},
                         {"plugin_load_ms", plugin_load_ms},
                         {"seconds", o.seconds},
                         {"round_trips", round_trip_count},
                         {"stack", {o.framer, "tcp"}},
                         {"targets",
                          {{"throughput_ratio_min", 0.9},
                           {"rtt_p50_ratio_max", 1.2},
                           {"connections_ratio_min", 0.7}}}};
        out_line(to_line(j));
        return 0;
    }
    out_line(
        fmt::format("{:<22}{:>12}{:>12}{:>9}   {}", "metric", "post", "asio", "ratio", "target"));
    if (o.runs("throughput"))
        out_line(fmt::format("{:<22}{:>12.2f}{:>12.2f}{:>9.2f}   >= 0.90 {}", "throughput (Gbit/s)",
                             tput.post, tput.asio, tput.ratio(), verdict(tput.ratio() >= 0.9)));
    if (o.runs("rtt")) {
        out_line(fmt::format("{:<22}{:>12.1f}{:>12.1f}{:>9.2f}   <= 1.20 {}", "rtt p50 (us)",
                             p50.post, p50.asio, p50.ratio(), verdict(p50.ratio() <= 1.2)));
        out_line(fmt::format("{:<22}{:>12.1f}{:>12.1f}{:>9.2f}", "rtt p99 (us)", p99.post, p99.asio,
                             p99.ratio()));
    }
    if (o.runs("connections"))
        out_line(fmt::format("{:<22}{:>12.0f}{:>12.0f}{:>9.2f}   >= 0.70 {}", "connections/s",
                             conns.post, conns.asio, conns.ratio(), verdict(conns.ratio() >= 0.7)));
    out_line(fmt::format("plugin load time: {:.2f} ms", plugin_load_ms));
    return 0;
}

} // namespace

void add_bench(CLI::App& app, const global_options& g, runner& run) {
    auto* b = app.add_subcommand("bench", "Benchmarks on loopback");
    b->fallthrough();
    b->require_subcommand(1);
    auto o = std::make_shared<bench_options>();
    auto* t = b->add_subcommand("tcp", "post over [framer, tcp] versus raw Boost.Asio TCP");
    t->fallthrough();
    t->add_flag("--json", o->json, "Print one JSON object");
    t->add_option("--seconds", o->seconds, "Duration of the bulk run (default 2)")
        ->check(CLI::Range(0.05, 60.0));
    t->add_option("--framer", o->framer,
                  "Message layer over tcp: framer (post-frame: chunks, priorities, acks) or "
                  "length-prefix (the baseline's own wire format)")
        ->check(CLI::IsMember({"framer", "length-prefix"}));
    t->add_option("--only", o->only,
                  "Run only these phases (throughput, rtt, connections; default: all)")
        ->delimiter(',')
        ->check(CLI::IsMember({"throughput", "rtt", "connections"}));
    t->callback([&g, &run, o] { run = [&g, o] { return run_bench(g, *o); }; });
    add_bench_hol(*b, g, run);
    add_bench_tls(*b, g, run);
    add_bench_racing(*b, g, run);
    add_bench_sctp(*b, g, run);
    add_bench_quic(*b, g, run);
}

} // namespace post_tool
