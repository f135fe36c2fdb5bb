// `post bench sctp`: our [sctp, udp] carrier against usrsctp's own tsctp, and head-of-line
// blocking on SCTP streams. See docs/benchmarks.md#sctp for the method.
//
// Why the receiver is a child process: tsctp's client and server are two processes, each with its
// own usrsctp stack (usrsctp keeps one global stack per process, with process-wide locks). Our
// sender and receiver in one process would share one stack and its locks, which is neither what
// tsctp measures nor what a deployment looks like. So this process re-runs itself as
// `post bench sctp --serve` (a `post listen`-like receiver that times what arrives and prints one
// JSON line per result) and sends to it; each side then has its own stack and its own core.
//
// One-way latencies cross the process boundary: both processes read std::chrono::steady_clock,
// which on Linux is CLOCK_MONOTONIC, one clock for the whole host.
#include "bench_support.hpp"
#include "common.hpp"
#include "hol_link.hpp"
#include "hol_stamp.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>

extern char** environ;

namespace post_tool {
namespace {

using namespace bench;

constexpr std::size_t message_sizes[] = {1200, 8192};
constexpr const char* tsctp_path = "/usr/lib/usrsctp/tsctp";
constexpr int tsctp_sctp_port = 5001; // tsctp's default SCTP port, on both of its sides
constexpr double throughput_target = 1.0;
constexpr auto result_budget = std::chrono::seconds(120); ///< One transfer, either contender.

// The head-of-line workload of `post bench hol`, on SCTP.
constexpr std::size_t hol_bulk_size = 1024 * 1024;
constexpr std::size_t hol_urgent_size = 1024;
constexpr auto hol_urgent_interval = std::chrono::milliseconds(10);
constexpr int hol_bulk_queue = 2; ///< Bulk messages handed over and not yet reported sent.
constexpr int hol_bulk_niceness = 9;
constexpr int hol_urgent_niceness = 0;
constexpr auto hol_drain_budget = std::chrono::seconds(30);

const char* const bench_policy_yaml = R"(version: 1
name: bench-sctp
description: post bench sctp; SCTP over UDP on loopback, plugin defaults.
stacks:
  - [sctp, udp]
)";

// Payload bytes 0..20 of every head-of-line message: hol_stamp.hpp. Throughput payloads are
// filled with 'b' (as tsctp's are), which no stamp starts with.

struct bench_options {
    std::size_t bytes = 32 * 1024 * 1024;
    int runs = 1;
    double seconds = 5; ///< Of each head-of-line phase.
    bool json = false, serve = false;
    std::string policy_file;
};

post::policy bench_policy(const std::string& file) {
    if (!file.empty()) return post::policy::load_file(file);
    return post::policy::parse(bench_policy_yaml, "<post bench sctp>");
}

// ---- the receiver: `post bench sctp --serve` --------------------------------------------------

/// Accepts carriers, times throughput transfers as tsctp's server does, and reports each
/// head-of-line message as it arrives. Ends when its stdin closes (the parent went away).
int run_serve(const global_options& g, const bench_options& o) {
    boost::asio::io_context io{1};
    post::context ctx(io, context_options_for(g));
    auto policy = bench_policy(o.policy_file);
    post::local where{boost::asio::ip::make_address("127.0.0.1"), 0, {}};
    auto listener = post::listen(ctx, where, policy, post::constraint_for_scheme("sctp"));
    auto eps = listener.local_endpoints();
    if (eps.empty()) throw std::runtime_error("the sctp listener has no local endpoint");

    // Per carrier: what tsctp's server counts. Its clock starts when the first message arrives
    // and stops at end of file (the peer's SHUTDOWN); throughput = first length x messages /
    // that time.
    struct transfer {
        std::uint64_t messages = 0, bytes = 0, first_length = 0;
        std::int64_t first_ns = 0, last_ns = 0;
    };
    auto transfers = std::make_shared<std::map<const void*, transfer>>();
    listener.on_carrier([transfers](post::carrier c) {
        const void* key = c.impl().get();
        c.on_received([transfers, key](post::message m) {
            const auto t = now_ns();
            auto data = m.data();
            if (auto s = stamp::read(data)) {
                nlohmann::json j{{"event", s->what == kind::urgent ? "urgent" : "bulk"},
                                 {"phase", s->phase},
                                 {"seq", s->seq},
                                 {"bytes", data.size()},
                                 {"sent_ns", s->sent_ns},
                                 {"arrived_ns", t}};
                return out_line(to_line(j));
            }
            auto& tr = (*transfers)[key];
            if (tr.messages == 0) {
                tr.first_ns = t;
                tr.first_length = data.size();
            }
            ++tr.messages;
            tr.bytes += data.size();
            tr.last_ns = t;
        });
        auto report = [transfers, key](const char* how, std::string why) {
            const auto t = now_ns();
            auto it = transfers->find(key);
            if (it == transfers->end()) return; // a head-of-line carrier
            const auto tr = it->second;
            transfers->erase(it);
            nlohmann::json j{{"event", "transfer"},
                             {"end", how},
                             {"messages", tr.messages},
                             {"bytes", tr.bytes},
                             {"first_length", tr.first_length},
                             {"seconds_to_close", (t - tr.first_ns) / 1e9},
                             {"seconds_to_last", (tr.last_ns - tr.first_ns) / 1e9}};
            if (!why.empty()) j["error"] = why;
            out_line(to_line(j));
        };
        c.on_closed([report] { report("closed", {}); });
        c.on_error([report](const post::error& e) { report("error", e.to_string()); });
    });
    listener.on_error([](const post::error& e) {
        out_line(to_line({{"event", "listener-error"}, {"error", e.to_string()}}));
    });

    // The parent closes our stdin when it is done (or dies): then we end.
    boost::asio::posix::stream_descriptor in(io, ::dup(STDIN_FILENO));
    std::array<char, 256> buf;
    std::function<void()> read_stdin = [&] {
        in.async_read_some(boost::asio::buffer(buf),
                           [&](boost::system::error_code ec, std::size_t) {
                               if (!ec) return read_stdin();
                               listener.close();
                               io.stop();
                           });
    };
    read_stdin();
    out_line(to_line({{"event", "listening"}, {"port", eps.front().port}}));
    io.run();
    return 0;
}

// ---- child processes --------------------------------------------------------------------------

/// A child process whose stdout (and stderr, when `merge_stderr`) is read line by line on a thread
/// of ours; `on_line` runs on that thread. Its stdin is a pipe that close_stdin() closes.
class child_process {
public:
    child_process(std::vector<std::string> argv, bool merge_stderr,
                  std::function<void(const std::string&)> on_line)
        : on_line_(std::move(on_line)) {
        int out[2], in[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0)
            throw std::runtime_error("post bench sctp: pipe() failed");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        if (merge_stderr) posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        const int rc = ::posix_spawn(&pid_, argv[0].c_str(), &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        ::close(in[0]);
        stdin_ = in[1];
        if (rc != 0) {
            ::close(out[0]);
            close_stdin();
            throw std::runtime_error(
                fmt::format("post bench sctp: cannot run {}: {}", argv[0], std::strerror(rc)));
        }
        reader_ = std::thread([this, fd = out[0]] { read_lines(fd); });
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process() {
        close_stdin();
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGTERM);
            wait();
        }
        if (reader_.joinable()) reader_.join();
    }

    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }
    /// Waits for the child to exit; returns its exit status as a shell would (128 + signal).
    int wait() {
        if (exited_) return status_;
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
        exited_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
    }
    pid_t pid() const { return pid_; }

private:
    void read_lines(int fd) {
        std::string pending;
        std::vector<char> buf(64 * 1024);
        for (;;) {
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            std::size_t begin = 0;
            for (std::size_t i = 0; i < std::size_t(n); ++i) {
                if (buf[i] != '\n') continue;
                pending.append(buf.data() + begin, i - begin);
                on_line_(pending);
                pending.clear();
                begin = i + 1;
            }
            pending.append(buf.data() + begin, std::size_t(n) - begin);
        }
        if (!pending.empty()) on_line_(pending);
        ::close(fd);
    }

