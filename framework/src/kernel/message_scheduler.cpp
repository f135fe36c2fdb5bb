#include "message_scheduler.hpp"

#include <algorithm>
#include <string>

namespace post::detail {

namespace {
bool finished_badly(message_scheduler::outcome o) {
    return o == message_scheduler::outcome::expired || o == message_scheduler::outcome::failed;
}
} // namespace

std::optional<error> message_scheduler::check(const message& m) const {
    for (const auto a : m.properties().antecedents) {
        if (a >= m.id())
            return error{make_error_code(errc::invalid_argument),
                         "antecedent " + std::to_string(a) + " of message " +
                             std::to_string(m.id()) +
                             (a == m.id() ? " is the message itself"
                                          : " has not been sent yet; it would form a cycle")};
        if (a == 0 || (a >= forgotten_below_ && !history_.contains(a)))
            return error{make_error_code(errc::invalid_argument),
                         "antecedent " + std::to_string(a) + " of message " +
                             std::to_string(m.id()) + " is not a message sent on this carrier"};
    }
    return std::nullopt;
}

void message_scheduler::enqueue(entry e) {
    const auto id = e.msg.id();
    history_[id] = outcome::queued;
    queue_.emplace(key{e.msg.properties().niceness, id}, std::move(e));
}

bool message_scheduler::antecedents_sent(const message& m) const {
    return std::all_of(m.properties().antecedents.begin(), m.properties().antecedents.end(),
                       [this](message_id a) {
                           auto it = history_.find(a);
                           // Forgotten ones were delivered long ago.
                           if (it == history_.end()) return true;
                           return it->second == outcome::sent || it->second == outcome::acked;
                       });
}

std::optional<message_scheduler::entry> message_scheduler::pop_ready() {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (!antecedents_sent(it->second.msg)) continue;
        entry e = std::move(it->second);
        queue_.erase(it);
        history_[e.msg.id()] = outcome::in_stack;
        return e;
    }
    return std::nullopt;
}

std::optional<message_scheduler::entry>
message_scheduler::pop_ready_if(const std::function<bool(const message&)>& accept) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (!antecedents_sent(it->second.msg)) continue;
        if (!accept(it->second.msg)) return std::nullopt;
        entry e = std::move(it->second);
        queue_.erase(it);
        history_[e.msg.id()] = outcome::in_stack;
        return e;
    }
    return std::nullopt;
}

void message_scheduler::requeue(entry e) {
    const auto id = e.msg.id();
    history_[id] = outcome::queued;
    queue_.emplace(key{e.msg.properties().niceness, id}, std::move(e));
}

std::vector<message_scheduler::entry> message_scheduler::take_expired(clock::time_point now) {
    std::vector<entry> out;
    for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->second.deadline && *it->second.deadline <= now) {
            history_[it->first.second] = outcome::expired;
            out.push_back(std::move(it->second));
            it = queue_.erase(it);
        } else {
            ++it;
        }
    }
    forget_old();
    return out;
}

std::vector<std::pair<message_scheduler::entry, error>> message_scheduler::take_doomed() {
    std::vector<std::pair<entry, error>> out;
    for (auto it = queue_.begin(); it != queue_.end();) {
        std::optional<error> why;
        for (const auto a : it->second.msg.properties().antecedents) {
            auto h = history_.find(a);
            if (h != history_.end() && finished_badly(h->second)) {
                why = error{make_error_code(errc::antecedent_failed),
                            "antecedent message " + std::to_string(a) +
                                (h->second == outcome::expired ? " expired" : " failed")};
                break;
            }
        }
        if (why) {
            history_[it->first.second] = outcome::failed;
            out.emplace_back(std::move(it->second), std::move(*why));
            it = queue_.erase(it);
        } else {
            ++it;
        }
    }
    forget_old();
    return out;
}

std::vector<message_scheduler::entry> message_scheduler::take_all() {
    std::vector<entry> out;
    for (auto& [k, e] : queue_) {
        history_[k.second] = outcome::failed;
        out.push_back(std::move(e));
    }
    queue_.clear();
    return out;
}

void message_scheduler::record(message_id id, outcome o) {
    auto it = history_.find(id);
    if (it == history_.end()) return;
    // acked comes after sent; nothing overrides a final failure.
    if (finished_badly(it->second)) return;
    it->second = o;
    forget_old();
}

std::optional<message_scheduler::outcome> message_scheduler::outcome_of(message_id id) const {
    auto it = history_.find(id);
    if (it == history_.end()) return std::nullopt;
    return it->second;
}

std::optional<message_scheduler::clock::time_point> message_scheduler::next_deadline() const {
    std::optional<clock::time_point> best;
    for (const auto& [k, e] : queue_)
        if (e.deadline && (!best || *e.deadline < *best)) best = e.deadline;
    return best;
}

void message_scheduler::forget_old() {
    // Only finished messages are forgotten, oldest first; a queued or in-stack one stops the
    // sweep, so forgotten_below_ never passes a message whose outcome still matters.
    while (history_.size() > history_limit) {
        auto it = history_.begin();
        if (it->second == outcome::queued || it->second == outcome::in_stack) break;
        forgotten_below_ = it->first + 1;
        history_.erase(it);
    }
}

} // namespace post::detail
