// One SCTP association (usrsctp, AF_CONN, one-to-one socket) over one lower datagram flow, and
// the stream flows (sctp_stream) it carries. The layer's open() returns stream 0; fork() on any
// stream adds another stream without a handshake; a message on a stream id the peer opened
// creates a stream flow that is handed to on_incoming_flow of the first open stream.
//
// usrsctp sees the association as one AF_CONN address: its own pointer, registered with the
// process stack (sctp_stack). Datagrams from below go to usrsctp_conninput; packets usrsctp
// writes come back through the stack's outbox and go down as one lower send each.
//
// Client: once the lower flow is ready, a socket bound to (this, port) connects to (this, port);
// the association is up at SCTP_COMM_UP. Server: starting stream 0 binds a listening socket to
// (this, port) before the lower flow delivers the peer's INIT; the association it accepts is
// ours, and the listening socket closes.
//
// Stream ids: the client forks even ids, the server odd ones (as WebRTC does), below the
// negotiated outbound count, so both sides never pick the same id. A stream is closed with an
// RFC 6525 outgoing reset; the peer answers with its own, and an id reset both ways is free
// again. Closing or aborting the last open stream ends the association (SHUTDOWN / ABORT).
//
// Ownership: stream flows own the association (shared_ptr); the association knows its streams
// by weak reference, and owns the lower flow. Everything runs on the executor.
#pragma once

#include "sctp_options.hpp"
#include "sctp_stack.hpp"

#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <post/sdk.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace post::plugins::sctp {

class sctp_stream;

/// What the association saw; for logs and tests.
struct sctp_summary {
    std::uint16_t outbound_streams = 0; ///< Negotiated (0 before the association is up).
    std::uint16_t inbound_streams = 0;
    bool peer_supports_pr = false;
    bool peer_supports_reconfig = false; ///< RFC 6525 stream reset (sac_info at COMM_UP).
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;
    std::uint64_t messages_abandoned = 0; ///< SCTP_SEND_FAILED_EVENT (PR-SCTP TTL ran out).
    std::uint64_t unordered_received = 0; ///< Messages whose rcv_flags carried SCTP_UNORDERED.
    std::uint64_t incoming_streams = 0;   ///< Peer-initiated stream flows created.
    std::uint64_t streams_reset_in = 0;   ///< Incoming stream resets (the peer closed a stream).
    std::uint64_t messages_dropped = 0;   ///< On refused or aborted streams.
    std::uint64_t restarts = 0;           ///< SCTP_RESTART (the peer restarted, RFC 9260 5.2.4).
};