    std::function<void(const std::string&)> on_line_;
    pid_t pid_ = -1;
    int stdin_ = -1, status_ = 0;
    bool exited_ = false;
    std::thread reader_;
};

/// Lines handed from a reader thread to the main thread.
class line_queue {
public:
    void push(nlohmann::json j) {
        std::lock_guard lock(mutex_);
        lines_.push_back(std::move(j));
        cv_.notify_all();
    }
    /// The next line whose "event" is `event`; other lines before it are dropped. Throws
    /// std::runtime_error after `budget`.
    nlohmann::json wait_for(const std::string& event, std::chrono::seconds budget,
                            const std::string& what) {
        if (auto j = poll(event, budget)) return *j;
        throw std::runtime_error(
            fmt::format("post bench sctp: {}: nothing within {} s", what, budget.count()));
    }
    /// As wait_for, but empty after `budget`.
    std::optional<nlohmann::json> poll(const std::string& event,
                                       std::chrono::steady_clock::duration budget) {
        std::unique_lock lock(mutex_);
        const auto deadline = std::chrono::steady_clock::now() + budget;
        for (;;) {
            while (!lines_.empty()) {
                auto j = std::move(lines_.front());
                lines_.pop_front();
                if (j.value("event", "") == event) return j;
            }
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && lines_.empty())
                return std::nullopt;
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<nlohmann::json> lines_;
};

/// Whether some socket is bound to UDP `port` (IPv4 or IPv6), from /proc/net/udp{,6}.
bool udp_port_bound(std::uint16_t port) {
    const std::string needle = fmt::format(":{:04X} ", port);
    for (const char* file : {"/proc/net/udp", "/proc/net/udp6"}) {
        std::ifstream in(file);
        std::string line;
        std::getline(in, line); // header
        while (std::getline(in, line)) {
            // "  sl  local_address rem_address ...": the local address is the second column.
            std::istringstream fields(line);
            std::string sl, local;
            fields >> sl >> local;
            if (local.size() >= needle.size() - 1 &&
                local.compare(local.size() - (needle.size() - 1), needle.size() - 1,
                              needle.substr(0, needle.size() - 1)) == 0)
                return true;
        }
    }
    return false;
}

// ---- tsctp: client -> server, the server's own measurement -----------------------------------

/// tsctp's server prints, per association, "first_length, messages, recv_calls, bytes, seconds,
/// bytes/s, notifications" when it reaches end of file. The Debian build also logs every
/// chunk to stdout (it is built with SCTP_DEBUG), sometimes without a newline before the next
/// line: the result is matched anywhere in a line.
struct tsctp_result {
    std::uint64_t first_length = 0, messages = 0, bytes = 0;
    double seconds = NAN, bytes_per_s = NAN;
};

std::optional<tsctp_result> parse_tsctp_line(const std::string& line) {
    if (std::count(line.begin(), line.end(), ',') < 6) return std::nullopt;
    static const std::regex re(R"((\d+), (\d+), (\d+), (\d+), ([0-9.]+), ([0-9.]+), (\d+)\s*$)");
    std::smatch m;
    if (!std::regex_search(line, m, re)) return std::nullopt;
    tsctp_result r;
    r.first_length = std::stoull(m[1]);
    r.messages = std::stoull(m[2]);
    r.bytes = std::stoull(m[4]);
    r.seconds = std::stod(m[5]);
    r.bytes_per_s = std::stod(m[6]);
    return r;
}

tsctp_result run_tsctp(std::size_t length, std::uint64_t count) {
    const auto server_udp = free_udp_port("post bench sctp");
    auto client_udp = free_udp_port("post bench sctp");
    if (client_udp == server_udp) client_udp = free_udp_port("post bench sctp");

    line_queue results;
    // The server's lines are only scanned, never kept: they are megabytes of debug log.
    child_process server(
        {tsctp_path, "-E", std::to_string(server_udp), "-p", std::to_string(tsctp_sctp_port)}, true,
        [&results](const std::string& line) {
            if (auto r = parse_tsctp_line(line))
                results.push({{"event", "result"},
                              {"first_length", r->first_length},
                              {"messages", r->messages},
                              {"bytes", r->bytes},
                              {"seconds", r->seconds},
                              {"bytes_per_s", r->bytes_per_s}});
        });
    // tsctp says nothing when it is ready (apart from its debug log): wait until its UDP
    // encapsulation socket is bound, a condition polled for at most 10 s.
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    while (!udp_port_bound(server_udp)) {
        if (clock_type::now() > deadline)
            throw std::runtime_error(
                fmt::format("post bench sctp: tsctp server did not bind UDP port {}", server_udp));
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // -D: no Nagle, as our sctp layer (SCTP_NODELAY on every socket).
    std::string client_tail;
    child_process client({tsctp_path, "-E", std::to_string(client_udp), "-U",
                          std::to_string(server_udp), "-p", std::to_string(tsctp_sctp_port), "-D",
                          "-l", std::to_string(length), "-n", std::to_string(count), "127.0.0.1"},
                         true, [&client_tail](const std::string& line) {
                             if (!line.starts_with("[")) client_tail = line;
                         });
    if (const int rc = client.wait(); rc != 0)
        throw std::runtime_error(
            fmt::format("post bench sctp: tsctp client exited {}: {}", rc, client_tail));
    auto j =
        results.wait_for("result", std::chrono::duration_cast<std::chrono::seconds>(result_budget),
                         "tsctp server result");
    tsctp_result r;
    r.first_length = j["first_length"];
    r.messages = j["messages"];
    r.bytes = j["bytes"];
    r.seconds = j["seconds"];
    r.bytes_per_s = j["bytes_per_s"];
    if (r.messages != count)
        throw std::runtime_error(fmt::format(
            "post bench sctp: tsctp server received {} messages of {}", r.messages, count));
    return r;
}

// ---- ours: the sender in this process, the receiver in the child ------------------------------

/// The child `post bench sctp --serve` and what it reports.
class receiver_process {
public:
    receiver_process(const global_options& g, const bench_options& o,
                     std::function<void(const nlohmann::json&)> on_hol)
        : on_hol_(std::move(on_hol))
        , child_(argv(g, o), false, [this](const std::string& line) { route(line); }) {
        auto j = lines_.wait_for("listening", std::chrono::seconds(20), "our receiver");
        port_ = j["port"];
    }
    std::uint16_t port() const { return port_; }
    line_queue& lines() { return lines_; }

private:
    static std::vector<std::string> argv(const global_options& g, const bench_options& o) {
        // The executable itself, by its real path (the kernel finds plugins relative to it).
        std::vector<std::string> a{std::filesystem::read_symlink("/proc/self/exe").string(),
                                   "bench", "sctp", "--serve"};
        if (!g.config_file.empty()) a.insert(a.end(), {"--config", g.config_file});
        if (!o.policy_file.empty()) a.insert(a.end(), {"--policy", o.policy_file});
        return a;
    }
    void route(const std::string& line) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return err_line("receiver: " + line);
        const auto ev = j.value("event", "");
        if (ev == "urgent" || ev == "bulk") return on_hol_(j);
        lines_.push(std::move(j));
    }

    std::function<void(const nlohmann::json&)> on_hol_;
    line_queue lines_;
    std::uint16_t port_ = 0;
    child_process child_;
};

struct our_result {
    double bytes_per_s = NAN;      ///< tsctp's formula: first length x messages / to close.
    double bytes_per_s_last = NAN; ///< The same bytes up to the last message delivered.
    std::uint64_t messages = 0, bytes = 0;
    double seconds = NAN;
};

/// One transfer of `count` messages of `length` bytes over a fresh carrier, then a graceful close.
our_result run_ours(bench_thread& sender, post::context& ctx, receiver_process& rx,
                    const post::policy& policy, std::size_t length, std::uint64_t count) {
    struct state {
        post::carrier c;
        std::vector<std::byte> payload;
        std::uint64_t queued = 0, remaining = 0;
        int in_flight = 0, window = 0;
        std::shared_ptr<once_promise<std::string>> failed;
    };
    auto failed = std::make_shared<once_promise<std::string>>();
    auto failure = failed->p.get_future();
    sender.call([&] {
        auto st = std::make_shared<state>();
        st->payload.assign(length, std::byte{'b'});
        st->remaining = count;
        // Keep at least 256 KiB handed over and not yet taken by the stack: tsctp's blocking
        // sends keep its 256 KiB send buffer full in the same way.
        st->window = static_cast<int>(std::max<std::size_t>(16, 256 * 1024 / length));
        st->failed = failed;
        st->c = post::initiate(
            ctx, post::remote::from_url(fmt::format("sctp://127.0.0.1:{}", rx.port())), policy);
        auto fill = [st] {
            while (st->queued < st->remaining && st->in_flight < st->window) {
                st->c.send(post::message(st->payload));
                ++st->queued;
                ++st->in_flight;
            }
        };
        st->c.on_sent([st, fill](post::message_id) {
            --st->in_flight;
            fill();
            // All taken by the stack: a graceful close sends SHUTDOWN after the data, which is
            // what tsctp's SCTP_EOF on its last message does.
            if (st->in_flight == 0 && st->queued == st->remaining) st->c.close();
        });
        st->c.on_send_error([st](post::message_id, const post::error& e) {
            st->failed->set("send failed: " + e.to_string());
        });
        st->c.on_error([st](const post::error& e) { st->failed->set(e.to_string()); });
        // The carrier keeps its handlers, and they keep the state, until it ends.
        st->c.on_closed([st] { st->failed->set({}); });
        st->c.async_wait_ready([st, fill](boost::system::error_code ec) {
            if (ec) return st->failed->set("did not connect: " + error_reason(ec, st->c));
            fill();
        });
    });
    // The receiver's result, unless our carrier fails first (then the receiver may never have
    // seen a message, and says nothing).
    nlohmann::json j;
    const auto deadline = clock_type::now() + result_budget;
    for (;;) {
        if (auto got = rx.lines().poll("transfer", std::chrono::milliseconds(200))) {
            j = std::move(*got);
            break;
        }
        if (failure.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
            if (auto why = failure.get(); !why.empty())
                throw std::runtime_error("post bench sctp: our carrier: " + why);
            // Closed cleanly: the result is on its way.
            j = rx.lines().wait_for("transfer", std::chrono::seconds(20), "our receiver's result");
            break;
        }
        if (clock_type::now() > deadline)
            throw std::runtime_error(fmt::format(
                "post bench sctp: our transfer gave no result within {} s", result_budget.count()));
    }
    if (j.contains("error"))
        throw std::runtime_error("post bench sctp: our receiver: " + j["error"].get<std::string>());
    our_result r;
    r.messages = j["messages"];
    r.bytes = j["bytes"];
    r.seconds = j["seconds_to_close"];
    const double first_length = j["first_length"];
    r.bytes_per_s = first_length * double(r.messages) / r.seconds;
    r.bytes_per_s_last = first_length * double(r.messages) / j["seconds_to_last"].get<double>();
    if (r.messages != count || r.bytes != count * length)
        throw std::runtime_error(
            fmt::format("post bench sctp: our receiver got {} messages ({} bytes) of {} ({} bytes)",
                        r.messages, r.bytes, count, count * length));
    return r;
}

// ---- head-of-line: bulk on one carrier, urgent on a forked one or on the same -----------------

/// What the sender and the receiver's lines share during one phase.
struct hol_phase {
    std::uint32_t id = 0;
    std::mutex mutex;
    std::condition_variable cv;
    std::int64_t window_start_ns = 0, window_end_ns = 0;
    std::uint64_t urgent_sent = 0, bulk_bytes = 0;
    std::set<std::uint64_t> settled;
    std::vector<double> latency_us;
    bool sender_done = false;
    std::string failure;

