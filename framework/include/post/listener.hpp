// A listener accepts carriers on a local endpoint, with the stacks a policy allows.
#pragma once

#include <post/carrier.hpp>
#include <post/remote.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace post {

namespace detail {
class listener_impl;
}

class listener {
public:
    listener() = default;
    explicit listener(std::shared_ptr<detail::listener_impl> impl)
        : impl_(std::move(impl)) {}
    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

    /// Each accepted carrier, already ready. Without a handler, carriers wait for async_accept.
    listener& on_carrier(std::function<void(carrier)> h);
    listener& on_error(std::function<void(const error&)> h);

    /// Completion signature: void(boost::system::error_code, carrier).
    template <class CompletionToken> auto async_accept(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, carrier)>(
            [this](auto handler) {
                accept_with(detail::erase_handler<boost::system::error_code, carrier>(
                    std::move(handler), get_executor()));
            },
            token);
    }

    /// Where it listens: one entry per (stack bottom, address).
    std::vector<sdk::endpoint> local_endpoints() const;
    /// The stacks it accepts, top layer first.
    std::vector<std::vector<std::string>> stacks() const;
    /// The policy's stacks that do not listen, as "stack: why" (a layer that cannot be set up
    /// with its options, or a bottom layer that could bind no address); empty when all do.
    /// A port that another socket holds is not among them: listen() fails instead.
    std::vector<std::string> left_out() const;
    void close();
    boost::asio::any_io_executor get_executor() const;

private:
    void accept_with(detail::unique_function<void(boost::system::error_code, carrier)> h);
    std::shared_ptr<detail::listener_impl> impl_;
};

} // namespace post
