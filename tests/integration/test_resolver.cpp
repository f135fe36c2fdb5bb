// The RFC 8305 §3 resolver against a DNS server that can be slow, fail or stay silent per record
// type (tests/netns/dns_server.py), so the resolution delay and the order of hand-overs can be
// checked with real getaddrinfo_a lookups.
//
// The process moves into its own network and mount namespaces (root only) before any thread
// exists: there lo carries the test DNS server on 127.0.0.1:53, and a private resolv.conf, hosts
// file and nsswitch.conf are bind-mounted over the real ones, visible to this process only.
// Without root or python3 every case is skipped with the reason.
#define BOOST_TEST_MODULE happy resolver
#include <utility>

#include "resolver.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace utf = boost::unit_test;
using post::detail::family_answer;
using post::detail::happy_resolver;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

// Documentation addresses (RFC 5737, RFC 3849): never reached, only handed over.
const char* const zone_json = R"({
  "dual.test": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
  "slow-aaaa.test": {"A": ["192.0.2.2"], "AAAA": ["2001:db8::2"],
                     "behaviour": {"AAAA": {"delay-ms": 400}}},
  "slow-a.test": {"A": ["192.0.2.3"], "AAAA": ["2001:db8::3"],
                  "behaviour": {"A": {"delay-ms": 300}}},
  "servfail-aaaa.test": {"A": ["192.0.2.4"], "AAAA": ["2001:db8::4"],
                         "behaviour": {"AAAA": {"servfail": true}}},
  "drop-aaaa.test": {"A": ["192.0.2.5"], "AAAA": ["2001:db8::5"],
                     "behaviour": {"AAAA": {"drop": true}}},
  "slow-both.test": {"A": ["192.0.2.6"], "AAAA": ["2001:db8::6"],
                     "behaviour": {"A": {"delay-ms": 300}, "AAAA": {"delay-ms": 300}}},
  "slower-both.test": {"A": ["192.0.2.7"], "AAAA": ["2001:db8::7"],
                       "behaviour": {"A": {"delay-ms": 600}, "AAAA": {"delay-ms": 600}}},
  "v4only.test": {"A": ["192.0.2.8"]},
  "dup.test": {"A": ["192.0.2.9", "192.0.2.9", "192.0.2.10"],
               "AAAA": ["2001:db8::9", "2001:db8::9"]}
})";

/// The namespaces, the bind mounts and the DNS server child, for the whole test module.
struct dns_environment {
    std::string problem = "not tried"; ///< Why the cases are skipped; empty once ready.
    pid_t server = -1;
    int server_stdout = -1;
    std::filesystem::path dir;
    std::vector<std::string> mounted;

    void set_up();
    void tear_down();
    bool fail(std::string why) {
        problem = std::move(why);
        return false;
    }
    bool bring_lo_up();
    bool bind_file(const std::string& name, const std::string& content, const char* target);
    bool start_server();
};

dns_environment env;

bool on_path(const char* program) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "");
    for (std::string d; std::getline(dirs, d, ':');)
        if (!d.empty() && ::access((d + "/" + program).c_str(), X_OK) == 0) return true;
    return false;
}

void dns_environment::set_up() {
    if (geteuid() != 0) {
        fail("needs root (private network and mount namespaces with a test DNS server)");
        return;
    }
    if (!on_path("python3")) {
        fail("python3 not found on PATH (it runs tests/netns/dns_server.py)");
        return;
    }
    // Unsharing the mount namespace needs a single-threaded process: this runs first.
    if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
        fail(std::string("unshare(CLONE_NEWNET|CLONE_NEWNS) failed: ") + std::strerror(errno));
        return;
    }
    // Private propagation, so the bind mounts below never leak to the host's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        fail(std::string("mount --make-rprivate / failed: ") + std::strerror(errno));
        return;
    }
    if (!bring_lo_up()) return;
    char templ[] = "/tmp/post-resolver-XXXXXX";
    if (!::mkdtemp(templ)) {
        fail(std::string("mkdtemp failed: ") + std::strerror(errno));
        return;
    }
    dir = templ;
    if (!bind_file("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
                   "/etc/resolv.conf") ||
        !bind_file("hosts",
                   "127.0.0.1 localhost\n::1 localhost\n"
                   "127.0.0.1 hosts-dual.test\n::1 hosts-dual.test\n",
                   "/etc/hosts") ||
        // The host's nsswitch.conf could send names elsewhere (mdns, resolved): pin it.
        !bind_file("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n",
                   "/etc/nsswitch.conf") ||
        !start_server())
        return;
    problem.clear();
}

