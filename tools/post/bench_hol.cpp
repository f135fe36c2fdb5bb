// `post bench hol`: head-of-line blocking under load. See docs/benchmarks.md for the method.
//
// A niceness-9 bulk flow of 1 MiB messages keeps a connection busy while a 1 KiB niceness-0
// message is sent every 10 ms; the receiver measures each urgent message's one-way latency from
// a steady_clock timestamp in its payload (sender and receiver are threads of this process).
// Three phases per environment, one after the other: our carrier over [framer, tcp], a raw Asio
// TCP socket carrying the same messages in FIFO order (4-byte length prefix), and our carrier
// again with a lifetime on the urgent messages. Environments: loopback, and with --netns two
// network namespaces joined by a veth pair rate-limited with tbf.
#include "common.hpp"
#include "hol_link.hpp"
#include "hol_stamp.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <span>

namespace post_tool {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using bench::kind;
using bench::now_ns;
using bench::stamp;
using boost::asio::ip::tcp;

constexpr std::size_t default_bulk_size = 1024 * 1024;
constexpr std::size_t max_bulk_size = 256 * 1024 * 1024; ///< --bulk-size's bound
constexpr std::size_t urgent_size = 1024;
constexpr auto urgent_interval = 10ms;
constexpr int bulk_queue = 2; ///< Bulk messages handed over and not yet reported sent.
constexpr int bulk_niceness = 9;
constexpr int urgent_niceness = 0;
constexpr auto urgent_lifetime = 50ms;
constexpr auto drain_budget = 30s; ///< After the load stops, for queued messages to arrive.
constexpr auto establish_budget = 15s;
constexpr double target_ratio = 1.0 / 20;

/// The policy for our carrier: small buffers below the scheduler (framer send window, unsent
/// kernel bytes, receive queue) so that our scheduler, not a FIFO queue, decides urgency. The
/// receive buffer depends on the path: through the 1500-byte-MTU link 32 KiB keeps the
/// bottleneck queue short; on loopback (MSS 64 KiB) anything under a few segments makes TCP wait
/// for 40 ms delayed ACKs (measured: p99 40 ms with 32 KiB, 0.3-4 ms with 256 KiB). The framer's
/// message size limit (16 MiB by default) is raised to --bulk-size when that is larger.
std::string bench_policy_yaml(bool netns, std::size_t bulk_size) {
    constexpr std::size_t framer_default_max = 16 * 1024 * 1024;
    return fmt::format(R"(version: 1
name: bench-hol
description: >
  post bench hol; small buffers below the scheduler (framer send window, unsent kernel bytes,
  receive queue) so that our scheduler, not a FIFO queue, decides urgency.
stacks:
  - [framer, tcp]
protocols:
  framer: {{ send-window: 32768, max-message-size: {} }}
  tcp: {{ nodelay: true, notsent-lowat: 16384, receive-buffer: {} }}
)",
                       std::max(bulk_size, framer_default_max), netns ? 32768 : 262144);
}

// ---- one phase: shared by the sender thread, the receiver thread and the main thread --------

struct phase {
    std::uint32_t id = 0;
    std::string name;
    std::optional<std::chrono::milliseconds> lifetime; ///< Of the urgent messages.
    std::size_t bulk_size = default_bulk_size;
    /// Bulk only, before the measured window: see load_generator::begin.
    std::chrono::duration<double> warmup{0};

    std::mutex mutex;
    // Set by the sender before its first message.
    std::int64_t window_start_ns = 0, window_end_ns = 0;
    // Receiver.
    std::vector<double> latency_us;
    std::uint64_t late = 0, bulk_bytes = 0; ///< bulk_bytes: arrived inside the window.
    // Sender.
    std::uint64_t urgent_sent = 0, expired = 0, send_errors = 0, duplicates = 0;
    bool sender_done = false;
    std::string first_send_error;
    std::set<std::uint64_t> settled; ///< Urgent sequence numbers delivered, expired or failed.

    std::promise<void> done_promise;
    bool done = false;
    std::string failure;

    // Every urgent message sent has been delivered, has expired or has failed: the phase ends.
    void check_done_locked() {
        if (!done && sender_done && settled.size() >= urgent_sent) {
            done = true;
            done_promise.set_value();
        }
    }
    void settle_locked(std::uint64_t seq) {
        if (!settled.insert(seq).second) ++duplicates;
        check_done_locked();
    }
    void fail(const std::string& why) {
        std::lock_guard lock(mutex);
        if (done) return;
        failure = why;
        done = true;
        done_promise.set_value();
    }

