// One SCTP stream of an association, as the sdk::flow the layer above sees. The stream holds its
// own queue and what it still has to report; the association (sctp_association) does the SCTP
// work: it owns the socket, picks what goes to usrsctp next, and delivers what arrives.
//
// Events: start() never reports inside the call. A forked or incoming stream gets on_ready
// posted when the association is up (else at SCTP_COMM_UP); an incoming one then gets what
// arrived before it was started. A stream that ended before start() reports its end after it.
#pragma once

#include "sctp_association.hpp"

#include <utility>

#include <post/sdk.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace post::plugins::sctp {

class sctp_stream final : public sdk::flow, public std::enable_shared_from_this<sctp_stream> {
public:
    sctp_stream(std::shared_ptr<sctp_association> assoc, std::uint16_t id, bool incoming);
    ~sctp_stream() override;
    sctp_stream(const sctp_stream&) = delete;
    sctp_stream& operator=(const sctp_stream&) = delete;

    std::uint16_t stream_id() const noexcept { return id_; }
    /// Peer-initiated (handed to on_incoming_flow), or the restarted association's stream 0.
    bool incoming() const noexcept { return incoming_; }
    const sctp_summary& summary() const noexcept { return assoc_->summary(); }

    // sdk::flow
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override { return assoc_->info(); }
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }
    std::shared_ptr<sdk::flow> fork() noexcept override;

private:
    friend class sctp_association;

    struct pending_send {
        std::uint64_t id;
        sdk::byte_buffer data;
        std::optional<std::chrono::steady_clock::time_point> deadline;
        int niceness;
        bool unordered;
        bool immediate;
        std::uint64_t seq; ///< Association-wide order, among messages of equal niceness.
    };

    /// How the stream ended, kept until it can be reported (after start()).
    struct end_report {
        sdk::flow_error error;
        bool open_first = false; ///< Clean end before on_ready: on_ready and messages first.
        std::deque<sdk::byte_buffer> inbox;
        std::vector<std::uint64_t> sent, expired, unsent, held;
        std::vector<std::pair<std::uint64_t, sdk::flow_error>> errors;
    };

    /// Open: neither closed nor aborted by this side, nor closed by the peer.
    bool open() const noexcept { return !done_ && !aborted_ && !close_requested_ && !peer_closed_; }
    void queue_sent(std::uint64_t id);
    void queue_expired(std::uint64_t id);
    void queue_error(std::uint64_t id, sdk::flow_error e);
    void post_report();
    /// Marks the stream done; reports now, posted (`later`), or after start().
    void finish(const sdk::flow_error& e, std::vector<std::uint64_t> held, bool later);
    void deliver_end() noexcept;

    std::shared_ptr<sctp_association> assoc_;
    std::uint16_t id_;
    bool incoming_;
    std::weak_ptr<sdk::flow_events> events_;

    bool started_ = false;
    bool ready_ = false;
    bool close_requested_ = false;
    bool close_by_reset_ = false; ///< Closed while other streams were open: reset, no SHUTDOWN.
    bool peer_closed_ = false;    ///< The peer reset its side (or shut the association down).
    bool aborted_ = false;
    bool done_ = false;

    std::deque<pending_send> pending_;
    std::size_t queued_bytes_ = 0;
    std::deque<sdk::byte_buffer> inbox_; ///< Arrived before on_ready.
    std::size_t inbox_bytes_ = 0;

    std::vector<std::uint64_t> sent_, expired_;
    std::vector<std::pair<std::uint64_t, sdk::flow_error>> errors_;
    bool report_posted_ = false;
    std::optional<end_report> end_;
};

} // namespace post::plugins::sctp
