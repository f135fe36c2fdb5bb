// `post bench racing`: how long establishment takes when IPv6 is broken silently (its SYNs are
// dropped, nothing answers), against curl's happy eyeballs on the same path, and how much the
// association's remembered winner saves on the next connect. See docs/benchmarks.md.
//
// The path is built inside the process: before any thread exists, it moves itself into new
// network and mount namespaces (unshare() changes the calling thread only; threads created
// later inherit its namespaces, and so do children such as curl). There it creates `racing0`
// with 10.99.0.1 and fd99::1, bind-mounts a hosts file in which dual.test has both, and drops
// TCP to [fd99::1]:PORT with nft. Nothing is named on the host: when the process ends, however
// it ends, the namespaces go and take the interface, the rule and the mount with them.
//
// The server is a plain Asio acceptor that accepts and closes. The kernel completes the TCP
// handshake before accept() is called, so what the server runs cannot change a connect time;
// a bare acceptor answers post and curl alike, with nothing per connection that could compete
// with the client for the CPU (a post listener would start a framer for every curl request and
// log the HTTP bytes it cannot parse).
#include "bench_support.hpp"
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

namespace post_tool {
namespace {

using namespace bench;
using boost::asio::ip::tcp;

constexpr const char* name_prefix = "post bench racing";
constexpr double first_over_curl_max = 1.05;
constexpr double repeat_median_max_ms = 10;

struct racing_options {
    bool json = false;
    int runs = 10;
    int attempt_delay_ms = 250;
};

// ---- the path ---------------------------------------------------------------------------------

void run_command(const std::string& command) {
    const std::string quiet = command + " >/dev/null 2>&1";
    const int rc = std::system(quiet.c_str());
    if (rc != 0)
        throw std::runtime_error(
            fmt::format("'{}' failed (exit {})", command, WIFEXITED(rc) ? WEXITSTATUS(rc) : rc));
}

bool have_program(const char* name) {
    for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
        if (::access((std::string(dir) + name).c_str(), X_OK) == 0) return true;
    return false;
}

/// Empty when the benchmark can run here, else why not.
std::string unavailable() {
    if (::geteuid() != 0) return "needs root (network namespaces)";
    const std::pair<const char*, const char*> tools[] = {
        {"ip", "iproute2"}, {"nft", "nftables"}, {"curl", "curl"}};
    for (const auto& [program, package] : tools)
        if (!have_program(program)) return fmt::format("needs '{}' (package {})", program, package);
    return {};
}

/// unshare() would leave other threads in the old namespaces: refuse instead of measuring a
/// path that half the process does not see.
void require_single_thread() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("Threads:", 0) == 0 && std::stoi(line.substr(8)) != 1)
            throw std::runtime_error("threads exist already; the namespaces must come first");
}

void throw_errno(const std::string& what) {
    throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

void enter_namespaces() {
    require_single_thread();
    if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) throw_errno("unshare(CLONE_NEWNET|NEWNS)");
    // Our mounts must not propagate back to the host's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        throw_errno("making / private");
    run_command("ip link set lo up");
    // A dummy interface where the kernel has the driver; else one end of a veth pair whose other
    // end stays here (some kernels are built without dummy and cannot load modules).
    if (std::system("ip link add racing0 type dummy >/dev/null 2>&1") != 0) {
        run_command("ip link add racing0 type veth peer name racing0-peer");
        run_command("ip link set racing0-peer up");
    }
    run_command("ip addr add 10.99.0.1/24 dev racing0");
    run_command("ip -6 addr add fd99::1/64 dev racing0 nodad");
    run_command("ip link set racing0 up");
}

/// dual.test -> fd99::1 and 10.99.0.1 for everything in this mount namespace (post and curl).
void bind_hosts_file() {
    char path[] = "/tmp/post-bench-racing-hosts.XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) throw_errno("creating a hosts file");
    const std::string_view hosts = "127.0.0.1 localhost\n::1 localhost\n"
                                   "fd99::1 dual.test\n10.99.0.1 dual.test\n";
    const bool written = ::write(fd, hosts.data(), hosts.size()) == ssize_t(hosts.size());
    ::close(fd);
    // The mount holds the file; its name is not needed once mounted.
    const bool mounted = written && ::mount(path, "/etc/hosts", nullptr, MS_BIND, nullptr) == 0;
    const int e = errno;
    ::unlink(path);
    errno = e;
    if (!mounted) throw_errno("bind-mounting a hosts file over /etc/hosts");
}

void drop_v6(std::uint16_t port) {
    run_command("nft add table inet post_bench");
    run_command("nft add chain inet post_bench output "
                "'{ type filter hook output priority 0; policy accept; }'");
    run_command(fmt::format(
        "nft add rule inet post_bench output ip6 daddr fd99::1 tcp dport {} drop", port));
}

