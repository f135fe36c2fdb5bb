// A message flow over a lower stream flow speaking post-frame (docs/framing.md): prefaces,
// interleaved chunks scheduled by niceness and deadline, ABORT of expired messages, ACKs, and
// the fallback to a raw byte stream when the peer does not speak it. Like framer_flow, it is the
// upper side's flow and the lower flow's event sink (held there weakly).
#pragma once

#include "post_frame_codec.hpp"
#include "post_frame_scheduler.hpp"

#include <post/sdk.hpp>

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace post::plugins::framing {

struct post_frame_settings {
    post_frame::decoder_limits limits;
    std::size_t chunk_size = 16 * 1024;
    std::size_t send_window = 256 * 1024; ///< Bytes below us not yet reported sent.
    bool acks = true;
    bool fallback_raw = false; ///< false: a peer that does not speak post-frame is an error
};

class post_frame_flow final : public sdk::flow,
                              public sdk::flow_events,
                              public std::enable_shared_from_this<post_frame_flow> {
public:
    post_frame_flow(boost::asio::any_io_executor ex, std::shared_ptr<sdk::flow> lower,
                    sdk::role side, post_frame_settings settings, sdk::log_sink* log);

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
    enum class mode : std::uint8_t { negotiating, framed, raw };

    /// A message whose last byte is in a lower send: on_sent once that send is reported.
    struct completion {
        std::uint64_t upper_id;
        std::uint64_t wire_id; ///< 0 in raw mode
        std::size_t size;
    };
    struct lower_send {
        std::uint64_t lower_id;
        std::size_t bytes;
        std::vector<completion> completes;
    };
    enum class ack_state : std::uint8_t { waiting, acked, expired };
    struct ack_wait {
        std::uint64_t wire_id;
        std::uint64_t upper_id;
        bool sent = false; ///< on_sent was reported; the ACK result can be reported too
        ack_state state = ack_state::waiting;
    };

    bool may_send_data() const noexcept;
    /// Before the lower flow is ready: whether it takes early data (0-RTT, Fast Open) that the
    /// preface and idempotent messages may ride in.
    bool early_data_possible() const noexcept;
    void schedule_flush();
    /// Frame what the window allows into one lower send. `from_upper`: called inside the upper
    /// side's call, so events it produces are posted instead of delivered.
    void pump(bool from_upper);
    void pump_raw();
    void send_lower(sdk::byte_buffer out, std::vector<completion> completes,
                    bool idempotent = false);
    void expire(post_frame::outgoing& m, sdk::byte_buffer& out);
    void report_expired(bool from_upper);
    void arm_timer(post_frame::clock::time_point at);
    void on_timer();
    void handle_decoded(post_frame::decoded& d, post_frame::clock::time_point now);
    void handle_ack(std::uint64_t wire_id, bool expired);
    void report_ack(const ack_wait& w);
    void not_post_frame(sdk::byte_buffer first_bytes, bool ended);
    void deliver(sdk::byte_buffer data, const sdk::receive_meta& meta);
    void maybe_close_lower();
    void protocol_error(const std::string& reason);
    void finish(const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<sdk::flow> lower_;
    std::weak_ptr<sdk::flow_events> events_;
    sdk::log_sink* log_;
    sdk::role side_;
    post_frame_settings settings_;
    std::size_t window_; ///< at most this many bytes handed down and not yet reported sent

    mode mode_ = mode::negotiating;
    post_frame::preface_matcher matcher_;
    post_frame::decoder decoder_;
    post_frame::scheduler scheduler_;
    boost::asio::steady_timer timer_;
    /// Coalesces ACKs that have no data to ride on (see schedule_ack).
    boost::asio::steady_timer ack_timer_;
    bool ack_timer_armed_ = false;
    std::optional<post_frame::clock::time_point> timer_at_;

    bool preface_out_;                   ///< our preface goes in front of the next lower send
    sdk::byte_buffer control_;           ///< ACK and ABORT frames waiting for the next flush
    std::vector<std::uint64_t> expired_; ///< upper ids to report on_expired
    std::deque<lower_send> lower_sends_;
    std::size_t lower_bytes_ = 0;
    std::deque<ack_wait> awaiting_ack_;
    std::vector<post_frame::decoded> decoded_;
    std::uint64_t next_wire_id_ = 1;
    std::uint64_t next_lower_id_ = 1;
    std::size_t queued_bytes_ = 0;

    bool lower_ready_ = false;
    bool flush_posted_ = false;
    /// A message up to this size goes down whole, as one chunk without a copy. Larger ones are
    /// cut into chunk-size chunks, which an urgent message can overtake and which partial
    /// delivery hands up one by one.
    static constexpr std::size_t max_whole_send = 64 * 1024;
    /// ACK frames wait at most this long for data going the other way to carry them.
    static constexpr std::chrono::microseconds ack_delay{500};
    void schedule_ack();
    void arm_ack_timer();
    bool ack_check_posted_ = false;
    bool close_requested_ = false;
    bool lower_closing_ = false;
    bool done_ = false;
    bool aborted_ = false; ///< no events at all after abort()
};

} // namespace post::plugins::framing
