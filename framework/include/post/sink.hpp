// A sink receives messages from any number of remotes on a local endpoint and never sends
// (the paper's Sink: a collector of datagrams or of messages over accepted connections). Every
// message carries its sender (message::sender()).
#pragma once

#include <post/context.hpp>
#include <post/detail/completion.hpp>
#include <post/listener.hpp>
#include <post/message.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace post {

namespace detail {
class sink_impl;
}

class sink {
public:
    sink() = default;
    explicit sink(std::shared_ptr<detail::sink_impl> impl)
        : impl_(std::move(impl)) {}
    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

    /// Every message, from whichever remote. Without a handler, messages wait for
    /// async_receive (bounded: the oldest are dropped beyond 64 MiB, and counted).
    sink& on_received(std::function<void(message)> h);
    /// The listener failed (e.g. could not bind).
    sink& on_error(std::function<void(const error&)> h);

    /// Completion signature: void(boost::system::error_code, message).
    template <class CompletionToken> auto async_receive(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, message)>(
            [this](auto handler) {
                receive_with(detail::erase_handler<boost::system::error_code, message>(
                    std::move(handler), get_executor()));
            },
            token);
    }

    std::vector<sdk::endpoint> local_endpoints() const;
    /// Messages dropped because nobody was reading.
    std::uint64_t dropped() const;
    /// Stop listening and close every connection.
    void close();
    boost::asio::any_io_executor get_executor() const;

private:
    void receive_with(detail::unique_function<void(boost::system::error_code, message)> h);
    std::shared_ptr<detail::sink_impl> impl_;
};

/// Open a sink on `l` with the stacks `p` allows (`constraint` as for listen()).
sink open_sink(context& ctx, const local& l, const policy& p = policy::defaults(),
               const stack_constraint& constraint = {});

} // namespace post