bool dns_environment::bring_lo_up() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    up = up && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    if (fd >= 0) ::close(fd);
    return up || fail("cannot bring lo up in the new network namespace");
}

bool dns_environment::bind_file(const std::string& name, const std::string& content,
                                const char* target) {
    const auto file = dir / name;
    std::ofstream(file) << content;
    if (::mount(file.c_str(), target, nullptr, MS_BIND, nullptr) != 0)
        return fail(std::string("bind-mounting ") + file.string() + " over " + target +
                    " failed: " + std::strerror(errno));
    mounted.emplace_back(target);
    return true;
}

bool dns_environment::start_server() {
    const std::string script = std::string(POST_SOURCE_DIR) + "/tests/netns/dns_server.py";
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return fail("pipe failed");
    server = ::fork();
    if (server < 0) return fail(std::string("fork failed: ") + std::strerror(errno));
    if (server == 0) {
        // Dies with the test process even if that one crashes before tear-down.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::dup2(out[1], STDOUT_FILENO);
        ::execlp("python3", "python3", script.c_str(), "--address", "127.0.0.1", "--port", "53",
                 "--zone-json", zone_json, static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    server_stdout = out[0];
    // Wait for its "ready" line: the server is bound once it prints it.
    std::string line;
    const auto deadline = steady_clock::now() + 15s;
    while (line.find('\n') == std::string::npos) {
        const auto left =
            std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
        pollfd p{server_stdout, POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0)
            return fail("dns_server.py printed no \"ready\" within 15 s");
        char c[64];
        const auto n = ::read(server_stdout, c, sizeof c);
        if (n <= 0) return fail("dns_server.py exited before \"ready\" (see its stderr above)");
        line.append(c, static_cast<std::size_t>(n));
    }
    if (line.rfind("ready\n", 0) != 0) return fail("dns_server.py said " + line);
    return true;
}

void dns_environment::tear_down() {
    if (server > 0) {
        ::kill(server, SIGKILL);
        ::waitpid(server, nullptr, 0);
    }
    if (server_stdout >= 0) ::close(server_stdout);
    for (const auto& m : mounted)
        ::umount2(m.c_str(), MNT_DETACH);
    if (!dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
}

struct environment_fixture {
    environment_fixture() { env.set_up(); }
    ~environment_fixture() { env.tear_down(); }
};
BOOST_TEST_GLOBAL_FIXTURE(environment_fixture);

struct dns_ready {
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        boost::test_tools::assertion_result r(env.problem.empty());
        r.message() << "skipped: " << env.problem;
        return r;
    }
};

asio::ip::address addr(const char* text) {
    return asio::ip::make_address(text);
}

/// Runs one resolver and records every handler call with its time since start().
struct recorder {
    struct hand_over {
        std::vector<asio::ip::address> addresses;
        bool ipv6 = false; ///< The family answer that released them.
        milliseconds at{};
    };
    asio::io_context& io;
    std::shared_ptr<happy_resolver> resolver = std::make_shared<happy_resolver>(io.get_executor());
    steady_clock::time_point t0;
    std::vector<hand_over> calls;
    std::vector<family_answer> answers;
    std::vector<std::string> failures;

    explicit recorder(asio::io_context& ctx)
        : io(ctx) {}

    milliseconds now() const {
        return std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0);
    }
    void start(const std::string& host, milliseconds delay) {
        t0 = steady_clock::now();
        resolver->start(
            host, delay,
            [this](std::vector<asio::ip::address> a, const family_answer& why) {
                calls.push_back({std::move(a), why.ipv6, now()});
            },
            [this](const std::string& why) { failures.push_back(why); },
            [this](const family_answer& a) { answers.push_back(a); });
    }
    std::vector<asio::ip::address> all_addresses() const {
        std::vector<asio::ip::address> out;
        for (const auto& c : calls)
            out.insert(out.end(), c.addresses.begin(), c.addresses.end());
        return out;
    }
    const family_answer* answer(bool ipv6) const {
        for (const auto& a : answers)
            if (a.ipv6 == ipv6) return &a;
        return nullptr;
    }
};

/// Runs the context until `done` holds; fails (instead of hanging) after `watchdog`.
void run_until(asio::io_context& io, const std::function<bool()>& done,
               milliseconds watchdog = 5000ms) {
    const auto deadline = steady_clock::now() + watchdog;
    while (!done() && steady_clock::now() < deadline) {
        if (io.stopped()) io.restart();
        io.run_one_for(20ms);
    }
    BOOST_REQUIRE_MESSAGE(done(), "watchdog: the expected handlers did not run in time");
}

/// Runs the context for `span`, even if it runs out of work earlier.
void run_for(asio::io_context& io, milliseconds span) {
    bool over = false;
    asio::steady_timer t(io, span);
    t.async_wait([&](const boost::system::error_code&) { over = true; });
    while (!over) {
        if (io.stopped()) io.restart();
        io.run_one();
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(bad_use_is_refused) {
    asio::io_context io;
    happy_resolver unowned(io.get_executor());
    BOOST_CHECK_THROW(unowned.start(
                          "dual.test", 50ms, [](auto, const auto&) {}, [](const std::string&) {}),
                      std::logic_error);
    auto r = std::make_shared<happy_resolver>(io.get_executor());
    BOOST_CHECK_THROW(r->start("dual.test", 50ms, {}, [](const std::string&) {}),
                      std::invalid_argument);
    BOOST_CHECK_THROW(r->start(
                          "", 50ms, [](auto, const auto&) {}, [](const std::string&) {}),
                      std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(hosts_file_name_gives_both_families_v6_first,
                     *utf::precondition(dns_ready())) {
    asio::io_context io;
    recorder r(io);
    // A long delay: if the A answer comes first it must be released by the AAAA answer.
    r.start("hosts-dual.test", 2000ms);
    // run() itself, without a watchdog loop: the resolver keeps the context busy while its
    // lookups run and lets it stop once they are done.
    io.run_for(5s);
    BOOST_TEST(r.now().count() < 1500);
    BOOST_TEST(r.failures.empty());
    BOOST_TEST(r.answers.size() == 2u);
    const std::vector<asio::ip::address> expected{addr("::1"), addr("127.0.0.1")};
    BOOST_TEST(r.all_addresses() == expected, boost::test_tools::per_element());
    BOOST_REQUIRE(!r.calls.empty());
    BOOST_TEST(r.calls.front().ipv6);
    BOOST_TEST(r.calls.back().at.count() < 1000);
}

BOOST_AUTO_TEST_CASE(slow_aaaa_releases_a_after_the_resolution_delay,
                     *utf::precondition(dns_ready())) {
    asio::io_context io;
    recorder r(io);
    r.start("slow-aaaa.test", 50ms); // AAAA answered after 400 ms
    run_until(io, [&] { return r.calls.size() >= 2; });
    BOOST_TEST_MESSAGE("A handed over at " << r.calls[0].at.count() << " ms, AAAA at "
                                           << r.calls[1].at.count() << " ms");
    BOOST_TEST(!r.calls[0].ipv6);
    BOOST_TEST(r.calls[0].addresses == std::vector{addr("192.0.2.2")},
               boost::test_tools::per_element());
    BOOST_TEST(r.calls[0].at.count() >= 50); // held for the delay...
    BOOST_TEST(r.calls[0].at.count() < 300); // ...not until the AAAA answer
    BOOST_TEST(r.calls[1].ipv6);
    BOOST_TEST(r.calls[1].addresses == std::vector{addr("2001:db8::2")},
               boost::test_tools::per_element());
    BOOST_TEST(r.calls[1].at.count() >= 350);
    BOOST_TEST(r.failures.empty());
    const auto* a = r.answer(false);
    BOOST_REQUIRE(a);
    BOOST_TEST(a->elapsed.count() / 1000 < r.calls[0].at.count()); // arrived, then held
}

BOOST_AUTO_TEST_CASE(aaaa_answer_is_handed_over_at_once, *utf::precondition(dns_ready())) {
    asio::io_context io;
    recorder r(io);
    r.start("slow-a.test", 50ms); // A answered after 300 ms
    run_until(io, [&] { return r.calls.size() >= 2; });
    BOOST_TEST_MESSAGE("AAAA handed over at " << r.calls[0].at.count() << " ms, A at "
                                              << r.calls[1].at.count() << " ms");
    BOOST_TEST(r.calls[0].ipv6);
    BOOST_TEST(r.calls[0].addresses == std::vector{addr("2001:db8::3")},
               boost::test_tools::per_element());
    BOOST_TEST(r.calls[0].at.count() < 150);
    BOOST_TEST(!r.calls[1].ipv6);
    BOOST_TEST(r.calls[1].addresses == std::vector{addr("192.0.2.3")},
               boost::test_tools::per_element());
    BOOST_TEST(r.calls[1].at.count() >= 250);
}

BOOST_AUTO_TEST_CASE(aaaa_failure_releases_a_without_the_delay, *utf::precondition(dns_ready())) {
    for (const char* name : {"servfail-aaaa.test", "v4only.test"}) {
        BOOST_TEST_CONTEXT(name) {
            asio::io_context io;
            recorder r(io);
            r.start(name, 2000ms); // a delay the A answer must not wait for
            run_until(io, [&] { return r.calls.size() >= 1 && r.answers.size() >= 2; });
            BOOST_TEST_MESSAGE(name << ": A handed over at " << r.calls[0].at.count() << " ms");
            BOOST_TEST(!r.calls[0].ipv6);
            BOOST_TEST(r.calls[0].at.count() < 1000);
            const auto* v6 = r.answer(true);
            BOOST_REQUIRE(v6);
            BOOST_TEST(!v6->error.empty());
            BOOST_TEST(v6->addresses.empty());
            BOOST_TEST(r.failures.empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(both_families_failing_calls_the_failure_handler_once,
                     *utf::precondition(dns_ready())) {
    asio::io_context io;
    recorder r(io);
    r.start("missing.test", 50ms); // NXDOMAIN for both
    run_until(io, [&] { return !r.failures.empty(); });
    io.run_for(300ms); // nothing more may come
    BOOST_TEST(r.failures.size() == 1u);
    const std::string nx = ::gai_strerror(EAI_NONAME);
    BOOST_TEST(r.failures.front() == "AAAA: " + nx + "; A: " + nx);
    BOOST_TEST(r.calls.empty());
    BOOST_TEST(r.answers.size() == 2u);
}

BOOST_AUTO_TEST_CASE(dropped_aaaa_releases_a_at_the_resolution_delay,
                     *utf::precondition(dns_ready())) {
    asio::io_context io;
    recorder r(io);
    r.start("drop-aaaa.test", 50ms); // AAAA never answered; resolv.conf timeout 1 s
    run_until(io, [&] { return !r.calls.empty(); });
    BOOST_TEST_MESSAGE("A handed over at " << r.calls[0].at.count() << " ms");
    BOOST_TEST(!r.calls[0].ipv6);
    BOOST_TEST(r.calls[0].at.count() >= 50);
    BOOST_TEST(r.calls[0].at.count() < 500);
    // The AAAA timeout is still reported, for traces, but is no failure: A gave an address.
    run_until(io, [&] { return r.answers.size() >= 2; });
    const auto* v6 = r.answer(true);
    BOOST_REQUIRE(v6);
    BOOST_TEST_MESSAGE("AAAA gave up after " << v6->elapsed.count() / 1000 << " ms: " << v6->error);
    BOOST_TEST(!v6->error.empty());
    BOOST_TEST(v6->elapsed.count() >= 900'000);
    BOOST_TEST(r.failures.empty());
    BOOST_TEST(r.calls.size() == 1u);
}

BOOST_AUTO_TEST_CASE(duplicates_are_removed, *utf::precondition(dns_ready())) {
    asio::io_context io;
    recorder r(io);
    r.start("dup.test", 50ms); // the server repeats records, and glibc passes them on
    run_until(io, [&] { return r.answers.size() >= 2 && r.all_addresses().size() >= 3; });
    io.run_for(200ms);
    const std::vector<asio::ip::address> expected{addr("2001:db8::9"), addr("192.0.2.9"),
                                                  addr("192.0.2.10")};
    BOOST_TEST(r.all_addresses() == expected, boost::test_tools::per_element());
    const auto* v4 = r.answer(false);
    BOOST_REQUIRE(v4);
    BOOST_TEST(v4->addresses.size() == 2u);
}

BOOST_AUTO_TEST_CASE(cancel_while_both_are_pending_runs_no_handler,
                     *utf::precondition(dns_ready())) {
    asio::io_context io;
    // Cancelled at once (the requests may not have reached a glibc thread yet) and after
    // 100 ms (both inside getaddrinfo, answers due at 300 ms).
    recorder now(io), later(io);
    now.start("slow-both.test", 50ms);
    now.resolver->cancel();
    later.start("slow-both.test", 50ms);
    asio::steady_timer t(io, 100ms);
    t.async_wait([&](const boost::system::error_code&) { later.resolver->cancel(); });
    const auto t0 = steady_clock::now();
    run_for(io, 700ms);
    for (const recorder* r : {&now, &later}) {
        BOOST_TEST(r->calls.empty());
        BOOST_TEST(r->answers.empty());
        BOOST_TEST(r->failures.empty());
    }
    // Cancelled lookups no longer count as work: run() returns as soon as nothing else is left.
    const auto t1 = steady_clock::now();
    io.restart();
    io.run_for(3s);
    BOOST_TEST((steady_clock::now() - t1 < 1s));
    BOOST_TEST((t1 - t0 >= 700ms));
}

BOOST_AUTO_TEST_CASE(resolver_destroyed_while_lookups_are_in_flight,
                     *utf::precondition(dns_ready())) {
    asio::io_context io;
    auto first = std::make_unique<recorder>(io);
    first->start("slow-both.test", 50ms); // answers due at 300 ms
    asio::steady_timer t(io, 50ms);
    t.async_wait([&](const boost::system::error_code&) { first->resolver.reset(); });
    // A second resolver whose answers come after the first one's: by then glibc has called
    // back for the destroyed one, which must have discarded its answers quietly.
    recorder second(io);
    second.start("slower-both.test", 50ms); // answers due at 600 ms
    run_until(io, [&] { return second.answers.size() >= 2 && second.all_addresses().size() >= 2; });
    BOOST_TEST(!first->resolver);
    BOOST_TEST(first->calls.empty());
    BOOST_TEST(first->answers.empty());
    BOOST_TEST(first->failures.empty());
    BOOST_TEST(second.failures.empty());
}

BOOST_AUTO_TEST_CASE(exit_with_a_lookup_still_running, *utf::precondition(dns_ready())) {
    // Left in glibc when the process ends: under LeakSanitizer, what the pending request holds
    // must still be reachable (and so not reported), and nothing may crash at exit.
    asio::io_context io;
    auto r = std::make_shared<happy_resolver>(io.get_executor());
    int calls = 0;
    // The AAAA query is never answered, and killing the server at exit does not end it early
    // (no packet is sent any more to draw an ICMP error): it is still in glibc at exit.
    r->start(
        "drop-aaaa.test", 50ms, [&](auto, const auto&) { ++calls; },
        [&](const std::string&) { ++calls; });
    io.run_for(20ms); // the A answer is in and held for the resolution delay
    r.reset();
    io.restart();
    io.run_for(200ms);
    BOOST_TEST(calls == 0); // the held A answer died with the resolver
}
