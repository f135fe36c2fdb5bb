// The kernel's message scheduler: which of a carrier's queued messages goes down to the stack
// next. It applies the message properties the same way on every stack (docs/messages.md):
// strict priority by niceness (FIFO within one niceness), lifetimes (a message whose deadline
// passed is never handed down), and antecedents (a message waits until each antecedent has
// been sent, and fails when one of them expired or failed). It holds data only: no Asio, no
// events; the carrier drives it and reports what it returns.
#pragma once

#include <post/detail/unique_function.hpp>
#include <post/error.hpp>
#include <post/message.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace post::detail {

class message_scheduler {
public:
    using clock = std::chrono::steady_clock;
    using done_handler = unique_function<void(boost::system::error_code, message_id)>;

    struct entry {
        message msg;
        done_handler done;
        std::optional<clock::time_point> deadline;
    };

    /// What became of a message the scheduler knows.
    enum class outcome { queued, in_stack, sent, acked, expired, failed };

    /// How many finished messages are remembered for antecedent checks; an antecedent older
    /// than that is taken as delivered (it was, or its successors would have failed long ago).
    static constexpr std::size_t history_limit = 1u << 16;

    /// Check `m`'s antecedents at send time: each must name an earlier message sent on this
    /// carrier. A message naming itself or a later one would form a cycle (ids grow); ids of
    /// received messages or never assigned are unknown. Returns the error, or nothing.
    std::optional<error> check(const message& m) const;

    /// Queue a checked message. Its id must be greater than every id queued before.
    void enqueue(entry e);

    /// The most urgent queued message whose antecedents have all been sent, removed from the
    /// queue and recorded as in the stack. Messages still waiting for an antecedent are passed
    /// over, so they do not hold back unrelated ones.
    std::optional<entry> pop_ready();
    /// As pop_ready, but only if that message satisfies `accept`; otherwise it stays queued and
    /// nothing is returned (nothing overtakes it: early data keeps the scheduling order).
    std::optional<entry> pop_ready_if(const std::function<bool(const message&)>& accept);
    /// Put back a message that was handed to a stack that lost (early data on a losing
    /// attempt): it takes its old place, as if it had never left.
    void requeue(entry e);

    /// Queued messages whose deadline is at or before `now`, removed and recorded as expired.
    std::vector<entry> take_expired(clock::time_point now);

    /// Queued messages with an antecedent that expired or failed, removed and recorded as
    /// failed, each with the reason. Failing them may doom others: call until empty.
    std::vector<std::pair<entry, error>> take_doomed();

    /// Everything still queued (the carrier is closing), recorded as failed.
    std::vector<entry> take_all();

    /// What the stack reported for a message handed down.
    void record(message_id id, outcome o);
    std::optional<outcome> outcome_of(message_id id) const;

    std::optional<clock::time_point> next_deadline() const;
    bool empty() const noexcept { return queue_.empty(); }
    std::size_t size() const noexcept { return queue_.size(); }

private:
    /// (niceness, id): strict priority, then first in first out.
    using key = std::pair<int, message_id>;

    bool antecedents_sent(const message& m) const;
    void forget_old();

    std::map<key, entry> queue_;
    std::map<message_id, outcome> history_;
    /// Ids below this that are not in history_ were forgotten (and taken as delivered).
    message_id forgotten_below_ = 1;
};

} // namespace post::detail
