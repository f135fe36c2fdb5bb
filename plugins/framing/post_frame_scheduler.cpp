#include "post_frame_scheduler.hpp"

#include <algorithm>

namespace post::plugins::framing::post_frame {

void scheduler::push(outgoing m) {
    auto& level = levels_[m.niceness];
    level.push_back(std::move(m));
    ++size_;
}

outgoing scheduler::pop_front() {
    auto it = levels_.begin();
    outgoing m = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) levels_.erase(it);
    --size_;
    return m;
}

std::vector<outgoing> scheduler::take_expired(clock::time_point now) {
    std::vector<outgoing> out;
    for (auto it = levels_.begin(); it != levels_.end();) {
        auto& q = it->second;
        for (auto m = q.begin(); m != q.end();) {
            if (m->expired(now)) {
                out.push_back(std::move(*m));
                m = q.erase(m);
                --size_;
            } else {
                ++m;
            }
        }
        it = q.empty() ? levels_.erase(it) : std::next(it);
    }
    return out;
}

std::optional<clock::time_point> scheduler::earliest_deadline() const {
    std::optional<clock::time_point> best;
    for (const auto& [niceness, q] : levels_)
        for (const auto& m : q)
            if (m.deadline && (!best || *m.deadline < *best)) best = m.deadline;
    return best;
}

std::vector<std::uint64_t> scheduler::clear() {
    std::vector<std::uint64_t> ids;
    ids.reserve(size_);
    for (const auto& [niceness, q] : levels_)
        for (const auto& m : q)
            ids.push_back(m.upper_id);
    levels_.clear();
    size_ = 0;
    return ids;
}

} // namespace post::plugins::framing::post_frame
