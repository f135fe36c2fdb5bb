// What `post bench tcp` and `post bench tls` share: timing, the phase machinery (a phase runs
// on the client thread and hands its result back through a promise, with a deadline), and the
// baseline's 4-byte length-prefixed framing.
#pragma once

#include <utility>

#include <post.hpp>

#include <fmt/core.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace post_tool::bench {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// The workload both benchmarks run (docs/benchmarks.md#method): 64 KiB bulk messages with at
// most `bulk_window` handed over and not yet sent, 64-byte pings, and a 1-byte end marker that
// the server acknowledges.
constexpr std::size_t bulk_size = 64 * 1024;
constexpr std::size_t ping_size = 64;
constexpr std::size_t end_marker_size = 1;
constexpr int bulk_window = 8; ///< Messages handed to the carrier and not yet reported sent.
constexpr int warmup_round_trips = 200;

/// A UDP port on 127.0.0.1 free right now (the kernel's choice; it could be taken again before
/// use, which shows as a clear failure of the run). Throws std::runtime_error naming `who`.
std::uint16_t free_udp_port(const char* who);

inline double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

struct latency {
    double p50_us = NAN, p99_us = NAN;
};

/// The median of the values that are numbers (NaN: a run that produced none); NaN if none are.
inline double median(std::vector<double> v) {
    std::erase_if(v, [](double x) { return std::isnan(x); });
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

inline latency percentiles(std::vector<double> us) {
    if (us.empty()) return {};
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
        return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))];
    };
    return {at(0.50), at(0.99)};
}

/// Wait for a phase, with a deadline so that a stuck stack cannot hang the benchmark.
template <class T>
T wait_phase(std::future<T>& f, std::chrono::duration<double> budget, const char* name) {
    if (f.wait_for(budget + 15s) != std::future_status::ready)
        throw std::runtime_error(
            fmt::format("{}: no result within {:.0f} s", name, (budget + 15s).count()));
    return f.get();
}

/// Fulfil a promise once; later outcomes of the same phase are ignored.
template <class T> struct once_promise {
    std::promise<T> p;
    bool done = false;
    void set(T v) {
        if (done) return;
        done = true;
        p.set_value(std::move(v));
    }
    void fail(const std::string& why) {
        if (done) return;
        done = true;
        p.set_exception(std::make_exception_ptr(std::runtime_error(why)));
    }
};

/// Incoming bytes parsed into 4-byte big-endian length-prefixed frames, in place.
class frame_reader {
public:
    boost::asio::mutable_buffer prepare() {
        if (begin_ == end_) begin_ = end_ = 0;
        if (buf_.size() - end_ < 16 * 1024 && begin_ > 0) {
            std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
        return boost::asio::buffer(buf_.data() + end_, buf_.size() - end_);
    }
    void commit(std::size_t n) { end_ += n; }

    /// The next whole frame's payload, valid until the next prepare().
    bool next(std::span<const std::uint8_t>& payload) {
        if (end_ - begin_ < 4) return false;
        const std::uint8_t* p = buf_.data() + begin_;
        std::size_t len = (std::size_t(p[0]) << 24) | (std::size_t(p[1]) << 16) |
                          (std::size_t(p[2]) << 8) | std::size_t(p[3]);
        if (len + 4 > buf_.size()) buf_.resize(len + 4 + buf_.size());
        if (end_ - begin_ < len + 4) return false;
        payload = {buf_.data() + begin_ + 4, len};
        begin_ += len + 4;
        return true;
    }

private:
    std::vector<std::uint8_t> buf_ = std::vector<std::uint8_t>(256 * 1024);
    std::size_t begin_ = 0, end_ = 0;
};

inline void put_header(std::uint8_t* h, std::size_t len) {
    h[0] = std::uint8_t(len >> 24);
    h[1] = std::uint8_t(len >> 16);
    h[2] = std::uint8_t(len >> 8);
    h[3] = std::uint8_t(len);
}

inline std::vector<std::uint8_t> make_frame(std::size_t len, std::uint8_t fill) {
    std::vector<std::uint8_t> f(len + 4, fill);
    put_header(f.data(), len);
    return f;
}

struct pair_result {
    double post = NAN, asio = NAN;
    double ratio() const { return post / asio; }
};

/// An io_context run by its own thread until stop().
struct io_thread {
    boost::asio::io_context io{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
        boost::asio::make_work_guard(io);
    std::thread thread;
    void start() {
        thread = std::thread([this] { io.run(); });
    }
    void stop() {
        work.reset();
        io.stop();
        if (thread.joinable()) thread.join();
    }
    ~io_thread() { stop(); }
    /// CPU time this thread has used so far, in seconds (NaN before start or when the clock
    /// cannot be read). Read from another thread, so a phase can be charged to each side.
    double cpu_seconds() {
        clockid_t id;
        timespec ts{};
        if (!thread.joinable() || pthread_getcpuclockid(thread.native_handle(), &id) != 0 ||
            clock_gettime(id, &ts) != 0)
            return NAN;
        return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
    }
};

template <class T, class F>
T run_phase(boost::asio::io_context& io, std::chrono::duration<double> budget, const char* name,
            F start) {
    auto promise = std::make_shared<once_promise<T>>();
    auto future = promise->p.get_future();
    boost::asio::post(io, [start, promise]() mutable { start(promise); });
    return wait_phase(future, budget, name);
}

inline std::string verdict(bool ok) {
    return ok ? "ok" : "MISSED";
}

/// Why a carrier failed: its last error when it has one, else the completion's code.
std::string error_reason(boost::system::error_code ec, const post::carrier& c);

/// Our side of the workload both benchmarks share, over a fresh carrier per phase.
struct post_workload {
    post::context& ctx;
    post::remote remote;
    post::policy policy;

    // (a) bulk: 64 KiB messages for `duration`, then an end marker; the acknowledgement stops the
    // clock, so every byte counted has arrived. The clock starts once the carrier is ready.
    void throughput(std::chrono::duration<double> duration,
                    std::shared_ptr<once_promise<double>> result);
    // (b) ping-pong of 64-byte messages.
    void round_trips(int count, std::shared_ptr<once_promise<latency>> result);
};

} // namespace post_tool::bench