class sctp_association final : public sdk::flow_events,
                               public sctp_endpoint,
                               public std::enable_shared_from_this<sctp_association> {
public:
    /// A new association over `lower` and its stream 0 (not started).
    static std::shared_ptr<sctp_stream> open(boost::asio::any_io_executor ex,
                                             std::shared_ptr<sctp_stack> stack,
                                             const sctp_settings& settings,
                                             std::shared_ptr<sdk::flow> lower, sdk::open_params p);

    sctp_association(boost::asio::any_io_executor ex, std::shared_ptr<sctp_stack> stack,
                     const sctp_settings& settings, std::shared_ptr<sdk::flow> lower,
                     sdk::open_params p); // use open()
    ~sctp_association() override;
    sctp_association(const sctp_association&) = delete;
    sctp_association& operator=(const sctp_association&) = delete;

    const sctp_summary& summary() const noexcept { return summary_; }
    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

    // For sctp_stream: its sdk::flow calls, on the executor.
    void start_stream(const std::shared_ptr<sctp_stream>& s) noexcept;
    void send_on(const std::shared_ptr<sctp_stream>& s, sdk::byte_buffer data,
                 const sdk::send_meta& meta) noexcept;
    void close_stream(const std::shared_ptr<sctp_stream>& s) noexcept;
    /// `who` has already dropped its own state; it may be in its destructor.
    void abort_stream(std::uint16_t id, const sctp_stream* who) noexcept;
    std::shared_ptr<sdk::flow> fork() noexcept;
    sdk::flow_info info() const noexcept;

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

    /// One stream id in use: by a flow, or waiting for its reset to finish, or retired.
    struct slot {
        std::weak_ptr<sctp_stream> flow;
        const sctp_stream* raw = nullptr; ///< Identity of `flow` (also while it is destroyed).
        bool out_reset_requested = false;
        bool out_reset_done = false;
        bool in_reset = false;
        bool retired = false;     ///< Could not be reset: never used again.
        bool drop_logged = false; ///< Messages for no flow were logged once.
        int ss_value = -1;        ///< SCTP_SS_VALUE set on usrsctp; -1 = not set yet.
    };

    /// A message with a deadline in usrsctp: on_sent waits until the peer has everything.
    struct held_send {
        std::weak_ptr<sctp_stream> stream;
        const sctp_stream* raw = nullptr;
        std::uint64_t id = 0;
        std::chrono::steady_clock::time_point deadline;
        std::size_t bytes = 0;
    };

    bool client() const noexcept { return params_.side == sdk::role::client; }
    void* key() noexcept { return this; }
    std::string peer() const;
    void log(sdk::log_level level, const std::string& text) const noexcept;
    void attach();

    bool configure(struct socket* so, sdk::flow_error& err);
    bool open_listener(sdk::flow_error& err);
    bool open_client(sdk::flow_error& err);
    void try_accept();
    void note_assoc_info(const std::byte* info, std::size_t len, std::uint16_t out,
                         std::uint16_t in);
    void established();
    void restarted();
    void read_all();
    void handle_notification(const sdk::byte_buffer& n);
    void on_stream_reset(std::uint16_t flags, const std::vector<std::uint16_t>& ids);
    void on_send_failed(const sdk::byte_buffer& n);
    void deliver(std::uint16_t sid, sdk::byte_buffer m);
    void incoming(std::uint16_t sid, sdk::byte_buffer m);
    void drop(std::uint16_t sid, std::size_t bytes);
    std::shared_ptr<sdk::flow_events> first_open_events();
    bool other_open_streams(const sctp_stream* except);
    void request_reset(std::uint16_t sid);
    void retire(std::uint16_t sid, const std::string& why);
    void check_slot(std::uint16_t sid);
    void mark_ready(const std::shared_ptr<sctp_stream>& s);
    void write_pending();
    void release_held_if_acked();
    /// Reads the socket again once a held message's lifetime has passed (see the .cpp).
    void arm_held_timer();
    void maybe_shutdown();
    void shutdown_complete();
    void peer_shut_down();
    /// Hand usrsctp's queued packets to the lower flow.
    void flush();
    void on_handshake_timer();
    /// Close sockets: gracefully (the association is already down) or with ABORT.
    void close_sockets(bool send_abort);
    void fail(const sdk::flow_error& e);
    void fail_later(sdk::flow_error e);
    /// Ends every stream flow with `e` (empty: clean); the association is done.
    void end_all(const sdk::flow_error& e);
    /// Ends one stream flow (its held messages too); events are posted inside upper calls.
    void finish_stream(const std::shared_ptr<sctp_stream>& s, const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<sctp_stack> stack_;
    sctp_settings settings_;
    std::shared_ptr<sdk::flow> lower_;
    sdk::open_params params_;
    boost::asio::steady_timer handshake_timer_;
    boost::asio::steady_timer held_timer_;
    bool held_timer_armed_ = false;

    struct socket* sock_ = nullptr;   ///< The association's socket.
    struct socket* listen_ = nullptr; ///< Server role, until the association is accepted.
    bool registered_ = false;

    state state_ = state::idle;
    bool shutdown_requested_ = false; ///< The last open stream was closed.
    bool peer_closed_ = false;        ///< The peer sent SHUTDOWN (or EOF was read).
    bool lower_closed_ = false;
    bool ended_ = false;
    bool in_upper_call_ = false;
    bool dry_seen_ = false;      ///< SCTP_SENDER_DRY_EVENT (when SCTP_GET_SNDBUF_USE fails).
    bool counts_known_ = false;  ///< Stream counts came from SCTP_ASSOC_CHANGE.
    bool logged_beyond_ = false; ///< Peer stream ids beyond our outbound count, logged once.

    std::map<std::uint16_t, slot> slots_;
    std::map<std::uint32_t, held_send> held_; ///< By snd_context.
    std::uint32_t next_context_ = 1;
    std::uint64_t send_seq_ = 0;
    std::uint64_t lower_next_id_ = 1;

    std::map<std::uint16_t, sdk::byte_buffer> partial_; ///< Messages being reassembled.
    sdk::byte_buffer notification_;
    sctp_summary summary_;

    static constexpr std::size_t read_chunk = 64 * 1024;
    std::unique_ptr<std::byte[]> read_buffer_{new std::byte[read_chunk]};

    using upper_call = sdk::upper_call_scope;
};

} // namespace post::plugins::sctp
