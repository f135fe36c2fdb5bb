// The two sides of `post bench hol`, each an io_context on its own thread, optionally joined by
// a rate-limited link between two network namespaces.
//
// Why threads and unshare() instead of `ip netns add`: a network namespace created by a thread
// lives only while something uses it (the thread, its sockets). When the process ends, however
// it ends (an exception, a signal, SIGKILL), the namespaces and the veth pair between them go
// with it: nothing named is left behind to clean up.
#pragma once

#include <utility>
// <utility> before Asio (g++ 12 with Boost 1.74).
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

namespace post_tool {

/// An io_context run by its own thread; with `own_netns`, the thread first moves into a new,
/// empty network namespace, so every socket its handlers open lives there.
class bench_thread {
public:
    bench_thread() = default;
    bench_thread(const bench_thread&) = delete;
    bench_thread& operator=(const bench_thread&) = delete;
    ~bench_thread() { stop(); }

    /// Starts the thread. Throws std::runtime_error when the namespace cannot be created.
    void start(bool own_netns);
    void stop();

    boost::asio::io_context& io() noexcept { return io_; }
    /// The thread's kernel task id (names its namespace for `ip link ... netns TID`).
    long tid() const noexcept { return tid_; }

    /// Runs `f` on the thread and returns its result; its exception is rethrown here. Throws
    /// std::runtime_error when `f` has not finished within `budget`.
    template <class F>
    auto call(F f, std::chrono::seconds budget = std::chrono::seconds(20)) -> decltype(f()) {
        using R = decltype(f());
        auto p = std::make_shared<std::promise<R>>();
        auto fut = p->get_future();
        boost::asio::post(io_, [p, f = std::move(f)]() mutable {
            try {
                if constexpr (std::is_void_v<R>) {
                    f();
                    p->set_value();
                } else {
                    p->set_value(f());
                }
            } catch (...) {
                p->set_exception(std::current_exception());
            }
        });
        if (fut.wait_for(budget) != std::future_status::ready)
            throw std::runtime_error("the benchmark thread did not answer in time");
        return fut.get();
    }

private:
    boost::asio::io_context io_{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
        boost::asio::make_work_guard(io_);
    std::thread thread_;
    long tid_ = 0;
};

/// The link of `--netns`: sender and receiver threads each in their own namespace, joined by a
/// veth pair; the sender's end shapes its egress with tbf.
struct netns_link {
    std::string sender_address = "10.233.77.1";
    std::string receiver_address = "10.233.77.2";
    std::string rate = "50mbit";
};

/// Whether this process may create network namespaces (root), and `ip`/`tc` exist. Returns an
/// empty string when it can, else why not.
std::string netns_unavailable();

/// Creates the veth pair between the namespaces of `sender` and `receiver` (both started with
/// own_netns) and configures addresses, routes and the tbf qdisc. Throws std::runtime_error
/// naming the command that failed.
void set_up_link(bench_thread& sender, bench_thread& receiver, const netns_link& link);

} // namespace post_tool
