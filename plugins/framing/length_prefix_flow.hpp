// A message flow over a lower stream flow, using the length-prefix format of frame_decoder.hpp.
// It is both the upper side's flow and the lower flow's event sink (held there weakly: the
// upper side owns this flow, which owns the lower one).
#pragma once

#include "frame_decoder.hpp"

#include <post/sdk.hpp>

#include <cstdint>
#include <deque>
#include <memory>

namespace post::plugins::framing {

class length_prefix_flow final : public sdk::flow,
                                 public sdk::flow_events,
                                 public std::enable_shared_from_this<length_prefix_flow> {
public:
    length_prefix_flow(boost::asio::any_io_executor ex, std::shared_ptr<sdk::flow> lower,
                       std::uint64_t max_message_size, sdk::log_sink* log);

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
    std::chrono::microseconds smoothed_rtt() const noexcept override {
        return lower_ ? lower_->smoothed_rtt() : std::chrono::microseconds{};
    }

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

    /// Find and remove the record of a lower send (stream layers report in order, so it is
    /// almost always the first).
    bool take(std::uint64_t lower_id, in_flight& out);
    void finish(const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<sdk::flow> lower_;
    std::weak_ptr<sdk::flow_events> events_;
    sdk::log_sink* log_;
    frame_decoder decoder_;
    std::deque<in_flight> in_flight_;
    std::uint64_t next_lower_id_ = 1;
    std::size_t queued_bytes_ = 0;
    bool done_ = false;
};

} // namespace post::plugins::framing
