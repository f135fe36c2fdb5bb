// The carrier's state machine: establishing (a race run by `establishment`), active (one
// winning transient), closing, closed. Every member runs on the context's executor.
#pragma once

#include "context_state.hpp"
#include "message_scheduler.hpp"
#include "transient_impl.hpp"

#include <post/carrier.hpp>
#include <post/remote.hpp>

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>

namespace post::detail {

class establishment;
class listener_impl;

class carrier_impl final : public transient_owner,
                           public live_object,
                           public std::enable_shared_from_this<carrier_impl> {
public:
    carrier_impl(std::shared_ptr<context_state> ctx, std::shared_ptr<association> assoc,
                 std::shared_ptr<const merged_policy> policy);
    ~carrier_impl() override;

    /// Client side: resolve `r` and race the candidate stacks.
    void start_initiate(const remote& r, std::shared_ptr<prepared_policy> prepared,
                        local from = {});
    /// Fail at once (policy errors found before any attempt).
    void fail_now(error e);
    /// Server side: take an accepted transient; `established` is called once it is ready.
    void adopt(std::shared_ptr<transient_impl> t,
               std::function<void(std::shared_ptr<carrier_impl>, const error&)> established);

    // ---- called by establishment ----
    void race_won(std::shared_ptr<transient_impl> winner);
    void race_failed(error e);
    /// An attempt whose stack takes early data (sdk::cap_early_data) has started: idempotent
    /// messages may go on it before it is ready. The first such attempt is used.
    void offer_early(std::shared_ptr<transient_impl> t);

    /// Another carrier to the same remote on the same association: a new stream of the active
    /// stack's connection when its top layer multistreams (sdk::flow::fork), else a new
    /// connection raced like the first (initiated carriers only: an accepted one fails with
    /// errc::not_supported).
    std::shared_ptr<carrier_impl> fork();
    /// Carriers for streams the peer opens on this carrier's connection go to `l` (accepted
    /// carriers); without a listener they go to on_incoming.
    void set_listener(std::weak_ptr<listener_impl> l) { listener_ = std::move(l); }
    /// Set on_incoming and hand it the carriers that waited for it.
    void set_incoming_handler(std::function<void(carrier)> h);

    // ---- public operations (any thread; they hop onto the executor) ----
    message_id send(message m, unique_function<void(boost::system::error_code, message_id)> done);
    void receive(unique_function<void(boost::system::error_code, message)> h);
    void wait_ready(unique_function<void(boost::system::error_code)> h);
    void close();
    void abort();
    /// Set on_received and hand it whatever arrived before it was set.
    void set_received_handler(std::function<void(message)> h);

    // ---- handlers ----
    std::function<void()> on_ready;
    std::function<void(message)> on_received;
    std::function<void(message_id)> on_sent;
    std::function<void(message_id, const error&)> on_send_error;
    std::function<void(message_id)> on_expired;
    std::function<void(message_id)> on_acked;
    std::function<void()> on_closed;
    std::function<void(const error&)> on_error;
    std::function<void(carrier)> on_incoming;
    std::function<void(const path&)> on_path_changed;

    // ---- migration (carrier_migration.cpp) ----
    /// Any thread: move the connection to `to` (hops onto the executor; `done` runs there).
    void migrate(const local& to, std::function<void(const error&)> done);
    /// On the executor: a local address went away; if it is ours, move to another usable one.
    void local_address_lost(const boost::asio::ip::address& a);
    /// An accepted flow the stack withdrew before it was ready (a QUIC packet of a migrated
    /// client, handed to its existing connection): the listener reports nothing.
    bool withdrawn() const { return withdrawn_; }

    // ---- inspection ----
    carrier_state state() const { return state_.load(); }
    std::vector<std::string> stack() const;
    std::optional<path> current_path() const;
    std::optional<transient_info> transient() const;
    std::shared_ptr<association> assoc() const { return association_; }
    std::size_t max_message_size() const;
    send_capabilities capabilities() const;
    std::optional<error> last_error() const;
    boost::asio::any_io_executor executor() const { return ctx_->executor; }
    context_state& ctx() { return *ctx_; }
    const merged_policy& policy() const { return *policy_; }

    void shutdown() noexcept override;

    // ---- transient_owner ----
    void transient_ready(transient_impl& t) override;
    void transient_received(transient_impl& t, sdk::byte_buffer data,
                            const sdk::receive_meta& meta) override;
    void transient_sent(transient_impl& t, std::uint64_t id) override;
    void transient_send_error(transient_impl& t, std::uint64_t id,
                              const sdk::flow_error& e) override;
    void transient_expired(transient_impl& t, std::uint64_t id) override;
    void transient_acked(transient_impl& t, std::uint64_t id) override;
    void transient_closed(transient_impl& t, const sdk::flow_error& e) override;
    void transient_incoming(transient_impl& t, std::shared_ptr<sdk::flow> incoming) override;
    void transient_path_changed(transient_impl& t) override;

private:
    using pending_send = message_scheduler::entry;
    struct received {
        message msg;
        std::optional<std::chrono::steady_clock::time_point> deadline;
    };

    void become_active(std::shared_ptr<transient_impl> t);
    /// On the executor: open `twin` as a new stream of the active connection if the stack
    /// multistreams, else as a new connection.
    void fork_into(const std::shared_ptr<carrier_impl>& twin);
    /// A carrier on a flow of this carrier's stack instance (a forked or incoming stream),
    /// sharing the association, policy and the way to reach the peer again.
    /// Returns the transient (owned by `c`) for `f`.
    std::shared_ptr<transient_impl> sibling(carrier_impl& c, std::shared_ptr<sdk::flow> f,
                                            const transient_impl& on) const;
    void incoming_ready(std::shared_ptr<carrier_impl> c);
    /// The connection went away and the policy allows dormancy: keep everything but the
    /// transient; the next send re-establishes.
    void become_dormant(const sdk::flow_error& why);
    void reactivate();
    /// Take a message sent by the application (on the executor).
    void accept_send(pending_send p);
    /// Expire and fail what must be, hand down what may go, re-arm the expiry timer.
    void pump();
    /// Whether the stack should be given another message now.
    bool stack_has_room() const { return active_ && has_room(*active_); }
    bool has_room(transient_impl& t) const;
    void transmit(pending_send p, transient_impl& t);
    /// Whether events from `t` concern our messages: the active transient, or the one carrying
    /// early data while establishing.
    bool ours(const transient_impl& t) const;
    /// Early data went on an attempt that did not win: its messages still in flight go back to
    /// the queue, for the winner.
    void reclaim_early(const transient_impl& winner);
    /// Report a send failure from a later turn of the executor, never inside send().
    void fail_send(pending_send p, error e);
    void expire_later(pending_send p);
    void arm_expiry_timer();
    void finish(const error& e, bool report);
    void deliver(received r);
    /// Hand queued received messages to the application while it has a way to take them.
    void drain_inbox();
    void complete_send(message_id id, const error& e);
    void clear_handlers();
    /// On the executor: open the stack's bottom layer from `to` and hand it to the top flow.
    /// `why` goes into the trace. An empty error: the stack took it.
    error migrate_to(const boost::asio::ip::address& to, std::uint16_t port,
                     const std::string& why);
    /// The address of `family` to move to from `lost`: usable by the policy's interface rules
    /// and the application's pinned interface; none: empty, and `why_not` says why.
    std::optional<boost::asio::ip::address> replacement_for(const boost::asio::ip::address& lost,
                                                            std::string& why_not);
    void trace_migration(trace_event::kind k, const std::string& detail);
    /// Watch for removed local addresses while active with a stack that can migrate.
    void update_watch();

    std::shared_ptr<context_state> ctx_;
    std::shared_ptr<association> association_;
    std::shared_ptr<const merged_policy> policy_;
    std::atomic<carrier_state> state_{carrier_state::establishing};
    std::atomic<message_id> next_id_{1};

    std::optional<remote> remote_; ///< Set for initiated carriers (fork, reactivation).
    std::shared_ptr<prepared_policy> prepared_; ///< Initiated carriers: stacks to race.
    local from_; ///< Where initiated carriers bind (fork and reactivation keep it).
    std::shared_ptr<establishment> race_;
    std::shared_ptr<transient_impl> active_;
    /// The attempt carrying early data, and a copy of each message on it that has not
    /// completed yet, in case that attempt loses the race.
    std::shared_ptr<transient_impl> early_;
    struct early_copy {
        message msg;
        std::optional<std::chrono::steady_clock::time_point> deadline;
    };
    std::map<message_id, early_copy> early_copies_;
    std::function<void(std::shared_ptr<carrier_impl>, const error&)> established_;

    message_scheduler scheduler_; ///< Messages not yet handed to the stack.
    boost::asio::steady_timer expiry_timer_;
    std::optional<std::chrono::steady_clock::time_point> timer_deadline_;
    /// Handed to the stack, not yet sent/expired/failed.
    std::map<message_id, unique_function<void(boost::system::error_code, message_id)>> in_flight_;
    std::deque<received> inbox_;
    /// Partial delivery: the message id given to each unit of the stack still in progress.
    std::map<std::uint64_t, message_id> partial_ids_;
    std::size_t inbox_bytes_ = 0;
    std::deque<unique_function<void(boost::system::error_code, message)>> receivers_;
    std::vector<unique_function<void(boost::system::error_code)>> ready_waiters_;
    std::optional<error> last_error_;
    mutable std::mutex inspect_mutex_; ///< Guards active_ info and last_error_ for inspection.
    bool close_requested_ = false;
    bool stack_closed_ = false; ///< top().close() was called.
    std::weak_ptr<listener_impl> listener_;
    /// Carriers for peer-opened streams waiting for on_incoming (bounded).
    std::deque<std::shared_ptr<carrier_impl>> incoming_backlog_;
    bool withdrawn_ = false;
    bool watched_ = false; ///< Registered with ctx_->addresses.
};

} // namespace post::detail