    /// On the receiver's thread, for every message that arrives whole.
    void arrived(const stamp& s, std::size_t size) {
        const auto now = now_ns();
        std::lock_guard lock(mutex);
        if (s.what == kind::bulk) {
            if (now <= window_end_ns) bulk_bytes += size;
            return;
        }
        const double us = (now - s.sent_ns) / 1e3;
        latency_us.push_back(us);
        if (lifetime && us > std::chrono::duration<double, std::micro>(*lifetime).count()) ++late;
        settle_locked(s.seq);
    }
};

/// Phases by id, so that a message that arrives late from an earlier phase is not counted in
/// the current one.
class phase_registry {
public:
    void add(std::shared_ptr<phase> p) {
        std::lock_guard lock(mutex_);
        phases_[p->id] = std::move(p);
    }
    void remove(std::uint32_t id) {
        std::lock_guard lock(mutex_);
        phases_.erase(id);
    }
    void arrived(std::span<const std::byte> payload) {
        auto s = stamp::read(payload);
        if (!s) return;
        std::shared_ptr<phase> p;
        {
            std::lock_guard lock(mutex_);
            auto it = phases_.find(s->phase);
            if (it == phases_.end()) return;
            p = it->second;
        }
        p->arrived(*s, payload.size());
    }

private:
    std::mutex mutex_;
    std::map<std::uint32_t, std::shared_ptr<phase>> phases_;
};

// ---- the load: what both senders share ------------------------------------------------------

/// Paces the urgent messages and keeps the bulk queue full, for a sender that knows how to
/// send one message of each kind. Runs on the sender's thread.
class load_generator {
public:
    load_generator(boost::asio::io_context& io, std::shared_ptr<phase> ph,
                   std::chrono::duration<double> seconds)
        : timer_(io)
        , phase_(std::move(ph))
        , seconds_(seconds) {}
    virtual ~load_generator() { *alive_ = false; }

protected:
    virtual void send_bulk(std::vector<std::byte> payload) = 0;
    virtual void send_urgent(std::vector<std::byte> payload, std::uint64_t seq) = 0;

    /// Call when the connection is ready. The bulk flow starts at once; the urgent messages,
    /// and the window that counts bulk bytes, after the warm-up. A new connection's first bulk
    /// messages arrive while both ends' socket buffers and heaps still grow: measured, that put
    /// the urgent messages of a phase's first ~60 ms at 2-14 ms, ours and raw TCP's alike, so
    /// the p99 of a 5 s phase described start-up more than head-of-line blocking.
    void begin() {
        const auto warmup = std::chrono::duration_cast<clock_type::duration>(phase_->warmup);
        const auto start = clock_type::now() + warmup;
        {
            std::lock_guard lock(phase_->mutex);
            phase_->window_start_ns =
                now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(warmup).count();
            phase_->window_end_ns =
                phase_->window_start_ns +
                std::chrono::duration_cast<std::chrono::nanoseconds>(seconds_).count();
        }
        deadline_ = start + std::chrono::duration_cast<clock_type::duration>(seconds_);
        next_tick_ = start;
        fill_bulk();
        if (warmup.count() == 0) return tick();
        timer_.expires_at(next_tick_);
        timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
            if (!ec && *alive) tick();
        });
    }

    /// A bulk message left (sent, expired or failed): keep the queue full.
    void bulk_left() {
        if (bulk_outstanding_ > 0) --bulk_outstanding_;
        fill_bulk();
    }

    void stop_load() {
        if (stopped_) return;
        stopped_ = true;
        timer_.cancel();
        std::lock_guard lock(phase_->mutex);
        phase_->sender_done = true;
        phase_->check_done_locked();
    }

    std::vector<std::byte> make_payload(kind k, std::size_t size, std::uint64_t seq) {
        std::vector<std::byte> p(size, std::byte{0x5a});
        stamp{k, phase_->id, seq, now_ns()}.write(p.data());
        return p;
    }

    boost::asio::steady_timer timer_;
    std::shared_ptr<phase> phase_;

