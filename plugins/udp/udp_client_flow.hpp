// An active UDP flow: a connected socket exchanging datagrams with one remote.
#pragma once

#include "udp_common.hpp"
#include "udp_segments.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace post::plugins::udp {

class udp_client_flow final : public sdk::flow,
                              public std::enable_shared_from_this<udp_client_flow> {
public:
    udp_client_flow(const boost::asio::any_io_executor& ex, udp_settings settings,
                    sdk::open_params p);

    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }

private:
    enum class state : std::uint8_t { idle, open, done };

    struct pending_send {
        sdk::byte_buffer data;
        std::uint64_t id;
        std::size_t segment_size = 0; ///< Non-zero: a train of datagrams (send_meta).
        std::size_t offset = 0;       ///< Of a train: bytes already sent.
    };

    void open_socket();
    void receive();
    /// One datagram (or a receive error) for the layer above; false once the flow has ended.
    bool received(const boost::system::error_code& ec, sdk::byte_buffer data);
    void write();
    /// Sends (the rest of) the front train now, or waits for the socket to take more.
    void send_train_now();
    void write_done(const boost::system::error_code& ec);
    void finish(const sdk::flow_error& e);
    template <class F> void defer(F f);

    boost::asio::ip::udp::socket socket_;
    udp_settings settings_;
    sdk::open_params params_;
    std::weak_ptr<sdk::flow_events> events_;
    state state_ = state::idle;
    bool close_requested_ = false;
    bool aborted_ = false;
    bool finished_ = false; ///< on_closed was reported (or is being reported).
    bool writing_ = false;
    /// Set by the first train sent (send_meta::segment_size): a layer above that batches its
    /// sends (QUIC) also gets received bursts; others get one datagram per receive, as before.
    bool bursts_ = false;
    std::deque<pending_send> queue_;
    std::size_t queued_bytes_ = 0;
    std::size_t max_message_size_;
    gso_state gso_;
    std::vector<std::byte> receive_buffer_;
    sdk::endpoint local_;
};

} // namespace post::plugins::udp