    bool done_locked() const {
        return !failure.empty() || (sender_done && settled.size() >= urgent_sent);
    }
    /// On the receiver's reader thread.
    void arrived(const nlohmann::json& j) {
        std::lock_guard lock(mutex);
        if (j["event"] == "bulk") {
            if (j["arrived_ns"].get<std::int64_t>() <= window_end_ns)
                bulk_bytes += j["bytes"].get<std::uint64_t>();
        } else if (settled.insert(j["seq"].get<std::uint64_t>()).second) {
            latency_us.push_back(
                (j["arrived_ns"].get<std::int64_t>() - j["sent_ns"].get<std::int64_t>()) / 1e3);
        }
        cv.notify_all();
    }
    void fail(const std::string& why) {
        std::lock_guard lock(mutex);
        if (failure.empty()) failure = why;
        cv.notify_all();
    }
};

/// Runs on the sender's thread: keeps the bulk queue full on `bulk_` and sends an urgent
/// message every 10 ms on `urgent_` (the bulk carrier itself, or its fork).
class hol_sender : public std::enable_shared_from_this<hol_sender> {
public:
    hol_sender(boost::asio::io_context& io, std::shared_ptr<hol_phase> ph,
               std::chrono::duration<double> seconds)
        : timer_(io)
        , phase_(std::move(ph))
        , seconds_(seconds) {}