private:
    void fill_bulk() {
        while (!stopped_ && bulk_outstanding_ < bulk_queue) {
            ++bulk_outstanding_;
            send_bulk(make_payload(kind::bulk, phase_->bulk_size, bulk_seq_++));
        }
    }

    void tick() {
        if (stopped_) return;
        if (clock_type::now() >= deadline_) return stop_load();
        const auto seq = urgent_seq_++;
        {
            std::lock_guard lock(phase_->mutex);
            ++phase_->urgent_sent;
        }
        send_urgent(make_payload(kind::urgent, urgent_size, seq), seq);
        // Paced against the start, not the previous tick, so that a late tick does not shift
        // every later one.
        next_tick_ += urgent_interval;
        timer_.expires_at(next_tick_);
        // The sender may be destroyed (on this thread) while a tick is queued.
        timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
            if (!ec && *alive) tick();
        });
    }

    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::chrono::duration<double> seconds_;
    clock_type::time_point deadline_, next_tick_;
    std::uint64_t bulk_seq_ = 0, urgent_seq_ = 0;
    int bulk_outstanding_ = 0;
    bool stopped_ = false;
};

// ---- ours: a carrier over [framer, tcp] -----------------------------------------------------

class post_sender : public load_generator, public std::enable_shared_from_this<post_sender> {
public:
    post_sender(post::context& ctx, boost::asio::io_context& io, std::shared_ptr<phase> ph,
                std::chrono::duration<double> seconds)
        : load_generator(io, std::move(ph), seconds)
        , ctx_(ctx) {}

    void start(const post::remote& r, const post::policy& p) {
        c_ = post::initiate(ctx_, r, p);
        // Handlers hold a weak reference: the carrier owns them, and the runner owns us.
        std::weak_ptr<post_sender> weak = shared_from_this();
        auto with = [weak](auto f) {
            return [weak, f](auto&&... args) {
                if (auto self = weak.lock()) f(*self, args...);
            };
        };
        c_.on_sent(with([](post_sender& s, post::message_id id) { s.left(id, outcome::sent); }));
        c_.on_acked(with([](post_sender& s, post::message_id id) { s.left(id, outcome::acked); }));
        c_.on_expired(
            with([](post_sender& s, post::message_id id) { s.left(id, outcome::expired); }));
        c_.on_send_error(with([](post_sender& s, post::message_id id, const post::error& e) {
            s.left(id, outcome::failed, e.to_string());
        }));
        c_.on_error(with([](post_sender& s, const post::error& e) {
            if (!s.finished_) s.phase_->fail("our carrier: " + e.to_string());
        }));
        c_.async_wait_ready(with([](post_sender& s, boost::system::error_code ec) {
            if (ec) {
                auto e = s.c_.last_error();
                return s.phase_->fail("our carrier did not connect: " +
                                      (e && *e ? e->to_string() : ec.message()));
            }
            s.capabilities_ = s.c_.capabilities();
            s.stack_ = s.c_.stack();
            s.begin();
        }));
    }

    /// On the sender's thread, once the phase is over.
    void finish() {
        finished_ = true;
        stop_load();
        if (c_) c_.abort();
    }

    post::send_capabilities capabilities_;
    std::vector<std::string> stack_;

private:
    void send_bulk(std::vector<std::byte> payload) override {
        post::message m(std::move(payload));
        m.properties().niceness = bulk_niceness;
        bulk_ids_.insert(c_.send(std::move(m)));
    }
    void send_urgent(std::vector<std::byte> payload, std::uint64_t seq) override {
        post::message m(std::move(payload));
        m.properties().niceness = urgent_niceness;
        m.properties().lifetime = phase_->lifetime;
        urgent_ids_[c_.send(std::move(m))] = seq;
    }

    enum class outcome { sent, acked, expired, failed };

    void left(post::message_id id, outcome what, const std::string& why = {}) {
        if (bulk_ids_.erase(id)) {
            if (finished_) return;
            // A bulk message that fails (too large for the policy, say) would otherwise be
            // replaced at once, over and over, and the phase would measure nothing.
            if (what == outcome::failed) return phase_->fail("a bulk message failed: " + why);
            return bulk_left();
        }
        auto it = urgent_ids_.find(id);
        if (it == urgent_ids_.end()) return;
        const auto seq = it->second;
        // After `sent`, a stack that acknowledges can still report `expired`: the peer had the
        // message complete, but after its lifetime, and did not deliver it. So an urgent message
        // is the receiver's to settle only once it is acked (or sent, on a stack without acks).
        if (what == outcome::sent && capabilities_.acked) return;
        urgent_ids_.erase(it);
        if (what == outcome::sent || what == outcome::acked) return; // the receiver settles it
        std::lock_guard lock(phase_->mutex);
        if (what == outcome::expired) {
            ++phase_->expired;
        } else {
            ++phase_->send_errors;
            if (phase_->first_send_error.empty()) phase_->first_send_error = why;
        }
        phase_->settle_locked(seq);
    }