// ---- the server -------------------------------------------------------------------------------

/// Accepts and closes, on its own thread, until destroyed.
class closing_acceptor {
public:
    closing_acceptor()
        : acceptor_(thread_.io) {
        acceptor_.open(tcp::v6());
        acceptor_.set_option(boost::asio::ip::v6_only(false)); // dual-stack: v4 arrives too
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind({boost::asio::ip::address_v6::any(), 0});
        acceptor_.listen(4096);
        port_ = acceptor_.local_endpoint().port();
        accept();
        thread_.start();
    }
    ~closing_acceptor() {
        // Once the thread has stopped, the acceptor is ours to close.
        thread_.stop();
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }
    std::uint16_t port() const noexcept { return port_; }

private:
    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket) {
            if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
            accept(); // the socket closes as it goes out of scope
        });
    }
    io_thread thread_;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
};

// ---- the contenders ---------------------------------------------------------------------------

/// Milliseconds from initiate to ready, driving `io` on this thread. Throws with the carrier's
/// reason when it fails, or after 10 s.
double post_connect(boost::asio::io_context& io, post::context& ctx, const post::remote& remote,
                    const post::policy& policy) {
    // Shared with the handlers: one may still run after we return (an aborted carrier's, while
    // a later measure drives the same io_context).
    struct outcome {
        std::optional<double> ms;
        std::string failure;
        bool done = false;
    };
    auto out = std::make_shared<outcome>();
    auto deadline = std::make_shared<boost::asio::steady_timer>(io);
    const auto start = clock_type::now();
    post::carrier c = post::initiate(ctx, remote, policy);
    std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
    c.async_wait_ready([out, deadline, weak, start, &io](boost::system::error_code ec) {
        if (out->done) return;
        out->done = true;
        if (ec)
            out->failure = error_reason(ec, post::carrier(weak.lock()));
        else
            out->ms = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
        deadline->cancel();
        io.stop();
    });
    deadline->expires_after(10s);
    deadline->async_wait([out, &io](boost::system::error_code ec) {
        if (ec || out->done) return;
        out->done = true;
        out->failure = "not ready within 10 s";
        io.stop();
    });
    io.restart();
    io.run();
    // Let the losers and the winner close before the next measure, off the clock.
    c.abort();
    io.restart();
    io.poll();
    if (!out->ms) throw std::runtime_error("post: " + out->failure);
    return *out->ms;
}

struct curl_sample {
    double connect_ms = 0; ///< curl's own %{time_connect}: start to TCP connected.
    double wall_ms = 0;    ///< The whole process, as a user waits for it.
};

curl_sample curl_connect(std::uint16_t port, int attempt_delay_ms) {
    // --noproxy: an http_proxy in the environment would send curl elsewhere. The server closes
    // without answering, so curl fails after connecting (52 empty reply, or 56 when the close
    // resets its request): the connect time is measured all the same, and 0 when it never
    // connected.
    const auto command =
        fmt::format("curl -s -o /dev/null --noproxy '*' --max-time 5 --happy-eyeballs-timeout-ms "
                    "{} -w '%{{time_connect}}' http://dual.test:{}/ 2>/dev/null",
                    attempt_delay_ms, port);
    const auto start = clock_type::now();
    std::FILE* p = ::popen(command.c_str(), "r");
    if (!p) throw_errno("starting curl");
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p))
        out += buf;
    const int rc = ::pclose(p);
    curl_sample s;
    s.wall_ms = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
    const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    try {
        s.connect_ms = std::stod(out) * 1000;
    } catch (const std::exception&) {
        s.connect_ms = 0;
    }
    if (!(s.connect_ms > 0))
        throw std::runtime_error(
            fmt::format("curl did not connect (exit {}, time_connect '{}')", code, out));
    return s;
}

// ---- statistics and output --------------------------------------------------------------------

struct summary {
    double median = NAN, p90 = NAN;
    std::vector<double> samples;
};

/// Linear interpolation between the closest ranks, so that a median of an even count is the
/// mean of the middle two.
double quantile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const double pos = q * double(v.size() - 1);
    const auto lo = static_cast<std::size_t>(pos);
    const auto hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

summary summarise(std::vector<double> samples) {
    summary s;
    s.median = quantile(samples, 0.5);
    s.p90 = quantile(samples, 0.9);
    s.samples = std::move(samples);
    return s;
}

nlohmann::json to_json(const summary& s) {
    return {{"median", s.median}, {"p90", s.p90}, {"samples", s.samples}};
}

