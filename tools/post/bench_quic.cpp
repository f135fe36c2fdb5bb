// `post bench quic`: our [quic, udp] carrier against ngtcp2's own HTTP/3 peers (Debian's
// gtlsserver / gtlsclient), and how fast fork() opens streams. See docs/benchmarks.md#quic.
//
// As in `post bench sctp`, the receiver is a child process (`post bench quic --serve`): the
// baseline's client and server are two processes, each with its own core, and so are ours.
//
// Timing (both contenders include the same things):
// - ours, "whole": from initiate() (so the QUIC handshake is included) to the moment the
//   receiver's completion message (sent when the end marker after the last byte arrived) is
//   received here; "net": the same, from the carrier being ready.
// - gtlsclient, "whole": the process's wall time (start, handshake, GET of N bytes, exit);
//   "net": that minus the wall time of a GET of a 1-byte file in the same run, which estimates
//   the fixed cost (process start, handshake, request, exit) that we cannot see from outside.
// The ratio that has a target compares net to net; whole to whole is reported too.
#include "bench_support.hpp"
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

extern char** environ;

namespace post_tool {
namespace {

using namespace bench;
namespace fs = std::filesystem;

constexpr std::size_t chunk_size = 64 * 1024;
constexpr std::size_t ping_bytes = 32;
constexpr int send_window = 16; ///< Messages handed to the carrier and not yet reported sent.
/// The untimed first transfer (at most this much, at most --bytes): see the bulk runs.
constexpr std::uint64_t warmup_bytes = 8'000'000;
constexpr double throughput_target = 1.0;
constexpr auto phase_budget = std::chrono::seconds(120);

struct bench_options {
    std::size_t bytes = 64 * 1024 * 1024;
    int runs = 3;
    int streams = 1000;
    int batch = 50;
    int handshakes = 20; ///< Connections per kind in the time-to-first-byte test.
    bool json = false, serve = false;
    std::string policy_file;
};

[[noreturn]] void fail(const std::string& why) {
    throw std::runtime_error("post bench quic: " + why);
}

// ---- processes ----------------------------------------------------------------------------------

/// Runs `argv` (looked up in PATH) with stdin, stdout and stderr on /dev/null; returns its pid.
pid_t spawn_quiet(const std::vector<std::string>& argv) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO})
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null",
                                         fd == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0);
    std::vector<char*> args;
    for (auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail(fmt::format("cannot run {}: {}", argv[0], std::strerror(rc)));
    return pid;
}

/// Exit status as a shell reports it (128 + signal).
int wait_exit(pid_t pid) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int run_quiet(const std::vector<std::string>& argv) {
    return wait_exit(spawn_quiet(argv));
}

/// The full path of program `name`: from PATH, else /usr/sbin or /sbin (gtlsserver is in
/// /usr/sbin, which a user's PATH often lacks); empty when it is nowhere.
std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(std::string(path ? path : "/usr/bin:/bin") + ":/usr/sbin:/sbin");
    for (std::string d; std::getline(dirs, d, ':');)
        if (!d.empty() && ::access((fs::path(d) / name).c_str(), X_OK) == 0)
            return (fs::path(d) / name).string();
    return {};
}

