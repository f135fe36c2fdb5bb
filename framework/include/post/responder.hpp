// A responder receives messages from many remotes and answers each one to its sender only:
// the usual shape of a UDP server, and the same code over a connection-oriented stack (each
// accepted carrier's messages arrive here with a way back on that carrier).
#pragma once

#include <post/carrier.hpp>
#include <post/context.hpp>
#include <post/listener.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace post {

namespace detail {
class responder_impl;
}

/// The sender of one received message: replies go to it, and only to it.
class reply_to {
public:
    reply_to() = default;
    explicit reply_to(post::carrier c)
        : carrier_(std::move(c)) {}

    message_id send(message m) { return carrier_.send(std::move(m)); }
    /// As carrier::async_send.
    template <class CompletionToken> auto async_send(message m, CompletionToken&& token) {
        return carrier_.async_send(std::move(m), std::forward<CompletionToken>(token));
    }
    /// The remote's address, where the stack knows it.
    std::optional<sdk::endpoint> remote() const {
        auto p = carrier_.path();
        return p ? std::optional<sdk::endpoint>(p->remote) : std::nullopt;
    }
    /// The carrier to this remote (for its events, or to close it).
    const post::carrier& carrier() const noexcept { return carrier_; }

private:
    post::carrier carrier_;
};

class responder {
public:
    responder() = default;
    explicit responder(std::shared_ptr<detail::responder_impl> impl)
        : impl_(std::move(impl)) {}
    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

    /// Each message and the way back to its sender. Messages that arrive before a handler is
    /// set wait for it.
    responder& on_received(std::function<void(message, reply_to)> h);
    responder& on_error(std::function<void(const error&)> h);

    std::vector<sdk::endpoint> local_endpoints() const;
    /// The stacks it accepts, top layer first.
    std::vector<std::vector<std::string>> stacks() const;
    /// Stop listening and close every carrier.
    void close();
    boost::asio::any_io_executor get_executor() const;

private:
    std::shared_ptr<detail::responder_impl> impl_;
};

/// Open a responder on `l` with the stacks `p` allows (`constraint` as for listen()).
responder open_responder(context& ctx, const local& l, const policy& p = policy::defaults(),
                         const stack_constraint& constraint = {});

} // namespace post