    void start(post::context& ctx, const post::remote& r, const post::policy& p, bool fork) {
        bulk_ = post::initiate(ctx, r, p);
        std::weak_ptr<hol_sender> weak = shared_from_this();
        auto fail = [weak](const char* who) {
            return [weak, who](const post::error& e) {
                if (auto s = weak.lock(); s && !s->finished_)
                    s->phase_->fail(fmt::format("{} carrier: {}", who, e.to_string()));
            };
        };
        bulk_.on_error(fail("bulk"));
        bulk_.on_sent([weak](post::message_id id) {
            if (auto s = weak.lock()) s->left(id);
        });
        bulk_.async_wait_ready([weak, fork, fail](boost::system::error_code ec) {
            auto s = weak.lock();
            if (!s) return;
            if (ec) return s->phase_->fail("bulk carrier: " + error_reason(ec, s->bulk_));
            s->stack_ = s->bulk_.stack();
            if (!fork) {
                s->urgent_ = s->bulk_;
                return s->begin();
            }
            s->urgent_ = s->bulk_.fork();
            s->urgent_.on_error(fail("forked"));
            s->urgent_.async_wait_ready([weak](boost::system::error_code ec) {
                auto s = weak.lock();
                if (!s) return;
                if (ec) return s->phase_->fail("forked carrier: " + error_reason(ec, s->urgent_));
                s->begin();
            });
        });
    }