/// A folder removed with everything in it when the benchmark ends. On /dev/shm when there is
/// one, so that gtlsclient's download goes to memory, as our receiver's bytes do.
struct scratch_dir {
    fs::path path;
    scratch_dir() {
        std::string tmpl = (fs::is_directory("/dev/shm") ? std::string("/dev/shm")
                                                         : fs::temp_directory_path().string()) +
                           "/post-bench-quic-XXXXXX";
        if (!::mkdtemp(tmpl.data())) fail("cannot create a scratch folder");
        path = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

/// A CA and a server certificate for 127.0.0.1 / localhost (ECDSA P-256, made in milliseconds)
/// by the openssl command; used by our listener and by gtlsserver alike.
void make_pki(const fs::path& dir) {
    const auto p = [&](const char* f) { return (dir / f).string(); };
    if (run_quiet({"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                   "/CN=post bench quic CA", "-keyout", p("ca.key"), "-out", p("ca.pem")}) != 0 ||
        run_quiet({"openssl",
                   "req",
                   "-x509",
                   "-new",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:P-256",
                   "-nodes",
                   "-days",
                   "2",
                   "-subj",
                   "/CN=localhost",
                   "-CA",
                   p("ca.pem"),
                   "-CAkey",
                   p("ca.key"),
                   "-addext",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1",
                   "-addext",
                   "basicConstraints=critical,CA:FALSE",
                   "-keyout",
                   p("server.key"),
                   "-out",
                   p("server.pem")}) != 0)
        fail("openssl could not make the test certificates (is openssl installed?)");
}

/// Whether a socket is bound to UDP `port`, from /proc/net/udp{,6} (local address: column 2).
bool udp_port_bound(std::uint16_t port) {
    const std::string tail = fmt::format(":{:04X}", port);
    for (const char* file : {"/proc/net/udp", "/proc/net/udp6"}) {
        std::ifstream in(file);
        std::string line, sl, local;
        std::getline(in, line);
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            fields >> sl >> local;
            if (local.ends_with(tail)) return true;
        }
    }
    return false;
}

/// Runs the io_context until `done()`; throws after `budget` naming `what`.
template <class Pred>
void run_until(boost::asio::io_context& io, Pred done, std::chrono::seconds budget,
               const std::string& what) {
    const auto deadline = clock_type::now() + budget;
    while (!done()) {
        if (clock_type::now() > deadline)
            fail(fmt::format("{}: nothing within {} s", what, budget.count()));
        io.run_one_for(std::chrono::milliseconds(50));
    }
}

// ---- the receiver: `post bench quic --serve` ---------------------------------------------------

/// Counts bulk bytes ('b' messages) per carrier; at the end marker ('e') prints the count and
/// sends it back as the completion message; echoes pings ('p'). Ends when stdin closes.
int run_serve(const global_options& g, const bench_options& o) {
    if (o.policy_file.empty()) fail("--serve needs --policy");
    boost::asio::io_context io{1};
    post::context ctx(io, context_options_for(g));
    auto policy = post::policy::load_file(o.policy_file);
    post::local where{boost::asio::ip::make_address("127.0.0.1"), 0, {}};
    auto listener = post::listen(ctx, where, policy, post::constraint_for_scheme("quic"));
    auto eps = listener.local_endpoints();
    if (eps.empty()) fail("the quic listener has no local endpoint");

    listener.on_carrier([](post::carrier c) {
        struct counts {
            std::uint64_t bytes = 0, messages = 0;
            clock_type::time_point first;
        };
        auto n = std::make_shared<counts>();
        // Weak: the carrier keeps its handlers, which must not keep the carrier.
        std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
        c.on_received([n, weak](post::message m) {
            post::carrier self(weak.lock());
            const auto d = m.data();
            if (d.empty() || !self) return;
            if (d[0] == std::byte{'b'}) {
                if (n->messages++ == 0) n->first = clock_type::now();
                n->bytes += d.size();
            } else if (d[0] == std::byte{'e'}) {
                nlohmann::json j{{"event", "transfer"},
                                 {"bytes", n->bytes},
                                 {"messages", n->messages},
                                 {"seconds", n->messages ? seconds_since(n->first) : 0.0}};
                out_line(to_line(j));
                self.send(post::message(to_line(j)));
                *n = counts{};
            } else {
                self.send(post::message(std::vector<std::byte>(d.begin(), d.end())));
            }
        });
        c.on_error([](const post::error& e) {
            out_line(to_line({{"event", "carrier-error"}, {"error", e.to_string()}}));
        });
    });
    listener.on_error([](const post::error& e) {
        out_line(to_line({{"event", "listener-error"}, {"error", e.to_string()}}));
    });

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

/// The child `post bench quic --serve`: its JSON lines are read on the parent's io_context.
class receiver_process {
public:
    receiver_process(boost::asio::io_context& io, const global_options& g,
                     const std::string& policy_file)
        : out_(io) {
        int out[2], in[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) fail("pipe() failed");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        // The executable itself, by its real path (the kernel finds plugins relative to it).
        std::vector<std::string> argv{fs::read_symlink("/proc/self/exe").string(),
                                      "bench",
                                      "quic",
                                      "--serve",
                                      "--policy",
                                      policy_file};
        if (!g.config_file.empty()) argv.insert(argv.end(), {"--config", g.config_file});
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        const int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        ::close(in[0]);
        stdin_ = in[1];
        if (rc != 0) {
            ::close(out[0]);
            ::close(stdin_);
            fail(fmt::format("cannot run the receiver: {}", std::strerror(rc)));
        }
        out_.assign(out[0]);
        read();
        run_until(
            io, [this] { return lines_.size() > 0 || ended_; }, std::chrono::seconds(20),
            "our receiver");
        auto j = next("listening");
        if (!j) fail("our receiver did not start: " + stderr_hint_);
        port_ = (*j)["port"];
    }
    receiver_process(const receiver_process&) = delete;
    receiver_process& operator=(const receiver_process&) = delete;
    ~receiver_process() {
        ::close(stdin_); // it ends when its stdin closes
        boost::system::error_code ignored;
        out_.close(ignored);
        wait_exit(pid_);
    }

    std::uint16_t port() const { return port_; }
    /// The next line of kind `event` already read, if any; earlier lines of other kinds are
    /// dropped, errors are thrown.
    std::optional<nlohmann::json> next(const std::string& event) {
        while (!lines_.empty()) {
            auto j = std::move(lines_.front());
            lines_.pop_front();
            const auto ev = j.value("event", "");
            if (ev == event) return j;
            if (ev.ends_with("-error")) fail("our receiver: " + j.value("error", std::string()));
        }
        return std::nullopt;
    }
    bool has_lines() const { return !lines_.empty(); }

private:
    void read() {
        boost::asio::async_read_until(
            out_, buf_, '\n', [this](boost::system::error_code ec, std::size_t n) {
                if (ec) {
                    ended_ = true;
                    return;
                }
                std::string line(boost::asio::buffers_begin(buf_.data()),
                                 boost::asio::buffers_begin(buf_.data()) + n - 1);
                buf_.consume(n);
                auto j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_object())
                    lines_.push_back(std::move(j));
                else
                    stderr_hint_ = line;
                read();
            });
    }

    boost::asio::posix::stream_descriptor out_;
    boost::asio::streambuf buf_;
    std::deque<nlohmann::json> lines_;
    std::string stderr_hint_;
    pid_t pid_ = -1;
    int stdin_ = -1;
    std::uint16_t port_ = 0;
    bool ended_ = false;
};

// ---- ours
// -----------------------------------------------------------------------------------------

struct our_bulk {
    double whole_s = NAN, net_s = NAN, receiver_s = NAN;
    std::uint64_t receiver_bytes = 0;
};

/// One transfer of `bytes` in 64 KiB messages over a fresh connection, then an end marker.
our_bulk run_ours(boost::asio::io_context& io, post::context& ctx, receiver_process& rx,
                  const post::policy& policy, std::uint64_t bytes) {
    struct state {
        post::carrier c;
        std::vector<std::byte> payload = std::vector<std::byte>(chunk_size, std::byte{'b'});
        std::uint64_t queued = 0;
        int in_flight = 0;
        clock_type::time_point start, ready, done;
        std::optional<nlohmann::json> completion;
        std::string failure;
    };
    auto st = std::make_shared<state>();
    st->start = clock_type::now();
    st->c = post::initiate(
        ctx, post::remote::from_url(fmt::format("quic://127.0.0.1:{}", rx.port())), policy);
    auto fill = [st, bytes] {
        while (st->queued < bytes && st->in_flight < send_window) {
            const auto n = std::min<std::uint64_t>(chunk_size, bytes - st->queued);
            st->c.send(post::message(
                std::vector<std::byte>(st->payload.begin(), st->payload.begin() + n)));
            st->queued += n;
            ++st->in_flight;
            // The end marker follows the last byte on the same ordered stream.
            if (st->queued == bytes) st->c.send(post::message(std::string_view("e")));
        }
    };
    st->c.on_sent([st, fill](post::message_id) {
        if (st->in_flight > 0) --st->in_flight;
        fill();
    });
    st->c.on_received([st](post::message m) {
        st->done = clock_type::now();
        auto j = nlohmann::json::parse(m.text(), nullptr, false);
        if (!j.is_object()) st->failure = "a completion message that is not JSON";
        st->completion = std::move(j);
    });
    st->c.on_error([st](const post::error& e) { st->failure = e.to_string(); });
    st->c.async_wait_ready([st, fill](boost::system::error_code ec) {
        if (ec) {
            st->failure = "did not connect: " + error_reason(ec, st->c);
            return;
        }
        st->ready = clock_type::now();
        fill();
    });
    run_until(
        io, [&] { return st->completion || !st->failure.empty(); }, phase_budget, "our transfer");
    if (!st->failure.empty()) {
        st->c.abort();
        fail("our carrier: " + st->failure);
    }
    st->c.close();
    // The receiver's own line (printed before it replied) carries the same count.
    run_until(
        io, [&] { return rx.has_lines(); }, std::chrono::seconds(10), "our receiver's line");
    auto line = rx.next("transfer");
    our_bulk r;
    r.whole_s = std::chrono::duration<double>(st->done - st->start).count();
    r.net_s = std::chrono::duration<double>(st->done - st->ready).count();
    r.receiver_s = (*st->completion)["seconds"];
    r.receiver_bytes = line ? (*line)["bytes"].get<std::uint64_t>() : 0;
    if (r.receiver_bytes != bytes || (*st->completion)["bytes"].get<std::uint64_t>() != bytes)
        fail(fmt::format("our receiver counted {} bytes of {}", r.receiver_bytes, bytes));
    return r;
}

struct stream_result {
    double seconds = NAN, per_s = NAN;
    int echoed = 0;
};

/// On one connection: `count` forks, at most `batch` open at once (below the peer's stream
/// credit, 100 by default: forks beyond it would wait for credit anyway), each sending one
/// small message and closing when its echo is back.
stream_result run_streams(boost::asio::io_context& io, post::context& ctx, receiver_process& rx,
                          const post::policy& policy, int count, int batch) {
    struct state {
        post::carrier root;
        std::vector<post::carrier> forks;
        int launched = 0, open = 0, echoed = 0;
        bool ready = false;
        std::string failure;
    };
    auto st = std::make_shared<state>();
    st->forks.reserve(count);
    st->root = post::initiate(
        ctx, post::remote::from_url(fmt::format("quic://127.0.0.1:{}", rx.port())), policy);
    st->root.on_error([st](const post::error& e) { st->failure = "connection: " + e.to_string(); });
    st->root.async_wait_ready([st](boost::system::error_code ec) {
        if (ec) st->failure = "did not connect: " + error_reason(ec, st->root);
        st->ready = true;
    });
    run_until(
        io, [&] { return st->ready; }, phase_budget, "the stream test's connection");
    if (!st->failure.empty()) fail(st->failure);

    const auto ping = std::vector<std::byte>(ping_bytes, std::byte{'p'});
    std::function<void()> launch = [&] {
        while (st->launched < count && st->open < batch) {
            const auto i = std::size_t(st->launched++);
            ++st->open;
            st->forks.push_back(st->root.fork());
            auto& f = st->forks[i];
            f.on_received([&, i](post::message) {
                ++st->echoed;
                --st->open;
                st->forks[i].close();
                launch();
            });
            f.on_error([st](const post::error& e) { st->failure = "stream: " + e.to_string(); });
            f.async_wait_ready([&, i](boost::system::error_code ec) {
                if (ec) {
                    st->failure = "stream did not open: " + error_reason(ec, st->forks[i]);
                    return;
                }
                st->forks[i].send(post::message(ping));
            });
        }
    };
    // The forks' handlers refer to this frame: replace them before it goes, however it goes.
    struct unhook {
        state& s;
        ~unhook() {
            for (auto& f : s.forks)
                f.on_received([](post::message) {});
        }
    } unhook_on_exit{*st};
    const auto start = clock_type::now();
    launch();
    run_until(
        io, [&] { return st->echoed == count || !st->failure.empty(); }, phase_budget,
        "the stream test");
    stream_result r;
    r.seconds = seconds_since(start);
    r.echoed = st->echoed;
    r.per_s = count / r.seconds;
    if (!st->failure.empty()) {
        for (auto& f : st->forks)
            f.abort();
        st->root.abort();
        fail(st->failure);
    }
    st->root.close();
    return r;
}

// ---- the baseline -------------------------------------------------------------------------------

/// gtlsserver serving a folder with `bulk` (N bytes) and `tiny` (1 byte), until destroyed.
class gtls_server {
public:
    gtls_server(const fs::path& dir, std::uint64_t bytes, const std::string& server_exe,
                std::string client_exe)
        : docs_(dir / "htdocs")
        , client_exe_(std::move(client_exe)) {
        fs::create_directories(docs_);
        {
            std::ofstream f(docs_ / "bulk", std::ios::binary);
            const std::vector<char> block(chunk_size, 'b');
            for (std::uint64_t left = bytes; left > 0;) {
                const auto n = std::min<std::uint64_t>(left, block.size());
                f.write(block.data(), std::streamsize(n));
                left -= n;
            }
            std::ofstream(docs_ / "tiny", std::ios::binary) << 'b';
        }
        port_ = free_udp_port("post bench quic");
        pid_ =
            spawn_quiet({server_exe, "-q", "-d", docs_.string(), "127.0.0.1", std::to_string(port_),
                         (dir / "server.key").string(), (dir / "server.pem").string()});
        // It says nothing when ready: poll for its socket (there is no event to wait for).
        const auto deadline = clock_type::now() + std::chrono::seconds(10);
        while (!udp_port_bound(port_)) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                fail("gtlsserver exited at start");
            }
            if (clock_type::now() > deadline) fail("gtlsserver did not bind its port");
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    gtls_server(const gtls_server&) = delete;
    gtls_server& operator=(const gtls_server&) = delete;
    ~gtls_server() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            wait_exit(pid_);
        }
    }

    /// Wall time of one gtlsclient GET of `file`, checked by the size of what it downloaded.
    double get(const std::string& file, std::uint64_t expect, const fs::path& download) {
        fs::create_directories(download);
        const auto start = clock_type::now();
        const int rc =
            run_quiet({client_exe_, "-q", "--exit-on-all-streams-close",
                       "--download=" + download.string(), "127.0.0.1", std::to_string(port_),
                       fmt::format("https://127.0.0.1:{}/{}", port_, file)});
        const double s = seconds_since(start);
        if (rc != 0) fail(fmt::format("gtlsclient exited {} getting {}", rc, file));
        std::error_code ec;
        const auto got = fs::file_size(download / file, ec);
        if (ec || got != expect)
            fail(fmt::format("gtlsclient downloaded {} bytes of {} for {}", ec ? 0 : got, expect,
                             file));
        fs::remove(download / file, ec);
        return s;
    }

private:
    fs::path docs_;
    std::string client_exe_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

// ---- the whole run
// --------------------------------------------------------------------------------

/// Time from initiate() to the echo of one idempotent message sent at once, on a new
/// connection. With a usable ticket the message goes in 0-RTT; without one it waits for the
/// handshake.
double first_echo_ms(boost::asio::io_context& io, post::context& ctx, receiver_process& rx,
                     const post::policy& policy) {
    struct state {
        post::carrier c;
        clock_type::time_point start, done;
        bool echoed = false;
        std::string failure;
    };
    auto st = std::make_shared<state>();
    st->start = clock_type::now();
    st->c = post::initiate(
        ctx, post::remote::from_url(fmt::format("quic://127.0.0.1:{}", rx.port())), policy);
    st->c.on_received([st](post::message) {
        st->done = clock_type::now();
        st->echoed = true;
    });
    st->c.on_error([st](const post::error& e) { st->failure = e.to_string(); });
    post::message ping(std::vector<std::byte>(ping_bytes, std::byte{'p'}));
    ping.properties().idempotent = true;
    st->c.send(std::move(ping));
    run_until(
        io, [&] { return st->echoed || !st->failure.empty(); }, phase_budget, "a first echo");
    if (!st->failure.empty()) {
        st->c.abort();
        fail("time to first byte: " + st->failure);
    }
    st->c.close();
    return std::chrono::duration<double, std::milli>(st->done - st->start).count();
}

/// What our client's quic layer logged (counted by run_bench's trace handler).
struct quic_log_counts {
    int accepted = 0, rejected = 0, resumed = 0;
    void count(const post::trace_event& e) {
        if (e.what != post::trace_event::kind::layer_log) return;
        if (e.detail.find("early data accepted") != std::string::npos) ++accepted;
        if (e.detail.find("early data rejected") != std::string::npos) ++rejected;
        if (e.detail.ends_with("resumed session")) ++resumed;
    }
};

struct ttfb_result {
    std::vector<double> full_ms, early_ms;
    quic_log_counts logged; ///< During the measured connections.
};

/// Alternates connections without tickets (session-tickets: false) and connections that resume
/// with 0-RTT, after one connection that fetches the first ticket.
ttfb_result run_ttfb(boost::asio::io_context& io, post::context& ctx, receiver_process& rx,
                     const post::policy& full, const post::policy& early, int count,
                     const quic_log_counts& logs) {
    ttfb_result r;
    first_echo_ms(io, ctx, rx, early); // the first ticket
    const auto before = logs;
    for (int i = 0; i < count; ++i) {
        r.full_ms.push_back(first_echo_ms(io, ctx, rx, full));
        r.early_ms.push_back(first_echo_ms(io, ctx, rx, early));
    }
    r.logged = {logs.accepted - before.accepted, logs.rejected - before.rejected,
                logs.resumed - before.resumed};
    return r;
}

nlohmann::json num(double x) {
    return std::isnan(x) || std::isinf(x) ? nlohmann::json() : nlohmann::json(x);
}

int run_bench(const global_options& g, const bench_options& o) {
    auto say = [&](const std::string& s) {
        if (!o.json) err_line(s);
    };
    const std::string server_exe = find_program("gtlsserver"),
                      client_exe = find_program("gtlsclient");
    const bool have_peer = !server_exe.empty() && !client_exe.empty();
    if (!have_peer)
        err_line("post bench quic: gtlsserver/gtlsclient are missing (apt-get install "
                 "ngtcp2-server ngtcp2-client): our side only");
    scratch_dir scratch;
    make_pki(scratch.path);
    std::string policy_file = o.policy_file;
    // The 0-RTT test compares the built-in policy with a variant that keeps no tickets.
    std::optional<post::policy> no_tickets;
    if (policy_file.empty()) {
        policy_file = (scratch.path / "bench-quic.yaml").string();
        // early-data: the receiver (a server) accepts 0-RTT; clients offer it by default.
        const auto text = [&](bool tickets) {
            return fmt::format(
                "version: 1\nname: bench-quic\nstacks:\n  - [quic, udp]\nprotocols:\n"
                "  quic: {{ cert-file: {0}/server.pem, key-file: {0}/server.key, ca-file: "
                "{0}/ca.pem, early-data: true, session-tickets: {1} }}\n",
                scratch.path.string(), tickets);
        };
        std::ofstream(policy_file) << text(true);
        no_tickets = post::policy::parse(text(false), "<post bench quic, no tickets>");
    }
    const auto policy = post::policy::load_file(policy_file);

    boost::asio::io_context io{1};
    auto work = boost::asio::make_work_guard(io);
    std::optional<post::context> ctx(std::in_place, io, context_options_for(g));
    if (g.verbose) trace_to_stderr(*ctx);
    std::uint64_t forked = 0;
    quic_log_counts logs;
    ctx->on_trace([&](const post::trace_event& e) {
        if (e.what == post::trace_event::kind::forked) ++forked;
        logs.count(e);
    });
    receiver_process rx(io, g, policy_file);
    std::optional<gtls_server> peer;
    if (have_peer) peer.emplace(scratch.path, o.bytes, server_exe, client_exe);

    // (a) bulk throughput, contenders alternating.
    nlohmann::json runs = nlohmann::json::array();
    std::vector<double> ours_net, ours_whole, theirs_net, theirs_whole, ratio_net, ratio_whole;
    const double mb = o.bytes / 1e6;
    // One untimed transfer per contender first. The first connection to a fresh receiver
    // process is slow to process while that process's heap and buffers grow; the RTT spikes
    // (qlog: 5-12 ms on loopback instead of 1-2), HyStart++ ends slow start early and the
    // congestion window stays at ~150 KB for the whole transfer (later connections reach
    // 350-470 KB): run 1 measured the receiver's start-up, at 14-18 MB/s against 70-110.
    say(fmt::format("post bench quic: warm-up transfer of {} bytes per contender (not timed)",
                    std::min<std::uint64_t>(o.bytes, warmup_bytes)));
    run_ours(io, *ctx, rx, policy, std::min<std::uint64_t>(o.bytes, warmup_bytes));
    if (peer) peer->get("bulk", o.bytes, scratch.path / "download");
    for (int run = 1; run <= o.runs; ++run) {
        say(fmt::format("post bench quic: bulk {} bytes, run {}: ours", o.bytes, run));
        const auto ours = run_ours(io, *ctx, rx, policy, o.bytes);
        double tiny = NAN, whole = NAN;
        if (peer) {
            say(fmt::format("post bench quic: bulk {} bytes, run {}: gtlsclient", o.bytes, run));
            tiny = peer->get("tiny", 1, scratch.path / "download");
            whole = peer->get("bulk", o.bytes, scratch.path / "download");
        }
        const double on = mb / ours.net_s, ow = mb / ours.whole_s;
        // A tiny transfer can take less than the 1-byte GET's noise: then there is no net figure.
        const double tn = whole > tiny ? mb / (whole - tiny) : NAN, tw = mb / whole;
        ours_net.push_back(on);
        ours_whole.push_back(ow);
        theirs_net.push_back(tn);
        theirs_whole.push_back(tw);
        ratio_net.push_back(on / tn);
        ratio_whole.push_back(ow / tw);
        runs.push_back({{"ours_mbs", num(on)},
                        {"ours_whole_mbs", num(ow)},
                        {"ours_seconds", ours.net_s},
                        {"ours_whole_seconds", ours.whole_s},
                        {"ours_receiver_seconds", ours.receiver_s},
                        {"receiver_bytes", ours.receiver_bytes},
                        {"gtls_mbs", num(tn)},
                        {"gtls_whole_mbs", num(tw)},
                        {"gtls_whole_seconds", num(whole)},
                        {"gtls_tiny_get_seconds", num(tiny)},
                        {"ratio", num(on / tn)},
                        {"ratio_whole", num(ow / tw)}});
    }

    // (b) stream open rate.
    say(fmt::format("post bench quic: {} streams on one connection, {} at once", o.streams,
                    o.batch));
    const auto streams = run_streams(io, *ctx, rx, policy, o.streams, o.batch);

    // (c) 0-RTT time to first byte against a full handshake.
    std::optional<ttfb_result> ttfb;
    if (no_tickets) {
        say(fmt::format("post bench quic: time to first byte, {} connections each with and "
                        "without 0-RTT",
                        o.handshakes));
        ttfb = run_ttfb(io, *ctx, rx, *no_tickets, policy, o.handshakes, logs);
    }
    nlohmann::json zero_rtt;
    if (ttfb) {
        const double full = median(ttfb->full_ms), early = median(ttfb->early_ms);
        zero_rtt = {{"connections", o.handshakes},
                    {"full_ms_median", full},
                    {"zero_rtt_ms_median", early},
                    {"ratio", early / full},
                    {"early_accepted", ttfb->logged.accepted},
                    {"early_rejected", ttfb->logged.rejected},
                    {"resumed", ttfb->logged.resumed},
                    {"timing", "from initiate() to the echo of one idempotent 32-byte message "
                               "sent at once; full: session-tickets false"}};
    }

    nlohmann::json doc{
        {"bench", "quic"},
        {"bytes", o.bytes},
        {"message_size", chunk_size},
        {"runs", o.runs},
        {"warmup_bytes", std::min<std::uint64_t>(o.bytes, warmup_bytes)},
        {"peer", have_peer ? nlohmann::json("gtlsserver/gtlsclient (ngtcp2 0.12 + GnuTLS, HTTP/3)")
                           : nlohmann::json()},
        {"timing",
         "ours: from the carrier being ready (whole: from initiate, handshake included) to the "
         "receiver's completion message arriving back here; gtls: gtlsclient wall time minus "
         "that of a 1-byte GET in the same run (whole: the wall time)"},
        {"throughput",
         {{"runs", runs},
          {"median",
           {{"ours_mbs", num(median(ours_net))},
            {"ours_whole_mbs", num(median(ours_whole))},
            {"gtls_mbs", num(median(theirs_net))},
            {"gtls_whole_mbs", num(median(theirs_whole))},
            {"ratio", num(median(ratio_net))},
            {"ratio_whole", num(median(ratio_whole))}}},
          {"ratio_target_min", throughput_target}}},
        {"streams",
         {{"count", o.streams},
          {"batch", o.batch},
          {"echoed", streams.echoed},
          {"seconds", streams.seconds},
          {"per_s", streams.per_s},
          {"forked_as_streams", forked},
          {"baseline", nullptr},
          {"note", "no baseline: gtlsclient opens streams only for its URIs"}}},
        {"zero_rtt", zero_rtt},
    };
    if (!ttfb) doc["note"] = "zero_rtt n/a: it needs the built-in policy (no --policy)";
    // The receiver and the context go before the io_context.
    ctx.reset();
    if (o.json) {
        out_line(to_line(doc));
        return 0;
    }
    const auto& med = doc["throughput"]["median"];
    auto n = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; };
    out_line(fmt::format("== bulk: {} bytes in 64 KiB messages, [quic, udp] vs gtlsclient GET ==",
                         o.bytes));
    out_line(fmt::format("{:<5}{:>11}{:>11}{:>11}{:>11}{:>8}{:>8}", "run", "ours MB/s", "gtls MB/s",
                         "ours whole", "gtls whole", "ratio", "whole"));
    int i = 1;
    for (const auto& r : runs)
        out_line(fmt::format("{:<5}{:>11.1f}{:>11.1f}{:>11.1f}{:>11.1f}{:>8.2f}{:>8.2f}", i++,
                             n(r["ours_mbs"]), n(r["gtls_mbs"]), n(r["ours_whole_mbs"]),
                             n(r["gtls_whole_mbs"]), n(r["ratio"]), n(r["ratio_whole"])));
    const double ratio = n(med["ratio"]);
    out_line(fmt::format("{:<5}{:>11.1f}{:>11.1f}{:>11.1f}{:>11.1f}{:>8.2f}{:>8.2f}   target >= "
                         "{:.2f} {}",
                         "med", n(med["ours_mbs"]), n(med["gtls_mbs"]), n(med["ours_whole_mbs"]),
                         n(med["gtls_whole_mbs"]), ratio, n(med["ratio_whole"]), throughput_target,
                         std::isnan(ratio) ? "n/a" : verdict(ratio >= throughput_target)));
    out_line(fmt::format("== streams: {} forks on one connection, {} at once: {:.0f} streams/s "
                         "({:.3f} s; no baseline) ==",
                         o.streams, o.batch, streams.per_s, streams.seconds));
    if (ttfb)
        out_line(fmt::format("== time to first byte, median of {}: full handshake {:.2f} ms, "
                             "0-RTT {:.2f} ms (ratio {:.2f}; early data accepted {} of {}, "
                             "rejected {}) ==",
                             o.handshakes, median(ttfb->full_ms), median(ttfb->early_ms),
                             median(ttfb->early_ms) / median(ttfb->full_ms), ttfb->logged.accepted,
                             o.handshakes, ttfb->logged.rejected));
    else
        out_line("== 0-RTT time to first byte: n/a (it needs the built-in policy) ==");
    return 0;
}

} // namespace

