// One SCTP association (usrsctp, AF_CONN) over a lower datagram flow, for the client and the
// server role; one carrier per association in this stage (stream 0). Multistreaming (fork,
// on_incoming_flow: one carrier per stream of one association) is the next stage: the socket
// is one-to-one style and asks for `streams` streams already, so it can be added here.
//
// usrsctp sees this flow as one AF_CONN address: its own pointer, registered with the process
// stack (sctp_stack). Datagrams from below go to usrsctp_conninput; packets usrsctp writes come
// back through the stack's outbox and go down as one lower send each.
//
// Client: once the lower flow is ready, a socket bound to (this, port) connects to
// (this, port); the association is up at SCTP_COMM_UP. Server: start() binds a listening socket
// to (this, port) before the lower flow delivers the peer's INIT; the association it accepts
// is the flow's, and the listening socket closes.
//
// Messages: one send is one SCTP user message (usrsctp_sendv without explicit EOR), on stream
// 0, ordered. Received parts are joined until MSG_EOR, bounded by max-message-size. A deadline
// becomes PR-SCTP timed reliability (SCTP_PR_SCTP_TTL) when the peer supports it.
//
// Close: SHUTDOWN once everything queued is in usrsctp, then on_closed (clean) at
// SHUTDOWN_COMPLETE; a peer's ABORT or a lost peer ends the flow with an error naming it.
#pragma once

#include "sctp_options.hpp"
#include "sctp_stack.hpp"

#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <post/sdk.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post::plugins::sctp {

/// What the flow saw; for logs and tests.
struct sctp_summary {
    std::uint16_t outbound_streams = 0; ///< Negotiated (0 before the association is up).
    std::uint16_t inbound_streams = 0;
    bool peer_supports_pr = false;
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;
    std::uint64_t messages_abandoned = 0; ///< SCTP_SEND_FAILED_EVENT (PR-SCTP TTL ran out).
};

class sctp_flow final : public sdk::flow,
                        public sdk::flow_events,
                        public sctp_endpoint,
                        public std::enable_shared_from_this<sctp_flow> {
public:
    sctp_flow(boost::asio::any_io_executor ex, std::shared_ptr<sctp_stack> stack,
              const sctp_settings& settings, std::shared_ptr<sdk::flow> lower, sdk::open_params p);
    ~sctp_flow() override;
    sctp_flow(const sctp_flow&) = delete;
    sctp_flow& operator=(const sctp_flow&) = delete;

    /// Register with the lower flow and the stack; once, after construction.
    void attach();

    const sctp_summary& summary() const noexcept { return summary_; }

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
    void on_sent(std::uint64_t) noexcept override {}
    void on_send_error(std::uint64_t, const sdk::flow_error&) noexcept override {}
    void on_closed(const sdk::flow_error& e) noexcept override;

    // sctp_endpoint (from the stack, on the executor)
    void on_packets(std::vector<sdk::byte_buffer> packets) noexcept override;
    void on_socket_event() noexcept override;

private:
    enum class state : std::uint8_t { idle, connecting, established, shutting_down, done };

    struct pending_send {
        std::uint64_t id;
        sdk::byte_buffer data;
        std::optional<std::chrono::steady_clock::time_point> deadline;
    };

    bool client() const noexcept { return params_.side == sdk::role::client; }
    void* key() noexcept { return this; }
    std::string peer() const;
    void log(sdk::log_level level, const std::string& text) const noexcept;

    bool configure(struct socket* so, sdk::flow_error& err);
    bool open_listener(sdk::flow_error& err);
    bool open_client(sdk::flow_error& err);
    void try_accept();
    void established();
    void read_all();
    void handle_notification(const sdk::byte_buffer& n);
    void write_pending();
    void maybe_shutdown();
    void shutdown_complete();
    void peer_shut_down();
    /// Hand usrsctp's queued packets to the lower flow.
    void flush();
    void report_sent_later();
    void on_handshake_timer();
    /// Close sockets: gracefully (the association is already down) or with ABORT.
    void close_sockets(bool send_abort);
    void fail(const sdk::flow_error& e);
    void fail_later(sdk::flow_error e);
    void finish(const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<sctp_stack> stack_;
    sctp_settings settings_;
    std::shared_ptr<sdk::flow> lower_;
    sdk::open_params params_;
    std::weak_ptr<sdk::flow_events> events_;
    boost::asio::steady_timer handshake_timer_;

    struct socket* sock_ = nullptr;   ///< The association's socket.
    struct socket* listen_ = nullptr; ///< Server role, until the association is accepted.
    bool registered_ = false;

    state state_ = state::idle;
    bool started_ = false;
    bool close_requested_ = false;
    bool peer_closed_ = false; ///< The peer sent SHUTDOWN (or EOF was read).
    bool lower_closed_ = false;
    bool aborted_ = false;
    bool in_upper_call_ = false;

    std::deque<pending_send> pending_;
    std::size_t queued_bytes_ = 0;
    std::vector<std::uint64_t> sent_; ///< Handed to usrsctp, on_sent not yet reported.
    std::vector<std::uint64_t> expired_;
    bool report_posted_ = false;
    std::uint64_t lower_next_id_ = 1;

    sdk::byte_buffer message_;      ///< The message being reassembled.
    sdk::byte_buffer notification_; ///< A notification being reassembled.
    sctp_summary summary_;

    static constexpr std::size_t read_chunk = 64 * 1024;
    std::unique_ptr<std::byte[]> read_buffer_{new std::byte[read_chunk]};

    struct upper_call {
        explicit upper_call(bool& flag)
            : flag_(flag)
            , outer_(flag) {
            flag_ = true;
        }
        ~upper_call() { flag_ = outer_; }
        upper_call(const upper_call&) = delete;
        upper_call& operator=(const upper_call&) = delete;
        bool& flag_;
        bool outer_;
    };
};

} // namespace post::plugins::sctp