    post::context& ctx_;
    post::carrier c_;
    std::set<post::message_id> bulk_ids_;
    std::map<post::message_id, std::uint64_t> urgent_ids_;
    bool finished_ = false;
};

/// The receiving side of our carrier: every accepted carrier reports what arrives.
class post_receiver {
public:
    post_receiver(phase_registry& reg)
        : registry_(reg) {}

    void listen(post::context& ctx, const std::string& address, const post::policy& p) {
        post::local where{boost::asio::ip::make_address(address), 0, {}};
        listener_ = post::listen(ctx, where, p, plain_tcp("post bench hol"));
        listener_.on_carrier([this](post::carrier c) {
            const void* key = c.impl().get();
            carriers_[key] = c;
            std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
            c.on_received([this](post::message m) { registry_.arrived(m.data()); });
            auto forget = [this, key, ex = c.get_executor()] {
                boost::asio::post(ex, [this, key] { carriers_.erase(key); });
            };
            c.on_closed(forget);
            c.on_error([forget](const post::error&) { forget(); });
        });
        auto eps = listener_.local_endpoints();
        if (eps.empty()) throw std::runtime_error("the post listener has no local endpoint");
        endpoint_ = eps.front();
    }
    /// Between phases: drop what is still arriving, so that the next phase has the link alone.
    void abort_all() {
        for (auto& [key, c] : carriers_)
            c.abort();
    }
    void close() {
        abort_all();
        listener_.close();
    }
    post::sdk::endpoint endpoint() const { return endpoint_; }

private:
    phase_registry& registry_;
    post::listener listener_;
    std::map<const void*, post::carrier> carriers_;
    post::sdk::endpoint endpoint_;
};

// ---- the baseline: one raw Asio TCP socket, FIFO ---------------------------------------------

std::shared_ptr<std::vector<std::byte>> frame_of(std::vector<std::byte> payload) {
    auto f = std::make_shared<std::vector<std::byte>>(payload.size() + 4);
    const auto n = static_cast<std::uint32_t>(payload.size());
    const std::byte header[4] = {std::byte(n >> 24), std::byte(n >> 16), std::byte(n >> 8),
                                 std::byte(n)};
    std::memcpy(f->data(), header, 4);
    std::memcpy(f->data() + 4, payload.data(), payload.size());
    return f;
}

class raw_sender : public load_generator, public std::enable_shared_from_this<raw_sender> {
public:
    raw_sender(boost::asio::io_context& io, std::shared_ptr<phase> ph,
               std::chrono::duration<double> seconds)
        : load_generator(io, std::move(ph), seconds)
        , socket_(io) {}

    void start(tcp::endpoint server) {
        socket_.async_connect(server, [self = shared_from_this()](boost::system::error_code ec) {
            if (ec) return self->phase_->fail("raw TCP did not connect: " + ec.message());
            self->socket_.set_option(tcp::no_delay(true));
            self->begin();
        });
    }
    void finish() {
        finished_ = true;
        stop_load();
        boost::system::error_code ignored;
        // Reset rather than close gracefully: unsent bytes must not occupy the link during the
        // next phase.
        socket_.set_option(boost::asio::socket_base::linger(true, 0), ignored);
        socket_.close(ignored);
    }

private:
    struct queued {
        std::shared_ptr<std::vector<std::byte>> frame;
        bool bulk;
    };

