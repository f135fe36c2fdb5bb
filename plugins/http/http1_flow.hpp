// A message flow speaking HTTP/1.1 over a lower stream flow (docs/http.md): on the client side
// each message sent is a request and each message received its response, in order; on the
// server side each message received is a request and each message sent answers the oldest
// unanswered one. It is both the upper side's flow and the lower flow's event sink (held there
// weakly: the upper side owns this flow, which owns the lower one).
#pragma once

#include "http1_decoder.hpp"
#include "http1_encoder.hpp"

#include <post/sdk.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace post::plugins::http {

class http1_flow final : public sdk::flow,
                         public sdk::flow_events,
                         public std::enable_shared_from_this<http1_flow> {
public:
    http1_flow(boost::asio::any_io_executor ex, std::shared_ptr<sdk::flow> lower, sdk::role side,
               std::string default_authority, http1_limits limits, sdk::log_sink* log);

    /// Register with the lower flow; call once right after construction.
    void attach();

    // sdk::flow (towards the upper side)
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }

    // sdk::flow_events (from the lower flow)
    void on_ready() noexcept override;
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override;
    void on_sent(std::uint64_t id) noexcept override;
    void on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept override;
    void on_closed(const sdk::flow_error& e) noexcept override;

private:
    struct in_flight {
        std::uint64_t lower_id;
        std::uint64_t upper_id;
        std::size_t size;
    };

    /// Report a send failure from outside the caller's stack (no event inside send()).
    void fail_send(std::uint64_t id, std::error_code code, std::string reason);
    /// Hand head and body down as one unit `upper_id`.
    void transmit(std::string head, sdk::byte_buffer body, bool with_body,
                  const sdk::send_meta& meta);
    void send_request(sdk::byte_buffer data, const sdk::send_meta& meta);
    void send_response(sdk::byte_buffer data, const sdk::send_meta& meta);
    /// Deliver parsed messages upwards; false once the flow has ended or stops reading.
    bool deliver(std::vector<http1_message>& messages);
    /// End after the current exchange: the lower flow closes once its queue is sent.
    void close_after_exchange();
    bool take(std::uint64_t lower_id, in_flight& out);
    void protocol_failure(const std::string& what);
    void finish(const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<sdk::flow> lower_;
    std::weak_ptr<sdk::flow_events> events_;
    sdk::role side_;
    std::string default_authority_;
    http1_limits limits_;
    sdk::log_sink* log_;
    http1_decoder decoder_;
    /// Client: requests sent and not yet answered. Server: requests received and not yet
    /// answered. Oldest first either way.
    std::deque<sent_request> pending_;
    std::deque<in_flight> in_flight_;
    std::uint64_t next_lower_id_ = 1;
    std::size_t queued_bytes_ = 0;
    bool closing_ = false;      ///< A connection: close exchange ended; no more messages.
    bool local_close_ = false;  ///< The upper side asked to close.
    bool stop_reading_ = false; ///< Server: a request asked to close; later bytes are ignored.
    bool lower_closed_ = false; ///< The lower flow reported on_closed.
    bool done_ = false;
};

} // namespace post::plugins::http
