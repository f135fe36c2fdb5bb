#include "hol_link.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace post_tool {

void bench_thread::start(bool own_netns) {
    std::promise<long> started;
    auto fut = started.get_future();
    thread_ = std::thread([this, own_netns, &started] {
        if (own_netns && ::unshare(CLONE_NEWNET) != 0) {
            const int e = errno;
            started.set_exception(std::make_exception_ptr(std::runtime_error(
                fmt::format("cannot create a network namespace: {}", std::strerror(e)))));
            return;
        }
        started.set_value(static_cast<long>(::syscall(SYS_gettid)));
        io_.run();
    });
    try {
        tid_ = fut.get();
    } catch (...) {
        thread_.join();
        throw;
    }
}

void bench_thread::stop() {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
}

namespace {

/// Runs a shell command; a child inherits the network namespace of the thread that starts it,
/// which is how each side configures its own end of the link.
void run_command(const std::string& command) {
    const int rc = std::system((command + " 2>&1").c_str());
    if (rc != 0)
        throw std::runtime_error(
            fmt::format("'{}' failed (exit {})", command, WIFEXITED(rc) ? WEXITSTATUS(rc) : rc));
}

bool have_program(const char* name) {
    for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
        if (::access((std::string(dir) + name).c_str(), X_OK) == 0) return true;
    return false;
}

} // namespace

std::string netns_unavailable() {
    if (::geteuid() != 0) return "needs root";
    for (const char* p : {"ip", "tc"})
        if (!have_program(p)) return fmt::format("needs '{}' (package iproute2)", p);
    return {};
}

void set_up_link(bench_thread& sender, bench_thread& receiver, const netns_link& link) {
    // Interface names are per namespace, but the pair is created from ours: the pid keeps two
    // concurrent runs apart.
    const auto tx = fmt::format("holtx{}", ::getpid());
    const auto rx = fmt::format("holrx{}", ::getpid());
    run_command(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", tx,
                            sender.tid(), rx, receiver.tid()));
    sender.call([&] {
        run_command(
            fmt::format("ip link set lo up && ip addr add {}/24 dev {} && ip link set {} up",
                        link.sender_address, tx, tx));
        // burst: a few 1500-byte packets; latency bounds the qdisc's queue (about 300 KB at
        // 50 Mbit/s), as a modest bottleneck buffer would.
        run_command(fmt::format("tc qdisc add dev {} root tbf rate {} burst 32kbit latency 50ms",
                                tx, link.rate));
    });
    receiver.call([&] {
        run_command(
            fmt::format("ip link set lo up && ip addr add {}/24 dev {} && ip link set {} up",
                        link.receiver_address, rx, rx));
    });
}

} // namespace post_tool
