// A listener: one acceptor per (bottom layer, local address); every accepted flow is wrapped
// with the upper layers of its stack and becomes a carrier once the stack is ready.
#pragma once

#include "carrier_impl.hpp"

#include <post/listener.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <set>

namespace post::detail {

class listener_impl final : public live_object, public std::enable_shared_from_this<listener_impl> {
public:
    listener_impl(std::shared_ptr<context_state> ctx, std::shared_ptr<const merged_policy> policy)
        : ctx_(std::move(ctx))
        , policy_(std::move(policy)) {}

    /// Bind acceptors; throws boost::system::system_error when none could be started.
    void open(const local& where, const std::vector<candidate_stack>& stacks);

    void accepted(std::size_t acceptor_index, std::shared_ptr<sdk::flow> flow);
    void acceptor_closed(std::size_t acceptor_index, const sdk::flow_error& e);
    /// A carrier for a stream the peer opened on the connection of one of our carriers.
    void adopt_stream(std::shared_ptr<carrier_impl> c, std::shared_ptr<transient_impl> t);
    void accept(unique_function<void(boost::system::error_code, carrier)> h);
    void close();
    void shutdown() noexcept override;

    std::function<void(carrier)> on_carrier;
    std::function<void(const error&)> on_error;

    std::vector<sdk::endpoint> endpoints() const;
    std::vector<std::vector<std::string>> stacks() const;
    std::vector<std::string> left_out() const;
    boost::asio::any_io_executor executor() const { return ctx_->executor; }

private:
    struct bound {
        std::shared_ptr<stack_instance> stack;
        std::shared_ptr<sdk::acceptor> acceptor;
        std::shared_ptr<sdk::acceptor_events> sink;
        sdk::endpoint where;
        bool stopped = false; ///< Left out after it listened (leave_out).
    };
    /// Why a layer of `stack` says it cannot take the server role; empty when all can.
    std::string serve_refusal(const stack_instance& stack) const;
    /// The stack of bound_[index] cannot serve any peer: stop listening over it.
    void leave_out(std::size_t index, const error& why);
    void ready(std::shared_ptr<carrier_impl> c);
    /// Wait for `c` to be ready, then hand it out (or report why it failed).
    void establish(std::shared_ptr<carrier_impl> c, std::shared_ptr<transient_impl> t,
                   std::string peer);
    /// Refuse a new carrier when connection.max-connections are live: true if refused.
    bool over_limit(const std::string& peer, const std::vector<std::string>& stack,
                    const std::string& what);
    /// Carriers from this listener not yet closed (establishing or handed out).
    std::size_t live_carriers();

    std::shared_ptr<context_state> ctx_;
    std::shared_ptr<const merged_policy> policy_; ///< Shared with the accepted carriers.
    std::vector<bound> bound_;
    std::vector<std::string> left_out_; ///< "stack: why" for each stack that does not listen.
    std::set<std::shared_ptr<carrier_impl>> establishing_;
    std::vector<std::weak_ptr<carrier_impl>> live_;
    std::deque<carrier> backlog_;
    std::deque<unique_function<void(boost::system::error_code, carrier)>> acceptors_waiting_;
    bool closed_ = false;
};

} // namespace post::detail