    void send_bulk(std::vector<std::byte> payload) override {
        enqueue({frame_of(std::move(payload)), true});
    }
    void send_urgent(std::vector<std::byte> payload, std::uint64_t) override {
        enqueue({frame_of(std::move(payload)), false});
    }
    void enqueue(queued q) {
        queue_.push_back(std::move(q));
        pump();
    }
    // One write at a time, in order: what a program with one socket and no priorities does.
    void pump() {
        if (writing_ || queue_.empty() || finished_) return;
        writing_ = true;
        boost::asio::async_write(
            socket_, boost::asio::buffer(*queue_.front().frame),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                self->writing_ = false;
                if (ec) {
                    if (!self->finished_) self->phase_->fail("raw TCP write: " + ec.message());
                    return;
                }
                const bool bulk = self->queue_.front().bulk;
                self->queue_.pop_front();
                if (bulk && !self->finished_) self->bulk_left();
                self->pump();
            });
    }

    tcp::socket socket_;
    std::deque<queued> queue_;
    bool writing_ = false, finished_ = false;
};

class raw_session : public std::enable_shared_from_this<raw_session> {
public:
    raw_session(tcp::socket s, phase_registry& reg)
        : socket_(std::move(s))
        , registry_(reg) {}
    void start() { read_header(); }
    void abort() {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

private:
    void read_header() {
        boost::asio::async_read(
            socket_, boost::asio::buffer(header_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                if (ec) return self->abort();
                const std::size_t n =
                    (std::size_t(self->header_[0]) << 24) | (std::size_t(self->header_[1]) << 16) |
                    (std::size_t(self->header_[2]) << 8) | std::size_t(self->header_[3]);
                if (n > max_bulk_size) return self->abort();
                self->body_.resize(n);
                self->read_body();
            });
    }
    void read_body() {
        boost::asio::async_read(
            socket_, boost::asio::buffer(body_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                if (ec) return self->abort();
                self->registry_.arrived(self->body_);
                self->read_header();
            });
    }

    tcp::socket socket_;
    phase_registry& registry_;
    std::uint8_t header_[4] = {};
    std::vector<std::byte> body_;
};

class raw_receiver {
public:
    raw_receiver(boost::asio::io_context& io, phase_registry& reg, const std::string& address)
        : acceptor_(io, tcp::endpoint(boost::asio::ip::make_address(address), 0))
        , registry_(reg) {}
    tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
    void start() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return; // closed at the end of the run
            auto session = std::make_shared<raw_session>(std::move(s), registry_);
            sessions_.push_back(session);
            session->start();
            start();
        });
    }
    void abort_all() {
        for (auto& w : sessions_)
            if (auto s = w.lock()) s->abort();
        sessions_.clear();
    }
    void close() {
        abort_all();
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }

private:
    tcp::acceptor acceptor_;
    phase_registry& registry_;
    std::vector<std::weak_ptr<raw_session>> sessions_;
};

// ---- statistics -----------------------------------------------------------------------------

struct latency_stats {
    std::size_t count = 0;
    double p50_us = NAN, p99_us = NAN, max_us = NAN;
};

/// Nearest-rank percentiles.
latency_stats summarise(std::vector<double> us) {
    latency_stats s;
    s.count = us.size();
    if (us.empty()) return s;
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
        auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size())));
        return us[std::clamp<std::size_t>(rank, 1, us.size()) - 1];
    };
    s.p50_us = at(0.50);
    s.p99_us = at(0.99);
    s.max_us = us.back();
    return s;
}

struct phase_result {
    latency_stats urgent;
    std::vector<double> samples_us;
    double bulk_mbps = 0;
    std::uint64_t sent = 0, delivered = 0, late = 0, expired = 0, send_errors = 0, lost = 0;
    std::string first_send_error;
    bool drained = true; ///< Every urgent message was settled within the drain budget.
    std::optional<post::send_capabilities> capabilities;
    std::vector<std::string> stack;
};

nlohmann::json to_json(const latency_stats& s) {
    return {{"count", s.count}, {"p50_us", s.p50_us}, {"p99_us", s.p99_us}, {"max_us", s.max_us}};
}

nlohmann::json to_json(const post::send_capabilities& c) {
    return {{"acked", c.acked},
            {"expires_in_flight", c.expires_in_flight},
            {"interleaving", c.interleaving},
            {"ordered", c.ordered}};
}

nlohmann::json to_json(const phase_result& r) {
    nlohmann::json j{
        {"urgent", to_json(r.urgent)}, {"bulk_mbps", r.bulk_mbps}, {"sent", r.sent},
        {"delivered", r.delivered},    {"lost", r.lost},           {"drained", r.drained}};
    if (r.send_errors) j["send_errors"] = r.send_errors;
    if (!r.first_send_error.empty()) j["first_send_error"] = r.first_send_error;
    if (!r.stack.empty()) j["stack"] = r.stack;
    if (r.capabilities) j["capabilities"] = to_json(*r.capabilities);
    return j;
}

