// One QUIC stream, as the sdk::flow the layer above sees: its queue of framed
// messages, the bytes ngtcp2 still references until they are acknowledged, the reassembly of
// what arrives, and the events it still has to report. The connection (quic_connection) does
// the QUIC work and calls the events; this class only keeps the stream's state.
//
// Framing (docs/quic.md): each message is a QUIC variable-length integer (RFC 9000 16) giving
// its length, then its bytes. A stream carries messages in order; quic_framing.hpp encodes and
// reassembles them.
#pragma once

#include <utility>

#include "quic_framing.hpp"

#include <post/sdk.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace post::plugins::quic {

class quic_connection;

/// Bytes of a message handed to ngtcp2: kept (at a fixed heap address) until acknowledged.
struct retained_bytes {
    std::uint64_t end = 0; ///< Stream offset just past these bytes.
    sdk::byte_buffer header;
    sdk::byte_buffer data;
};

class quic_stream final : public sdk::flow, public std::enable_shared_from_this<quic_stream> {
public:
    /// `first`: the flow open() returned (client: the stream it opens after the handshake;
    /// server: the first stream the client opens). `incoming`: opened by the peer. `dir`:
    /// send_only opens a unidirectional stream; a peer's unidirectional stream is receive_only
    /// (docs/quic.md "Unidirectional streams").
    quic_stream(std::shared_ptr<quic_connection> conn, bool first, bool incoming,
                sdk::flow_direction dir = sdk::flow_direction::bidirectional);
    ~quic_stream() override;
    quic_stream(const quic_stream&) = delete;
    quic_stream& operator=(const quic_stream&) = delete;

    /// -1 until the stream exists in QUIC.
    std::int64_t stream_id() const noexcept { return id_; }
    bool incoming() const noexcept { return incoming_; }
    sdk::flow_direction direction() const noexcept { return dir_; }
    quic_connection& connection() const noexcept { return *conn_; }

    // sdk::flow
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }
    std::shared_ptr<sdk::flow> fork() noexcept override;
    /// Moves the whole connection (docs/quic.md "Migration").
    bool migrate(std::shared_ptr<sdk::flow> new_lower, sdk::flow_error& err) noexcept override;

private:
    friend class quic_connection;

    struct out_message {
        std::uint64_t id = 0;
        int niceness = 0;
        sdk::byte_buffer header;
        sdk::byte_buffer data;
        std::size_t written = 0; ///< Of header + data, handed to ngtcp2.
        std::optional<std::chrono::steady_clock::time_point> deadline;
        bool idempotent = false; ///< May go in 0-RTT.
        std::size_t size() const noexcept { return header.size() + data.size(); }
    };

    /// A message written whole in 0-RTT: on_sent waits for the server's verdict; on rejection
    /// it is written again from these bytes.
    struct early_message {
        out_message msg;
        std::uint64_t end = 0; ///< Stream offset just past it.
    };

    /// Open: neither closed nor aborted here, nor ended.
    bool open() const noexcept { return !done_ && !aborted_ && !close_requested_; }
    bool writable() const noexcept;
    /// Feeds received stream bytes to the reassembly; false when a length exceeds the
    /// connection's max-message-size (`announced` is set to it). `limit` is that same
    /// max-message-size, which the reassembly was built with. `early`: the bytes came in 0-RTT
    /// packets (the messages they complete are marked early-data).
    bool take(const std::uint8_t* p, std::size_t n, std::size_t limit, bool early,
              std::uint64_t& announced);
    /// The bytes received so far end inside a message: a FIN here truncates it.
    bool mid_message() const noexcept { return rx_.mid_message(); }
    /// Ends the flow (reported later by the connection). Unwritten messages fail.
    void finish(sdk::flow_error e);
    /// Bound to a unidirectional stream the peer opened: what was queued fails (the server's
    /// first flow may have been sent on, or closed, before the client's stream arrived).
    void become_receive_only();
    bool receive_only() const noexcept { return dir_ == sdk::flow_direction::receive_only; }
    bool send_only() const noexcept { return dir_ == sdk::flow_direction::send_only; }

    std::shared_ptr<quic_connection> conn_;
    std::int64_t id_ = -1;
    bool first_;
    bool incoming_;
    sdk::flow_direction dir_;
    std::weak_ptr<sdk::flow_events> events_;

    bool started_ = false;
    bool ready_ = false;
    bool close_requested_ = false;
    bool announce_ = false; ///< A 0-length STREAM frame is due, so the peer sees the stream.
    bool fin_sent_ = false;
    bool peer_fin_ = false;
    bool aborted_ = false;
    bool done_ = false;
    bool end_reported_ = false;
    bool waited_ = false;          ///< Waited for MAX_STREAMS credit (counted once).
    bool credit_returned_ = false; ///< A peer unidirectional stream's credit was given back.
    bool path_changed_ = false;    ///< The connection moved: on_path_changed is due.
    std::uint64_t order_ = 0;      ///< When it was last served (round robin among equals).

    // Sending
    std::deque<out_message> out_;
    std::deque<retained_bytes> retained_;
    std::deque<early_message> early_;
    std::uint64_t acked_upto_ = 0; ///< Largest acknowledged stream offset (0-RTT bookkeeping).
    std::uint64_t tx_offset_ = 0;
    std::size_t queued_bytes_ = 0;
    std::vector<std::uint64_t> sent_;
    std::vector<std::pair<std::uint64_t, sdk::flow_error>> send_errors_;
    std::vector<std::uint64_t> expired_; ///< Messages and datagrams dropped at their deadline.

    // Receiving
    message_reassembler rx_;
    std::deque<sdk::byte_buffer> inbox_; ///< Complete messages not yet delivered.
    std::uint64_t held_credit_ = 0;      ///< Bytes taken while not ready: window not reopened.

    std::optional<sdk::flow_error> end_; ///< How it ended, until reported.

    // 0-RTT (receiving; docs/quic.md "0-RTT")
    /// Per message of inbox_: some of its bytes came in 0-RTT, so it may be a replay.
    std::deque<bool> inbox_early_;
    bool partial_early_ = false; ///< The incomplete message has bytes that came in 0-RTT.
    bool rx_early_ = false;      ///< Stream data came in 0-RTT (the server accepted early data).
};

} // namespace post::plugins::quic
