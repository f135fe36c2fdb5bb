// Which message the post-frame flow sends a chunk of next: strict niceness (0 first), then the
// oldest. A message keeps its place while it is in progress, so a more urgent one that arrives
// later overtakes it between two chunks. Sans-I/O: the flow asks, and does the sending.
#pragma once

#include "post_frame_codec.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

namespace post::plugins::framing::post_frame {

struct outgoing {
    std::uint64_t upper_id = 0; ///< the id the layer above gave it (send_meta::id)
    int niceness = 0;
    std::optional<clock::time_point> deadline;
    buffer data;
    std::size_t offset = 0;    ///< bytes already framed and handed down
    std::uint64_t wire_id = 0; ///< assigned with its FIRST chunk; 0 = not started
    bool idempotent = false;   ///< may travel as early data (before the lower flow is ready)

    bool started() const noexcept { return wire_id != 0; }
    bool expired(clock::time_point now) const noexcept { return deadline && *deadline <= now; }
};

class scheduler {
public:
    void push(outgoing m);
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    /// The most urgent message. Precondition: !empty().
    outgoing& front() noexcept { return levels_.begin()->second.front(); }
    /// Remove and return front().
    outgoing pop_front();
    /// Remove every message whose deadline is at or before `now`, in scheduling order.
    std::vector<outgoing> take_expired(clock::time_point now);
    std::optional<clock::time_point> earliest_deadline() const;
    /// Remove everything; returns the upper ids in scheduling order.
    std::vector<std::uint64_t> clear();

private:
    std::map<int, std::deque<outgoing>> levels_; ///< niceness -> FIFO
    std::size_t size_ = 0;
};

} // namespace post::plugins::framing::post_frame