    /// On the sender's thread, once the phase is over: reset both ends, so that nothing of this
    /// phase occupies the association's successor.
    void finish() {
        finished_ = true;
        timer_.cancel();
        if (urgent_ && urgent_.impl() != bulk_.impl()) urgent_.abort();
        if (bulk_) bulk_.abort();
    }

    std::vector<std::string> stack_;

private:
    void begin() {
        const auto start = clock_type::now();
        {
            std::lock_guard lock(phase_->mutex);
            phase_->window_start_ns = now_ns();
            phase_->window_end_ns =
                phase_->window_start_ns +
                std::chrono::duration_cast<std::chrono::nanoseconds>(seconds_).count();
        }
        deadline_ = start + std::chrono::duration_cast<clock_type::duration>(seconds_);
        next_tick_ = start;
        fill_bulk();
        tick();
    }

    std::vector<std::byte> payload(kind k, std::size_t size, std::uint64_t seq) const {
        std::vector<std::byte> p(size, std::byte{0x5a});
        stamp{k, phase_->id, seq, now_ns()}.write(p.data());
        return p;
    }

    void fill_bulk() {
        while (!stopped_ && bulk_outstanding_ < hol_bulk_queue) {
            post::message m(payload(kind::bulk, hol_bulk_size, bulk_seq_++));
            m.properties().niceness = hol_bulk_niceness;
            bulk_ids_.insert(bulk_.send(std::move(m)));
            ++bulk_outstanding_;
        }
    }
    void left(post::message_id id) {
        if (!bulk_ids_.erase(id)) return; // an urgent message on the same carrier
        --bulk_outstanding_;
        fill_bulk();
    }