void add_bench_quic(CLI::App& bench, const global_options& g, runner& run) {
    auto o = std::make_shared<bench_options>();
    auto* s = bench.add_subcommand(
        "quic", "QUIC: our [quic, udp] carrier vs gtlsclient/gtlsserver, and stream open rate");
    s->fallthrough();
    s->add_flag("--json", o->json, "Print one JSON object");
    s->add_option("--bytes", o->bytes, "Bytes per bulk transfer (default 67108864)")
        ->check(CLI::Range(std::size_t(1), std::size_t(1) << 34));
    s->add_option("--runs", o->runs, "Bulk transfers per contender (default 3)")
        ->check(CLI::Range(1, 100));
    s->add_option("--streams", o->streams, "Forked carriers in the stream test (default 1000)")
        ->check(CLI::Range(1, 1000000));
    s->add_option("--batch", o->batch, "Forked carriers open at once (default 50)")
        ->check(CLI::Range(1, 10000));
    s->add_option("--handshakes", o->handshakes,
                  "Connections with and without 0-RTT in the time-to-first-byte test (default 20)")
        ->check(CLI::Range(1, 10000));
    s->add_option("--policy", o->policy_file,
                  "Policy for our carriers, both sides (default: [[quic, udp]] with a generated "
                  "test CA)")
        ->check(CLI::ExistingFile);
    // The receiving side, run by the benchmark itself in a child process.
    s->add_flag("--serve", o->serve)->group("");
    s->callback([&g, &run, o] {
        run = [&g, o] { return o->serve ? run_serve(g, *o) : run_bench(g, *o); };
    });
}

} // namespace post_tool
