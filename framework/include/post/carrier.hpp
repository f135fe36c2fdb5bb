// A carrier sends and receives whole messages with one remote, over whichever stack the
// policy and racing chose. Handles are cheap to copy; copies refer to the same carrier.
//
// Threads: every handler and completion runs on the context's executor (completion tokens
// with an associated executor run there instead). Set handlers before the executor runs, or
// from a handler. No handler runs inside the call that caused it (send, close, ...).
//
// Dormancy: with `connection: { dormant: true }` in the policy, an initiated carrier whose
// connection goes away (peer close or failure) becomes dormant instead of ending: it keeps its
// association, handlers and queued messages, and the next send re-establishes it (on_ready
// runs again). Messages the stack had not finished sending fail with errc::closed.
//
// Ending: a carrier ends exactly once, with on_closed (a clean close, by either side, or
// abort()) or with on_error (establishment failed, or the connection broke) — never both, as
// RFC 9622's Closed and ConnectionError events. After that, pending async operations complete
// with errc::closed. The context keeps a carrier alive until it ends, so an application need
// not hold a handle for its handlers to keep running.
#pragma once

#include <post/association.hpp>
#include <post/detail/completion.hpp>
#include <post/error.hpp>
#include <post/message.hpp>
#include <post/path.hpp>
#include <post/remote.hpp>
#include <post/sdk/edge.hpp>
#include <post/transient.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace post {

namespace detail {
class carrier_impl;
}

enum class carrier_state { establishing, active, dormant, closing, closed };

/// Which send events and message properties the carrier's stack honours beyond what the
/// kernel scheduler does for every stack (see docs/messages.md).
struct send_capabilities {
    bool sent = true;               ///< Always: the stack has taken the whole message.
    bool acked = false;             ///< The peer's application side confirmed receipt.
    bool expires_in_flight = false; ///< A message can expire mid-way (the peer drops the rest).
    bool interleaving = false;      ///< An urgent message overtakes one already being sent.
    bool ordered = false;           ///< Messages arrive in the order they were sent.
    bool partial_delivery = false;  ///< Parts of very large messages can be received.
    /// Which way the carrier's flow carries data: send_only for a QUIC unidirectional stream
    /// this side opened (initiate_source), receive_only for one the peer opened (every send
    /// fails with errc::not_supported); bidirectional for every other stack, even when one
    /// half is unused (docs/quic.md "Unidirectional streams").
    sdk::flow_direction direction = sdk::flow_direction::bidirectional;
};
std::string_view to_string(carrier_state s) noexcept;

class carrier {
public:
    carrier() = default;
    explicit carrier(std::shared_ptr<detail::carrier_impl> impl)
        : impl_(std::move(impl)) {}

    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

    // ---- event handlers: the paper's callback model ----
    carrier& on_ready(std::function<void()> h);
    /// With no on_received handler, received messages wait for async_receive.
    carrier& on_received(std::function<void(message)> h);
    carrier& on_sent(std::function<void(message_id)> h);
    /// Ends a message that could not be sent: errc::antecedent_failed, errc::invalid_argument,
    /// errc::message_too_large, errc::closed... Expiry has its own event.
    carrier& on_send_error(std::function<void(message_id, const error&)> h);
    /// The message's lifetime ran out before it was (completely) sent; it was dropped.
    carrier& on_expired(std::function<void(message_id)> h);
    /// The peer's application side received the message (stacks with capabilities().acked).
    carrier& on_acked(std::function<void(message_id)> h);
    carrier& on_closed(std::function<void()> h);
    carrier& on_error(std::function<void(const error&)> h);
    /// The peer opened a new stream on this carrier's connection (SCTP, QUIC): a carrier for
    /// it, ready. Carriers accepted by a listener get theirs from the listener instead. Without
    /// a handler, up to 64 wait for one; more are refused.
    carrier& on_incoming(std::function<void(carrier)> h);
    /// The carrier's connection moved to another path (a migration: asked for with migrate(),
    /// done automatically when its local address went away, or by the peer); `path()` now
    /// returns the new one. Every carrier on that connection (QUIC streams) gets it.
    carrier& on_path_changed(std::function<void(const post::path&)> h);

    /// Queue a message; returns its id (also stored in the message). Errors arrive through
    /// on_send_error / on_error.
    message_id send(message m);

    /// Completion signature: void(boost::system::error_code, message_id). Completes when the
    /// stack has taken the whole message (`sent`), or with errc::expired when its lifetime ran
    /// out first, or with another error.
    template <class CompletionToken> auto async_send(message m, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, message_id)>(
            [this](auto handler, message m) {
                send_with(std::move(m),
                          detail::erase_handler<boost::system::error_code, message_id>(
                              std::move(handler), get_executor()));
            },
            token, std::move(m));
    }

    /// Completion signature: void(boost::system::error_code, message). One message per call.
    template <class CompletionToken> auto async_receive(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, message)>(
            [this](auto handler) {
                receive_with(detail::erase_handler<boost::system::error_code, message>(
                    std::move(handler), get_executor()));
            },
            token);
    }

    /// Completion signature: void(boost::system::error_code). Completes when the carrier is
    /// ready (at once if it already is) or has failed to establish.
    template <class CompletionToken> auto async_wait_ready(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [this](auto handler) {
                ready_with(detail::erase_handler<boost::system::error_code>(std::move(handler),
                                                                            get_executor()));
            },
            token);
    }

    /// Another carrier to the same remote, on the same association and policy: a new stream
    /// where the stack multistreams (SCTP, QUIC), else a new connection. Only initiated carriers
    /// can fork; on an accepted one the new carrier fails with errc::not_supported.
    carrier fork() const;

    /// Move the carrier's connection, with every carrier on it (all streams of a QUIC
    /// connection), to the local address `to` (an address, or an interface whose first usable
    /// address of the remote's family is taken; a port of 0 lets the system pick). The carrier
    /// stays open and its messages go on. `done` runs on the executor once the stack took the
    /// new path (on_path_changed follows when it is in use) or with the reason it cannot:
    /// errc::not_supported for a stack that cannot migrate (only QUIC clients can), or before
    /// the connection is up; errc::invalid_argument for an unusable `to`. Nothing changes then.
    void migrate(const local& to, std::function<void(const error&)> done = {});

    /// Graceful close after queued messages are sent; on_closed follows.
    void close();
    /// Immediate close; queued messages fail with errc::closed.
    void abort();

    carrier_state state() const;
    /// The stack in use, top layer first (empty while establishing).
    std::vector<std::string> stack() const;
    std::optional<post::path> path() const;
    std::optional<transient_info> transient() const;
    std::shared_ptr<post::association> association() const;
    /// What the stack reports and honours (all false while establishing, except `sent`).
    send_capabilities capabilities() const;
    /// The largest message the stack accepts; 0 = unlimited.
    std::size_t max_message_size() const;
    /// The last error event, if any.
    std::optional<error> last_error() const;

    boost::asio::any_io_executor get_executor() const;
    const std::shared_ptr<detail::carrier_impl>& impl() const noexcept { return impl_; }

private:
    void send_with(message m,
                   detail::unique_function<void(boost::system::error_code, message_id)> h);
    void receive_with(detail::unique_function<void(boost::system::error_code, message)> h);
    void ready_with(detail::unique_function<void(boost::system::error_code)> h);

    std::shared_ptr<detail::carrier_impl> impl_;
};

} // namespace post