    void tick() {
        if (stopped_ || finished_) return;
        if (clock_type::now() >= deadline_) {
            stopped_ = true;
            std::lock_guard lock(phase_->mutex);
            phase_->sender_done = true;
            phase_->cv.notify_all();
            return;
        }
        {
            std::lock_guard lock(phase_->mutex);
            ++phase_->urgent_sent;
        }
        post::message m(payload(kind::urgent, hol_urgent_size, urgent_seq_++));
        m.properties().niceness = hol_urgent_niceness;
        urgent_.send(std::move(m));
        // Paced against the start, so that a late tick does not shift every later one.
        next_tick_ += hol_urgent_interval;
        timer_.expires_at(next_tick_);
        timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            if (auto s = weak.lock(); s && !ec) s->tick();
        });
    }

    boost::asio::steady_timer timer_;
    std::shared_ptr<hol_phase> phase_;
    std::chrono::duration<double> seconds_;
    post::carrier bulk_, urgent_;
    clock_type::time_point deadline_, next_tick_;
    std::set<post::message_id> bulk_ids_;
    std::uint64_t bulk_seq_ = 0, urgent_seq_ = 0;
    int bulk_outstanding_ = 0;
    bool stopped_ = false, finished_ = false;
};

struct hol_result {
    std::size_t sent = 0, delivered = 0;
    double p50_us = NAN, p99_us = NAN, max_us = NAN, bulk_mbps = NAN;
    bool drained = false;
    std::vector<std::string> stack;
};

nlohmann::json to_json(const hol_result& r) {
    return {{"sent", r.sent},       {"delivered", r.delivered}, {"p50_us", r.p50_us},
            {"p99_us", r.p99_us},   {"max_us", r.max_us},       {"bulk_mbps", r.bulk_mbps},
            {"drained", r.drained}, {"stack", r.stack}};
}

/// The receiver's lines go to the phase whose id they carry; stale phases are ignored.
struct hol_router {
    std::mutex mutex;
    std::shared_ptr<hol_phase> current;
    void operator()(const nlohmann::json& j) {
        std::shared_ptr<hol_phase> p;
        {
            std::lock_guard lock(mutex);
            p = current;
        }
        if (p && j["phase"].get<std::uint32_t>() == p->id) p->arrived(j);
    }
};

hol_result run_hol_phase(bench_thread& sender, post::context& ctx, receiver_process& rx,
                         hol_router& router, const post::policy& policy, std::uint32_t id,
                         bool fork, double seconds) {
    auto ph = std::make_shared<hol_phase>();
    ph->id = id;
    {
        std::lock_guard lock(router.mutex);
        router.current = ph;
    }
    std::shared_ptr<hol_sender> s;
    sender.call([&] {
        s = std::make_shared<hol_sender>(sender.io(), ph, std::chrono::duration<double>(seconds));
        s->start(ctx, post::remote::from_url(fmt::format("sctp://127.0.0.1:{}", rx.port())), policy,
                 fork);
    });
    hol_result r;
    {
        std::unique_lock lock(ph->mutex);
        r.drained =
            ph->cv.wait_for(lock, std::chrono::duration<double>(seconds) + hol_drain_budget + 15s,
                            [&] { return ph->done_locked(); });
        if (!ph->failure.empty()) {
            lock.unlock();
            sender.call([&] {
                s->finish();
                s.reset();
            });
            throw std::runtime_error("post bench sctp: head-of-line: " + ph->failure);
        }
    }
    sender.call([&] {
        s->finish();
        r.stack = s->stack_;
        s.reset();
    });
    {
        std::lock_guard lock(router.mutex);
        router.current.reset();
    }
    std::lock_guard lock(ph->mutex);
    r.sent = ph->urgent_sent;
    r.delivered = ph->latency_us.size();
    auto us = ph->latency_us;
    std::sort(us.begin(), us.end());
    const auto lat = percentiles(us);
    r.p50_us = lat.p50_us;
    r.p99_us = lat.p99_us;
    if (!us.empty()) r.max_us = us.back();
    const double window_s = (ph->window_end_ns - ph->window_start_ns) / 1e9;
    r.bulk_mbps = window_s > 0 ? ph->bulk_bytes * 8 / window_s / 1e6 : NAN;
    return r;
}