int run_racing(const global_options& g, const racing_options& o) {
    if (auto why = unavailable(); !why.empty()) {
        err_line(fmt::format("{}: {}", name_prefix, why));
        return 1;
    }
    try {
        enter_namespaces();
        bind_hosts_file();
    } catch (const std::exception& e) {
        err_line(fmt::format("{}: setting up the namespace: {}", name_prefix, e.what()));
        return 1;
    }

    closing_acceptor server;
    const std::uint16_t port = server.port();
    drop_v6(port);

    post::policy policy = post::policy::defaults();
    policy.name = "bench racing";
    policy.stacks = {{{"framer", "tcp"}, {"<post bench racing>", 0, 0}}};
    policy.racing.attempt_delay = std::chrono::milliseconds(o.attempt_delay_ms);
    const auto remote = post::remote::from_url(fmt::format("tcp://dual.test:{}", port));

    // Fresh contexts must know nothing: no association file, whatever --associations says.
    auto options = context_options_for(g);
    options.association_file.reset();

    if (!o.json)
        err_line(fmt::format("{}: {} runs; dual.test is fd99::1 (TCP dropped silently) and "
                             "10.99.0.1; attempt delay {} ms; server: Asio acceptor on port {}",
                             name_prefix, o.runs, o.attempt_delay_ms, port));

    boost::asio::io_context io{1};
    std::vector<double> first, repeat, curl_connect_ms, curl_wall;
    for (int i = 0; i < o.runs; ++i) {
        {
            post::context ctx(io, options);
            print_context_warnings(ctx);
            first.push_back(post_connect(io, ctx, remote, policy));
            repeat.push_back(post_connect(io, ctx, remote, policy));
        }
        io.restart();
        io.poll();
        const auto c = curl_connect(port, o.attempt_delay_ms);
        curl_connect_ms.push_back(c.connect_ms);
        curl_wall.push_back(c.wall_ms);
    }

    const auto s_first = summarise(first), s_repeat = summarise(repeat),
               s_curl = summarise(curl_connect_ms), s_wall = summarise(curl_wall);
    const double ratio = s_first.median / s_curl.median;
    const bool ratio_met = ratio <= first_over_curl_max;
    const bool repeat_met = s_repeat.median < repeat_median_max_ms;

    if (o.json) {
        nlohmann::json j{
            {"bench", "racing"},
            {"runs", o.runs},
            {"attempt_delay_ms", o.attempt_delay_ms},
            {"port", port},
            {"server", "asio acceptor (accepts and closes)"},
            {"stack", {"framer", "tcp"}},
            {"post_first_ms", to_json(s_first)},
            {"post_repeat_ms", to_json(s_repeat)},
            {"curl_connect_ms", to_json(s_curl)},
            {"curl_wall_ms", to_json(s_wall)},
            {"first_over_curl", ratio},
            {"targets",
             {{"first_over_curl_max", first_over_curl_max},
              {"repeat_median_ms_max", repeat_median_max_ms}}},
            {"verdicts",
             {{"first_over_curl", verdict(ratio_met)}, {"repeat", verdict(repeat_met)}}}};
        out_line(to_line(j));
        return 0;
    }
    out_line(fmt::format("{:<28}{:>10}{:>10}   {}", "metric (ms)", "median", "p90", "target"));
    out_line(
        fmt::format("{:<28}{:>10.2f}{:>10.2f}", "post first connect", s_first.median, s_first.p90));
    out_line(fmt::format("{:<28}{:>10.2f}{:>10.2f}   median < {:.0f} ms {}", "post repeat connect",
                         s_repeat.median, s_repeat.p90, repeat_median_max_ms, verdict(repeat_met)));
    out_line(
        fmt::format("{:<28}{:>10.2f}{:>10.2f}", "curl time_connect", s_curl.median, s_curl.p90));
    out_line(fmt::format("{:<28}{:>10.2f}{:>10.2f}", "curl wall time", s_wall.median, s_wall.p90));
    out_line(fmt::format("{:<28}{:>10.3f}{:>10}   <= {:.2f} {}", "post first / curl (median)",
                         ratio, "", first_over_curl_max, verdict(ratio_met)));
    return 0;
}

} // namespace

void add_bench_racing(CLI::App& bench, const global_options& g, runner& run) {
    auto o = std::make_shared<racing_options>();
    auto* r = bench.add_subcommand(
        "racing", "Happy eyeballs with IPv6 silently dropped, in a network namespace: post's "
                  "first and repeat connect against curl (needs root)");
    r->fallthrough();
    r->add_flag("--json", o->json, "Print one JSON object");
    r->add_option("--runs", o->runs, "Connects of each kind (default 10)")
        ->check(CLI::Range(1, 1000));
    r->add_option("--attempt-delay", o->attempt_delay_ms,
                  "Attempt delay in ms, for post's policy and curl's "
                  "--happy-eyeballs-timeout-ms (default 250)")
        ->check(CLI::Range(1, 10000));
    r->callback([&g, &run, o] { run = [&g, o] { return run_racing(g, *o); }; });
}

} // namespace post_tool
