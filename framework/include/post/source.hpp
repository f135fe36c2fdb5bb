// A source sends messages to one remote and never receives (RFC 9622's unidirectional send,
// the paper's Source: e.g. a telemetry or multicast sender). It is a carrier with the receive
// half taken away: whatever the peer sends is discarded and counted.
#pragma once

#include <post/carrier.hpp>
#include <post/context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace post {

class source {
public:
    source() = default;
    explicit source(post::carrier c)
        : carrier_(std::move(c))
        , discarded_(std::make_shared<std::atomic<std::uint64_t>>(0)) {
        carrier_.on_received([d = discarded_](message) { ++*d; });
    }
    explicit operator bool() const noexcept { return static_cast<bool>(carrier_); }

    source& on_ready(std::function<void()> h) { return carrier_.on_ready(std::move(h)), *this; }
    source& on_sent(std::function<void(message_id)> h) {
        return carrier_.on_sent(std::move(h)), *this;
    }
    source& on_expired(std::function<void(message_id)> h) {
        return carrier_.on_expired(std::move(h)), *this;
    }
    source& on_acked(std::function<void(message_id)> h) {
        return carrier_.on_acked(std::move(h)), *this;
    }
    source& on_send_error(std::function<void(message_id, const error&)> h) {
        return carrier_.on_send_error(std::move(h)), *this;
    }
    source& on_closed(std::function<void()> h) { return carrier_.on_closed(std::move(h)), *this; }
    source& on_error(std::function<void(const error&)> h) {
        return carrier_.on_error(std::move(h)), *this;
    }

    message_id send(message m) { return carrier_.send(std::move(m)); }
    /// As carrier::async_send.
    template <class CompletionToken> auto async_send(message m, CompletionToken&& token) {
        return carrier_.async_send(std::move(m), std::forward<CompletionToken>(token));
    }
    void close() { carrier_.close(); }
    void abort() { carrier_.abort(); }

    /// Messages the peer sent anyway (dropped).
    std::uint64_t discarded() const { return discarded_ ? discarded_->load() : 0; }
    const post::carrier& carrier() const noexcept { return carrier_; }

private:
    post::carrier carrier_;
    std::shared_ptr<std::atomic<std::uint64_t>> discarded_;
};

/// Initiate a source: as initiate(), but send-only. The policy's connection.direction becomes
/// unidirectional-send, so a stack that can open a one-way flow does (QUIC: a unidirectional
/// stream); others open a bidirectional one and leave the receive half unused.
inline source initiate_source(context& ctx, const remote& r, const policy& p = policy::defaults()) {
    policy send_only = p;
    send_only.connection.direction = sdk::flow_direction::send_only;
    return source(initiate(ctx, r, send_only));
}

} // namespace post