// ---- the whole run ------------------------------------------------------------------------------

std::string size_name(std::size_t n) {
    return n % 1024 == 0 ? fmt::format("{} KiB", n / 1024) : fmt::format("{} B", n);
}

int run_bench(const global_options& g, const bench_options& o) {
    const bool have_tsctp = ::access(tsctp_path, X_OK) == 0;
    const auto policy = bench_policy(o.policy_file);
    auto say = [&](const std::string& s) {
        if (!o.json) err_line(s);
    };

    hol_router router;
    receiver_process rx(g, o, [&router](const nlohmann::json& j) { router(j); });
    bench_thread sender;
    sender.start(false);
    std::optional<post::context> ctx;
    std::uint64_t forked_events = 0;
    std::mutex trace_mutex;
    sender.call([&] {
        ctx.emplace(sender.io(), context_options_for(g));
        if (g.verbose) trace_to_stderr(*ctx);
        ctx->on_trace([&](const post::trace_event& e) {
            if (e.what != post::trace_event::kind::forked) return;
            std::lock_guard lock(trace_mutex);
            ++forked_events;
        });
    });
    // The context, its carriers and their handlers live and die on the sender's thread.
    struct closer {
        bench_thread& t;
        std::optional<post::context>& c;
        ~closer() {
            try {
                t.call([&] { c.reset(); });
            } catch (...) {
                // the thread stops in any case
            }
            t.stop();
        }
    } close_on_exit{sender, ctx};

    nlohmann::json doc{{"bench", "sctp"},
                       {"bytes", o.bytes},
                       {"runs", o.runs},
                       {"tsctp", have_tsctp ? nlohmann::json(tsctp_path) : nlohmann::json()},
                       {"policy", o.policy_file.empty() ? std::string(bench_policy_yaml)
                                                        : "file " + o.policy_file}};
    if (!have_tsctp)
        err_line(fmt::format("post bench sctp: {} is missing (apt-get install libusrsctp-examples):"
                             " our side only",
                             tsctp_path));

    // (a) Throughput: alternating contenders, one transfer at a time.
    nlohmann::json tput = nlohmann::json::object();
    for (const auto length : message_sizes) {
        const std::uint64_t count = std::max<std::uint64_t>(1, o.bytes / length);
        nlohmann::json runs = nlohmann::json::array();
        std::vector<double> ours_v, tsctp_v, ratio_v;
        for (int run = 1; run <= o.runs; ++run) {
            say(fmt::format("post bench sctp: {} x {}, run {}: ours", count, size_name(length),
                            run));
            const auto ours = run_ours(sender, *ctx, rx, policy, length, count);
            tsctp_result ts;
            if (have_tsctp) {
                say(fmt::format("post bench sctp: {} x {}, run {}: tsctp", count, size_name(length),
                                run));
                ts = run_tsctp(length, count);
            }
            const double ours_mbs = ours.bytes_per_s / 1e6, ts_mbs = ts.bytes_per_s / 1e6;
            ours_v.push_back(ours_mbs);
            tsctp_v.push_back(ts_mbs);
            ratio_v.push_back(ours_mbs / ts_mbs);
            runs.push_back({{"ours_mbs", ours_mbs},
                            {"ours_mbs_to_last_message", ours.bytes_per_s_last / 1e6},
                            {"ours_seconds", ours.seconds},
                            {"tsctp_mbs", ts_mbs},
                            {"tsctp_seconds", ts.seconds},
                            {"ratio", ours_mbs / ts_mbs}});
        }
        tput[std::to_string(length)] = {{"message_size", length},
                                        {"messages", count},
                                        {"runs", runs},
                                        {"median",
                                         {{"ours_mbs", median(ours_v)},
                                          {"tsctp_mbs", median(tsctp_v)},
                                          {"ratio", median(ratio_v)}}}};
    }
    doc["throughput"] = tput;
    doc["throughput_ratio_target_min"] = throughput_target;

    // (b) Head-of-line: urgent messages on their own stream (a fork), then on the bulk's.
    say(fmt::format("post bench sctp: head-of-line, urgent on a forked carrier: {:.1f} s",
                    o.seconds));
    const auto forked = run_hol_phase(sender, *ctx, rx, router, policy, 1, true, o.seconds);
    std::uint64_t forks;
    {
        std::lock_guard lock(trace_mutex);
        forks = forked_events;
    }
    say(fmt::format("post bench sctp: head-of-line, urgent on the bulk carrier: {:.1f} s",
                    o.seconds));
    const auto same = run_hol_phase(sender, *ctx, rx, router, policy, 2, false, o.seconds);
    doc["hol"] = {{"seconds", o.seconds},
                  {"bulk_size", hol_bulk_size},
                  {"bulk_niceness", hol_bulk_niceness},
                  {"bulk_queue", hol_bulk_queue},
                  {"urgent_size", hol_urgent_size},
                  {"urgent_niceness", hol_urgent_niceness},
                  {"urgent_interval_ms", hol_urgent_interval.count()},
                  // Whether fork() opened a stream on the association (a `forked` trace event)
                  // or, without multistreaming, a second association.
                  {"fork", forks > 0 ? "stream" : "association"},
                  {"own_stream", to_json(forked)},
                  {"same_stream", to_json(same)},
                  {"p99_ratio", forked.p99_us / same.p99_us},
                  {"p50_ratio", forked.p50_us / same.p50_us}};

    if (o.json) {
        out_line(to_line(doc));
        return 0;
    }
    out_line(fmt::format("== throughput: {} bytes per transfer, ordered, reliable, stream 0 ==",
                         o.bytes));
    out_line(fmt::format("{:<10}{:>5}{:>13}{:>13}{:>9}   target >= {:.2f}", "message", "run",
                         "ours MB/s", "tsctp MB/s", "ratio", throughput_target));
    for (const auto length : message_sizes) {
        const auto& t = tput[std::to_string(length)];
        int run = 1;
        for (const auto& r : t["runs"]) {
            auto num = [](const nlohmann::json& v) {
                return v.is_number() ? v.get<double>() : NAN;
            };
            out_line(fmt::format("{:<10}{:>5}{:>13.1f}{:>13.1f}{:>9.2f}", size_name(length), run++,
                                 num(r["ours_mbs"]), num(r["tsctp_mbs"]), num(r["ratio"])));
        }
        auto num = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; };
        const double ratio = num(t["median"]["ratio"]);
        out_line(fmt::format("{:<10}{:>5}{:>13.1f}{:>13.1f}{:>9.2f}   {}", size_name(length), "med",
                             num(t["median"]["ours_mbs"]), num(t["median"]["tsctp_mbs"]), ratio,
                             std::isnan(ratio) ? "n/a" : verdict(ratio >= throughput_target)));
    }
    out_line(fmt::format("== head-of-line: 1 MiB niceness-9 bulk, 1 KiB niceness-0 every 10 ms, "
                         "{:.1f} s; fork opened a new {} ==",
                         o.seconds, forks > 0 ? "stream" : "association"));
    out_line(fmt::format("{:<22}{:>7}{:>10}{:>10}{:>10}{:>10}{:>14}", "urgent 1 KiB", "sent",
                         "arrived", "p50 ms", "p99 ms", "max ms", "bulk Mbit/s"));
    auto row = [](const char* name, const hol_result& r) {
        out_line(fmt::format("{:<22}{:>7}{:>10}{:>10.3f}{:>10.3f}{:>10.3f}{:>14.1f}", name, r.sent,
                             r.delivered, r.p50_us / 1e3, r.p99_us / 1e3, r.max_us / 1e3,
                             r.bulk_mbps));
    };
    row("own stream (fork)", forked);
    row("same stream (bulk's)", same);
    out_line(fmt::format("p99 own/same: {:.3f}; p50 own/same: {:.3f}", forked.p99_us / same.p99_us,
                         forked.p50_us / same.p50_us));
    return 0;
}

} // namespace