// ---- one environment: loopback or the namespaces ---------------------------------------------

struct bench_options {
    double seconds = 5;
    double warmup = 0.5; ///< Seconds of bulk alone before each phase's window.
    bool json = false, netns = false;
    std::string policy_file; ///< Empty: bench_policy_yaml(netns, bulk_size).
    std::size_t bulk_size = default_bulk_size;
};

post::policy bench_policy(const bench_options& o, bool netns) {
    if (!o.policy_file.empty()) return post::policy::load_file(o.policy_file);
    return post::policy::parse(bench_policy_yaml(netns, o.bulk_size), "<post bench hol>");
}

class environment {
public:
    environment(const global_options& g, const bench_options& o, bool netns)
        : g_(g)
        , o_(o)
        , netns_(netns)
        , policy_(bench_policy(o, netns)) {}

    // The threads stop before any object their handlers use goes away.
    ~environment() {
        sender_.stop();
        receiver_.stop();
    }

    nlohmann::json run() {
        const netns_link link;
        sender_.start(netns_);
        receiver_.start(netns_);
        if (netns_) set_up_link(sender_, receiver_, link);
        const std::string rx_address = netns_ ? link.receiver_address : "127.0.0.1";

        // Everything that opens sockets does so on its own thread, hence in its namespace.
        sender_.call([&] {
            sender_ctx_.emplace(sender_.io(), context_options_for(g_));
            if (g_.verbose) trace_to_stderr(*sender_ctx_);
        });
        receiver_.call([&] {
            receiver_ctx_.emplace(receiver_.io(), context_options_for(g_));
            post_rx_.emplace(registry_);
            post_rx_->listen(*receiver_ctx_, rx_address, policy_);
            raw_rx_.emplace(receiver_.io(), registry_, rx_address);
            raw_rx_->start();
        });
        struct closer {
            environment& e;
            ~closer() {
                try {
                    e.receiver_.call([&] {
                        if (e.post_rx_) e.post_rx_->close();
                        if (e.raw_rx_) e.raw_rx_->close();
                    });
                } catch (...) {
                    // ~environment stops the threads in any case
                }
            }
        } close_on_exit{*this};

        auto ours = run_phase("ours", true, std::nullopt);
        auto raw = run_phase("raw", false, std::nullopt);
        auto timed = run_phase("ours+lifetime", true, urgent_lifetime);

        // How many of the baseline's urgent messages would have missed the same lifetime.
        const double limit_us = std::chrono::duration<double, std::micro>(urgent_lifetime).count();
        auto raw_over = std::count_if(raw.samples_us.begin(), raw.samples_us.end(),
                                      [&](double us) { return us > limit_us; });

        nlohmann::json j{{"ours", to_json(ours)},
                         {"raw", to_json(raw)},
                         {"p99_ratio", ours.urgent.p99_us / raw.urgent.p99_us},
                         {"p99_ratio_target_max", target_ratio}};
        auto lt = to_json(timed);
        lt["lifetime_ms"] = urgent_lifetime.count();
        lt["late"] = timed.late;
        lt["expired"] = timed.expired;
        lt["raw_over_lifetime"] = raw_over;
        j["lifetime"] = lt;
        if (netns_) j["link"] = {{"rate", link.rate}, {"qdisc", "tbf burst 32kbit latency 50ms"}};
        j["policy"] = o_.policy_file.empty() ? bench_policy_yaml(netns_, o_.bulk_size)
                                             : "file " + o_.policy_file;
        return j;
    }

private:
    phase_result run_phase(const char* name, bool ours,
                           std::optional<std::chrono::milliseconds> lt) {
        auto ph = std::make_shared<phase>();
        ph->id = ++next_phase_;
        ph->name = name;
        ph->lifetime = lt;
        ph->bulk_size = o_.bulk_size;
        ph->warmup = std::chrono::duration<double>(o_.warmup);
        registry_.add(ph);
        auto done = ph->done_promise.get_future();
        const std::chrono::duration<double> seconds(o_.seconds);
        if (!o_.json)
            err_line(fmt::format("post bench hol: {} {}: {:.1f} s after {:.1f} s of warm-up",
                                 netns_ ? "netns" : "loopback", name, o_.seconds, o_.warmup));

        std::shared_ptr<post_sender> ps;
        std::shared_ptr<raw_sender> rs;
        sender_.call([&] {
            if (ours) {
                ps = std::make_shared<post_sender>(*sender_ctx_, sender_.io(), ph, seconds);
                ps->start(post::remote::from_endpoint(post_rx_->endpoint()), policy_);
            } else {
                rs = std::make_shared<raw_sender>(sender_.io(), ph, seconds);
                rs->start(raw_rx_->endpoint());
            }
        });
        const auto budget = establish_budget + drain_budget +
                            std::chrono::duration_cast<std::chrono::seconds>(seconds + ph->warmup);
        const bool drained = done.wait_for(budget) == std::future_status::ready;

        phase_result r;
        sender_.call([&] {
            if (ps) {
                ps->finish();
                r.capabilities = ps->capabilities_;
                r.stack = ps->stack_;
            }
            if (rs) rs->finish();
        });
        receiver_.call([&] {
            post_rx_->abort_all();
            raw_rx_->abort_all();
        });
        registry_.remove(ph->id);
        // Destroyed on their own thread, where their handlers run.
        sender_.call([&] {
            ps.reset();
            rs.reset();
        });

        std::lock_guard lock(ph->mutex);
        if (!ph->failure.empty())
            throw std::runtime_error(fmt::format("{} phase: {}", name, ph->failure));
        r.drained = drained;
        r.samples_us = ph->latency_us;
        r.urgent = summarise(ph->latency_us);
        r.sent = ph->urgent_sent;
        r.delivered = ph->latency_us.size();
        r.late = ph->late;
        r.expired = ph->expired;
        r.send_errors = ph->send_errors;
        r.first_send_error = ph->first_send_error;
        r.lost = r.sent - std::min<std::uint64_t>(r.sent, ph->settled.size());
        const double window_s = (ph->window_end_ns - ph->window_start_ns) / 1e9;
        r.bulk_mbps = window_s > 0 ? ph->bulk_bytes * 8 / window_s / 1e6 : 0;
        // Bulk is counted a whole message at a time (delivery is atomic), so a window shorter
        // than one bulk message's transfer reports 0 Mbit/s: say why rather than leave a 0.
        if (ph->bulk_bytes == 0)
            err_line(fmt::format("post bench hol: {} {}: no {}-byte bulk message arrived whole "
                                 "within {:.1f} s; a longer --seconds measures bulk throughput",
                                 netns_ ? "netns" : "loopback", name, ph->bulk_size, window_s));
        return r;
    }

