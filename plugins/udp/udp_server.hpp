// The passive side of UDP: one socket bound to a local endpoint, its datagrams demultiplexed by
// remote endpoint into per-remote server flows.
//
// Ownership: the acceptor and every server flow hold the shared udp_server_socket; the socket
// holds only weak references to the flows. Closing the acceptor stops new flows but keeps the
// socket for the flows still alive (as closing a TCP listener keeps its connections); the socket
// closes when the acceptor is closed and the last flow is gone.
#pragma once

#include "udp_common.hpp"
#include "udp_segments.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

namespace post::plugins::udp {

class udp_server_flow;

class udp_server_socket final : public std::enable_shared_from_this<udp_server_socket> {
public:
    udp_server_socket(const boost::asio::any_io_executor& ex, const udp_settings& settings);

    /// Open and bind; false and `err` filled on failure.
    bool bind(const sdk::endpoint& local, sdk::flow_error& err);

    void set_acceptor_events(std::weak_ptr<sdk::acceptor_events> events);
    void start_receiving();
    /// The acceptor is closed or gone: no new flows; close once no flow remains.
    void stop_listening();

    /// `segment_size` non-zero: `data` is a train of datagrams (send_meta::segment_size).
    /// `wants_bursts`: the flow's layer marks its sends as trains (even single datagrams), so
    /// the socket reads bursts from now on (see receive()).
    void send_to(const std::shared_ptr<udp_server_flow>& flow, sdk::byte_buffer data,
                 std::uint64_t id, std::size_t segment_size, bool wants_bursts);
    /// A flow finished; new datagrams from its remote may start a new flow.
    void forget(const boost::asio::ip::udp::endpoint& remote, const udp_server_flow* flow);

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    const sdk::endpoint& local() const noexcept { return local_; }
    std::size_t max_message_size() const noexcept { return max_message_size_; }
    const udp_settings& settings() const noexcept { return settings_; }

private:
    struct pending_send {
        boost::asio::ip::udp::endpoint to;
        sdk::byte_buffer data;
        std::uint64_t id;
        std::weak_ptr<udp_server_flow> flow;
        std::size_t segment_size = 0;
        std::size_t offset = 0; ///< Of a train: bytes already sent.
    };

    void receive();
    void dispatch(std::size_t n);
    void write();
    /// Sends (the rest of) the front train now, or waits for the socket to take more.
    void send_train_now();
    void write_done(const boost::system::error_code& ec);
    void maybe_close();

    boost::asio::any_io_executor executor_;
    boost::asio::ip::udp::socket socket_;
    udp_settings settings_;
    sdk::endpoint local_;
    std::size_t max_message_size_ = 0;
    std::weak_ptr<sdk::acceptor_events> acceptor_events_;
    bool listening_ = true;
    bool receiving_ = false;
    std::map<boost::asio::ip::udp::endpoint, std::weak_ptr<udp_server_flow>> flows_;
    std::deque<pending_send> queue_;
    bool writing_ = false;
    gso_state gso_;
    std::vector<std::byte> receive_buffer_;
    boost::asio::ip::udp::endpoint sender_;
    bool bursts_ = false; ///< A flow has sent a train: read bursts (see receive()).
    std::uint64_t dropped_ = 0;
};

/// One remote's share of a udp_server_socket.
class udp_server_flow final : public sdk::flow,
                              public std::enable_shared_from_this<udp_server_flow> {
public:
    udp_server_flow(std::shared_ptr<udp_server_socket> socket,
                    boost::asio::ip::udp::endpoint remote);
    ~udp_server_flow() override;

    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }

    const boost::asio::ip::udp::endpoint& remote() const noexcept { return remote_; }

    /// Called by the socket, on the executor.
    void deliver(sdk::byte_buffer data);
    void send_done(std::uint64_t id, std::size_t size, const boost::system::error_code& ec);

private:
    enum class state : std::uint8_t { idle, open, done };

    void finish(const sdk::flow_error& e);
    template <class F> void defer(F f);

    std::shared_ptr<udp_server_socket> socket_;
    boost::asio::ip::udp::endpoint remote_;
    std::weak_ptr<sdk::flow_events> events_;
    state state_ = state::idle;
    bool close_requested_ = false;
    bool aborted_ = false;
    bool finished_ = false;
    std::deque<sdk::byte_buffer> inbox_; ///< Datagrams that arrived before start().
    std::size_t queued_bytes_ = 0;
    std::size_t pending_sends_ = 0;
};

class udp_acceptor final : public sdk::acceptor {
public:
    explicit udp_acceptor(std::shared_ptr<udp_server_socket> socket);
    ~udp_acceptor() override;

    void set_events(std::weak_ptr<sdk::acceptor_events> events) noexcept override;
    void start() noexcept override;
    void close() noexcept override;
    sdk::endpoint local_endpoint() const noexcept override;

private:
    std::shared_ptr<udp_server_socket> socket_;
    std::weak_ptr<sdk::acceptor_events> events_;
    bool closed_ = false;
};

} // namespace post::plugins::udp