void add_bench_sctp(CLI::App& bench, const global_options& g, runner& run) {
    auto o = std::make_shared<bench_options>();
    auto* s = bench.add_subcommand(
        "sctp", "SCTP: our [sctp, udp] carrier vs usrsctp's tsctp, and head-of-line on streams");
    s->fallthrough();
    s->add_flag("--json", o->json, "Print one JSON object");
    s->add_option("--bytes", o->bytes,
                  "Bytes per throughput transfer, for each message size (default 33554432)")
        ->check(CLI::Range(std::size_t(8192), std::size_t(1) << 34));
    s->add_option("--runs", o->runs, "Throughput transfers per contender and size (default 1)")
        ->check(CLI::Range(1, 100));
    s->add_option("--seconds", o->seconds, "Duration of each head-of-line phase (default 5)")
        ->check(CLI::Range(0.2, 120.0));
    s->add_option("--policy", o->policy_file,
                  "Policy for our carriers, both sides (default: stacks [[sctp, udp]])")
        ->check(CLI::ExistingFile);
    // The receiving side, run by the benchmark itself in a child process.
    s->add_flag("--serve", o->serve)->group("");
    s->callback([&g, &run, o] {
        run = [&g, o] { return o->serve ? run_serve(g, *o) : run_bench(g, *o); };
    });
}

} // namespace post_tool
