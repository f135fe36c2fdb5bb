// One TCP connection seen as a stream flow.
#pragma once

#include "tcp_common.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace post::plugins::tcp {

class tcp_flow final : public sdk::flow, public std::enable_shared_from_this<tcp_flow> {
public:
    /// Active side: connects to `p.remote` (after binding `p.local` when set) on start().
    tcp_flow(const boost::asio::any_io_executor& ex, tcp_settings settings, sdk::open_params p);
    /// Passive side: wraps a socket the acceptor accepted.
    /// An accepted socket. `local` and `remote` as accept() reported them: a wildcard
    /// `local` is asked of the socket (a connection has one definite address).
    tcp_flow(boost::asio::ip::tcp::socket socket, tcp_settings settings, sdk::endpoint local,
             sdk::endpoint remote);

    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    /// close() without the half-close: the socket closes once the queue is written, without
    /// waiting for the peer's FIN (the upper layer has ended the conversation itself).
    void release() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }
    std::chrono::microseconds smoothed_rtt() const noexcept override;

    /// Apply nodelay / keep-alive / notsent-lowat to a connected socket. Failures are logged,
    /// not fatal: the connection works without them.
    static void apply_socket_options(boost::asio::ip::tcp::socket& s, const tcp_settings& st);

private:
    enum class state : std::uint8_t { idle, connecting, open, done };

    struct pending_send {
        sdk::byte_buffer data;
        std::uint64_t id;
        bool idempotent = false;
    };

    /// `in_start`: called from start(), so a failure is reported one executor turn later.
    void connect(bool in_start);
    /// Fast Open: connect with the leading idempotent sends in the SYN (sendmsg MSG_FASTOPEN).
    /// Returns false when it did not start a connection (the caller connects normally).
    bool connect_with_data(const boost::asio::ip::tcp::endpoint& remote);
    /// While the connect is pending: the handshake may be over already (loopback completes it
    /// inside connect()), so try the queue once without waiting for the connect's completion,
    /// which costs a trip through the reactor before the first byte leaves.
    void write_while_connecting();
    /// `n` bytes from the front of the queue went before the connection was reported open.
    void take_sent_early(std::size_t n);
    void on_connected(const boost::system::error_code& ec);
    void become_open();
    void read();
    /// After the upper side asked to close while handling received data: read what is
    /// already here without waiting, then shut down or finish.
    void read_before_shutdown();
    void write();
    void maybe_shutdown();
    /// Terminal: closes the socket and reports on_closed(e) (unless aborted).
    void finish(const sdk::flow_error& e);
    /// Run `f` later on the executor, so no event reaches the upper side from inside its call.
    template <class F> void defer(F f);

    boost::asio::ip::tcp::socket socket_;
    boost::asio::steady_timer grace_timer_;
    tcp_settings settings_;
    sdk::open_params params_;
    std::weak_ptr<sdk::flow_events> events_;
    state state_ = state::idle;

    std::deque<pending_send> queue_;
    std::size_t in_flight_ = 0; ///< Entries at the front of queue_ being written now.
    std::size_t queued_bytes_ = 0;
    bool writing_ = false;

    bool close_requested_ = false; ///< close() called, or the peer finished sending.
    bool send_shut_ = false;       ///< Our FIN is out.
    bool peer_eof_ = false;
    bool aborted_ = false;    ///< No events at all after abort(), even from inside finish().
    bool release_ = false;    ///< release(): no wait for the peer's FIN.
    bool delivering_ = false; ///< Inside on_received from the read handler.
    /// Sends that went whole before the connection was reported open (with the SYN, or by
    /// write_while_connecting): reported on_sent once it is.
    std::vector<std::uint64_t> sent_early_;
    bool connect_pending_ = false;   ///< async_connect issued, its completion not yet run.
    bool early_write_tried_ = false; ///< write_while_connecting runs once per connection.

    /// Large reads mean fewer system calls and handler runs per byte under bulk transfer. Not
    /// zero-filled (new[] default-initialises), so an idle connection only costs the pages it
    /// touches.
    static constexpr std::size_t read_buffer_size = 256 * 1024;
    std::unique_ptr<std::byte[]> read_buffer_{new std::byte[read_buffer_size]};
    sdk::endpoint local_;
    sdk::endpoint remote_;
};

} // namespace post::plugins::tcp
