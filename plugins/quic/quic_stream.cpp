#include "quic_stream.hpp"

#include "quic_connection.hpp"

#include <type_traits>

namespace post::plugins::quic {

static_assert(std::is_same_v<message_bytes, sdk::byte_buffer>,
              "the reassembly hands its messages to the flow as they are");

namespace {

sdk::flow_error receive_only_error() {
    return {std::make_error_code(std::errc::operation_not_permitted),
            "quic: this stream is unidirectional and only receives (the peer opened it); "
            "nothing can be sent on it"};
}

} // namespace

quic_stream::quic_stream(std::shared_ptr<quic_connection> conn, bool first, bool incoming,
                         sdk::flow_direction dir)
    : conn_(std::move(conn))
    , first_(first)
    , incoming_(incoming)
    , dir_(dir)
    , rx_(conn_->max_message_size()) {}

quic_stream::~quic_stream() {
    // Dropped without close or abort: as abort(). What ngtcp2 still references moves to the
    // connection, which keeps it until QUIC is done with the stream.
    if (!aborted_ && !done_) conn_->abort_stream(*this);
    conn_->adopt_orphans(*this);
}

void quic_stream::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void quic_stream::start() noexcept {
    if (started_ || aborted_) return;
    started_ = true;
    conn_->start_stream(*this);
}

void quic_stream::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (aborted_) return;
    try {
        auto refuse = [&](std::errc code, std::string why) {
            send_errors_.emplace_back(
                meta.id, sdk::flow_error{std::make_error_code(code), "quic: " + std::move(why)});
            conn_->schedule();
        };
        if (receive_only()) {
            send_errors_.emplace_back(meta.id, receive_only_error());
            return conn_->schedule();
        }
        if (done_) return refuse(std::errc::broken_pipe, "the stream has ended");
        if (close_requested_)
            return refuse(std::errc::broken_pipe,
                          peer_fin_ ? "the peer closed the stream" : "send after close()");
        if (auto r = meta.properties.find("reliable");
            r != meta.properties.end() && r->second == "false")
            return conn_->send_datagram(*this, std::move(data), meta);
        const auto limit = conn_->max_message_size();
        if (data.size() > limit)
            return refuse(std::errc::message_size, "message of " + std::to_string(data.size()) +
                                                       " bytes exceeds max-message-size (" +
                                                       std::to_string(limit) + " bytes)");
        out_message m;
        m.id = meta.id;
        m.niceness = meta.niceness;
        m.deadline = meta.deadline;
        m.idempotent = meta.idempotent;
        put_varint(m.header, data.size());
        m.data = std::move(data);
        queued_bytes_ += m.size();
        out_.push_back(std::move(m));
        conn_->schedule();
    } catch (...) {
        conn_->fail_later({std::make_error_code(std::errc::not_enough_memory),
                           "quic: out of memory while sending"});
    }
}

void quic_stream::close() noexcept {
    if (done_ || aborted_ || close_requested_) return;
    close_requested_ = true;
    // Nothing to FIN on a stream that only receives: stop reading it (STOP_SENDING, no error)
    // unless the peer has finished it already.
    if (receive_only() && !peer_fin_) conn_->stop_reading(*this);
    conn_->schedule();
}

void quic_stream::abort() noexcept {
    if (aborted_) return;
    aborted_ = true;
    events_.reset();
    inbox_.clear();
    inbox_early_.clear();
    sent_.clear();
    expired_.clear();
    send_errors_.clear();
    end_.reset();
    if (!done_) conn_->abort_stream(*this);
    done_ = true;
}

sdk::flow_info quic_stream::info() const noexcept {
    auto i = conn_->info();
    if (send_only()) i.capabilities |= sdk::cap_send_only;
    if (receive_only()) i.capabilities |= sdk::cap_receive_only;
    return i;
}

std::shared_ptr<sdk::flow> quic_stream::fork() noexcept {
    if (aborted_) return nullptr;
    // A send-only flow forks send-only; a receive-only one cannot open a stream the peer
    // sends on, so it forks a bidirectional one.
    return conn_->fork(send_only() ? sdk::flow_direction::send_only
                                   : sdk::flow_direction::bidirectional);
}

bool quic_stream::migrate(std::shared_ptr<sdk::flow> new_lower, sdk::flow_error& err) noexcept {
    if (aborted_ || done_) {
        err = {std::make_error_code(std::errc::not_connected), "quic: this stream has ended"};
        return false;
    }
    return conn_->migrate(std::move(new_lower), err);
}

bool quic_stream::writable() const noexcept {
    if (id_ < 0 || fin_sent_ || aborted_ || done_ || receive_only()) return false;
    // 0-RTT: only idempotent messages, and no FIN (the server may refuse it all).
    if (conn_->early_window()) return !out_.empty() && out_.front().idempotent;
    return announce_ || !out_.empty() || close_requested_;
}

bool quic_stream::take(const std::uint8_t* p, std::size_t n, std::size_t, bool early,
                       std::uint64_t& announced) {
    const auto before = inbox_.size();
    const auto r = rx_.feed(p, n, inbox_);
    // A message is early when any of its bytes was: the first one completed here may have
    // begun in an earlier (0-RTT) chunk, the others lie wholly in this one.
    for (std::size_t k = before; k < inbox_.size(); ++k)
        inbox_early_.push_back(early || (k == before && partial_early_));
    if (inbox_.size() > before) partial_early_ = false;
    if (early && rx_.mid_message()) partial_early_ = true;
    if (early) rx_early_ = true;
    if (!r) announced = r.announced;
    return static_cast<bool>(r);
}

void quic_stream::become_receive_only() {
    dir_ = sdk::flow_direction::receive_only;
    for (auto& m : out_)
        send_errors_.emplace_back(m.id, receive_only_error());
    for (auto& e : early_)
        send_errors_.emplace_back(e.msg.id, receive_only_error());
    out_.clear();
    early_.clear();
    queued_bytes_ = 0;
    // Closed before the stream arrived: nothing to FIN, so stop reading it now.
    if (close_requested_ && !done_) conn_->stop_reading(*this);
}

void quic_stream::finish(sdk::flow_error e) {
    if (done_) return;
    done_ = true;
    end_ = std::move(e);
    for (auto& m : out_) {
        // Bytes already handed to ngtcp2 stay referenced until the stream is closed in QUIC.
        if (m.written > 0)
            retained_.push_back({tx_offset_, std::move(m.header), std::move(m.data)});
        send_errors_.emplace_back(
            m.id, *end_ ? *end_
                        : sdk::flow_error{std::make_error_code(std::errc::broken_pipe),
                                          "quic: the stream ended before this was sent"});
    }
    for (auto& e : early_) {
        retained_.push_back({e.end, std::move(e.msg.header), std::move(e.msg.data)});
        send_errors_.emplace_back(
            e.msg.id, *end_ ? *end_
                            : sdk::flow_error{std::make_error_code(std::errc::broken_pipe),
                                              "quic: the stream ended before this was sent"});
    }
    early_.clear();
    out_.clear();
    queued_bytes_ = 0;
    rx_.reset();
    partial_early_ = false;
}

} // namespace post::plugins::quic