    const global_options& g_;
    const bench_options& o_;
    const bool netns_;
    post::policy policy_;
    phase_registry registry_;
    std::uint32_t next_phase_ = 0;
    // Declared first, destroyed last: the io_contexts outlive everything registered with them.
    bench_thread sender_, receiver_;
    std::optional<post::context> sender_ctx_, receiver_ctx_;
    std::optional<post_receiver> post_rx_;
    std::optional<raw_receiver> raw_rx_;
};

// ---- output ---------------------------------------------------------------------------------

void print_environment(const char* title, const nlohmann::json& j) {
    out_line(fmt::format("== {} ==", title));
    if (j.contains("skipped")) {
        out_line(fmt::format("skipped: {}", j["skipped"].get<std::string>()));
        return;
    }
    if (j.contains("link"))
        out_line(fmt::format("link: veth between two network namespaces, sender egress {}",
                             j["link"]["qdisc"].get<std::string>() + " rate " +
                                 j["link"]["rate"].get<std::string>()));
    out_line(fmt::format("{:<16}{:>8}{:>12}{:>12}{:>12}{:>14}", "urgent 1 KiB", "count", "p50 ms",
                         "p99 ms", "max ms", "bulk Mbit/s"));
    auto row = [](const char* name, const nlohmann::json& r) {
        const auto& u = r["urgent"];
        auto ms = [&](const char* k) {
            return u[k].is_number() ? u[k].get<double>() / 1000.0 : NAN;
        };
        out_line(fmt::format("{:<16}{:>8}{:>12.3f}{:>12.3f}{:>12.3f}{:>14.1f}", name,
                             u["count"].get<std::size_t>(), ms("p50_us"), ms("p99_us"),
                             ms("max_us"), r["bulk_mbps"].get<double>()));
    };
    row("ours", j["ours"]);
    row("raw TCP", j["raw"]);
    row("ours+lifetime", j["lifetime"]);
    const double ratio = j["p99_ratio"].is_number() ? j["p99_ratio"].get<double>() : NAN;
    out_line(fmt::format("p99 ours/raw: {:.4f} (1/{:.0f}); target <= 1/20: {}", ratio, 1 / ratio,
                         ratio <= target_ratio ? "ok" : "MISSED"));
    const auto& lt = j["lifetime"];
    out_line(fmt::format("lifetime {} ms: sent {}, delivered {}, late {} (target 0), expired {}, "
                         "lost {}; raw TCP would have been late for {} of {}",
                         lt["lifetime_ms"].get<long>(), lt["sent"].get<long>(),
                         lt["delivered"].get<long>(), lt["late"].get<long>(),
                         lt["expired"].get<long>(), lt["lost"].get<long>(),
                         lt["raw_over_lifetime"].get<long>(), j["raw"]["delivered"].get<long>()));
    if (j["ours"].contains("capabilities"))
        out_line(fmt::format("our carrier's capabilities: {}", j["ours"]["capabilities"].dump()));
}

