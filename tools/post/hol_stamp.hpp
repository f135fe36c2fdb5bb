// What `post bench hol` and `post bench sctp` write at the start of every head-of-line message,
// so that the receiver can attribute and time it: kind, phase, sequence number and the
// sender's steady_clock time at send(). Host byte order: both ends run on this host, and
// steady_clock (CLOCK_MONOTONIC) is one clock for every process on it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace post_tool::bench {

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

enum class kind : std::uint8_t { urgent = 1, bulk = 2 };

struct stamp {
    kind what = kind::bulk;
    std::uint32_t phase = 0;
    std::uint64_t seq = 0;
    std::int64_t sent_ns = 0;
    static constexpr std::size_t size = 1 + 4 + 8 + 8;

    void write(std::byte* p) const {
        std::memcpy(p, &what, 1);
        std::memcpy(p + 1, &phase, 4);
        std::memcpy(p + 5, &seq, 8);
        std::memcpy(p + 13, &sent_ns, 8);
    }
    /// Nothing for a payload too short or of another kind (a throughput payload).
    static std::optional<stamp> read(std::span<const std::byte> payload) {
        if (payload.size() < size) return std::nullopt;
        stamp s;
        std::memcpy(&s.what, payload.data(), 1);
        if (s.what != kind::urgent && s.what != kind::bulk) return std::nullopt;
        std::memcpy(&s.phase, payload.data() + 1, 4);
        std::memcpy(&s.seq, payload.data() + 5, 8);
        std::memcpy(&s.sent_ns, payload.data() + 13, 8);
        return s;
    }
};

} // namespace post_tool::bench
