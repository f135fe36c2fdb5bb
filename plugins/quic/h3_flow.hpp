// The `h3` layer's flow: HTTP/3 requests and responses as messages over one QUIC connection
// (docs/http.md "HTTP/3"). It is the sdk::flow the layer above sees and the event sink of the
// connection's first stream flow, which it owns (and through it the connection); the HTTP/3
// work is in h3_session, the connection's application protocol.
#pragma once

#include "h3_session.hpp"
#include "quic_stream.hpp"

#include <post/sdk.hpp>

#include <memory>

namespace post::plugins::quic {

class h3_flow final : public sdk::flow,
                      public sdk::flow_events,
                      public std::enable_shared_from_this<h3_flow> {
public:
    h3_flow(std::shared_ptr<quic_stream> lower, std::shared_ptr<h3_session> session);
    ~h3_flow() override;

    /// Register with the stream flow; call once right after construction.
    void attach();

    // sdk::flow
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return session_->queued_bytes(); }

    // sdk::flow_events (from the connection's stream flow: only its end matters)
    void on_ready() noexcept override {}
    void on_received(sdk::byte_buffer, const sdk::receive_meta&) noexcept override {}
    void on_sent(std::uint64_t) noexcept override {}
    void on_send_error(std::uint64_t, const sdk::flow_error&) noexcept override {}
    void on_closed(const sdk::flow_error& e) noexcept override;

private:
    std::shared_ptr<quic_stream> lower_;
    std::shared_ptr<h3_session> session_;
};

} // namespace post::plugins::quic