int run_hol(const global_options& g, const bench_options& o) {
    nlohmann::json doc{{"bench", "hol"},
                       {"seconds", o.seconds},
                       {"warmup_seconds", o.warmup},
                       {"bulk_size", o.bulk_size},
                       {"bulk_niceness", bulk_niceness},
                       {"bulk_queue", bulk_queue},
                       {"urgent_size", urgent_size},
                       {"urgent_niceness", urgent_niceness},
                       {"urgent_interval_ms", urgent_interval.count()},
                       {"policy", o.policy_file.empty() ? bench_policy_yaml(false, o.bulk_size)
                                                        : "file " + o.policy_file}};
    doc["loopback"] = environment(g, o, false).run();
    if (!o.json) print_environment("loopback", doc["loopback"]);

    int rc = 0;
    if (o.netns) {
        if (auto why = netns_unavailable(); !why.empty()) {
            doc["netns"] = {{"skipped", why}};
            if (o.json) err_line(fmt::format("post bench hol: netns skipped: {}", why));
        } else {
            try {
                doc["netns"] = environment(g, o, true).run();
            } catch (const std::exception& e) {
                doc["netns"] = {{"error", e.what()}};
                err_line(fmt::format("post bench hol: netns: {}", e.what()));
                rc = 1;
            }
        }
        if (!o.json && !doc["netns"].contains("error")) print_environment("netns", doc["netns"]);
    }
    if (o.json) out_line(to_line(doc));
    return rc;
}

} // namespace

void add_bench_hol(CLI::App& bench, const global_options& g, runner& run) {
    auto o = std::make_shared<bench_options>();
    auto* h = bench.add_subcommand(
        "hol", "Head-of-line blocking: urgent messages behind a bulk flow, ours vs raw TCP");
    h->fallthrough();
    h->add_flag("--json", o->json, "Print one JSON object");
    h->add_option("--seconds", o->seconds, "Duration of each phase (default 5)")
        ->check(CLI::Range(0.2, 120.0));
    h->add_option("--warmup", o->warmup,
                  "Seconds of bulk flow before each phase starts its urgent messages and its "
                  "window (default 0.5; 0 measures from the first message)")
        ->check(CLI::Range(0.0, 60.0));
    h->add_option(
         "--policy", o->policy_file,
         "Policy for our carrier in both environments (default: [framer, tcp] with send-window "
         "32768, notsent-lowat 16384, receive-buffer 262144 on loopback and 32768 through the "
         "link)")
        ->check(CLI::ExistingFile);
    h->add_option("--bulk-size", o->bulk_size,
                  "Bytes per bulk message (default 1 MiB; at least 1 MiB, at most 256 MiB)")
        ->check(CLI::Range(default_bulk_size, max_bulk_size));
    h->add_flag("--netns", o->netns,
                "Also run through a 50 Mbit/s link between two network namespaces (root only)");
    h->callback([&g, &run, o] { run = [&g, o] { return run_hol(g, *o); }; });
}

} // namespace post_tool
