#include "quic_stream.hpp"

#include "quic_connection.hpp"

#include <algorithm>

namespace post::plugins::quic {

void put_varint(sdk::byte_buffer& out, std::uint64_t v) {
    auto put = [&out](std::uint64_t x, int bytes, std::uint8_t prefix) {
        for (int i = bytes - 1; i >= 0; --i) {
            auto b = static_cast<std::uint8_t>(x >> (8 * i));
            if (i == bytes - 1) b = static_cast<std::uint8_t>(b | prefix);
            out.push_back(std::byte{b});
        }
    };
    if (v < (1u << 6))
        put(v, 1, 0x00);
    else if (v < (1u << 14))
        put(v, 2, 0x40);
    else if (v < (1u << 30))
        put(v, 4, 0x80);
    else
        put(v, 8, 0xc0);
}

quic_stream::quic_stream(std::shared_ptr<quic_connection> conn, bool first, bool incoming)
    : conn_(std::move(conn))
    , first_(first)
    , incoming_(incoming) {}

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
        if (done_) return refuse(std::errc::broken_pipe, "the stream has ended");
        if (close_requested_)
            return refuse(std::errc::broken_pipe,
                          peer_fin_ ? "the peer closed the stream" : "send after close()");
        const auto limit = conn_->max_message_size();
        if (data.size() > limit)
            return refuse(std::errc::message_size, "message of " + std::to_string(data.size()) +
                                                       " bytes exceeds max-message-size (" +
                                                       std::to_string(limit) + " bytes)");
        out_message m;
        m.id = meta.id;
        m.niceness = meta.niceness;
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
    conn_->schedule();
}

void quic_stream::abort() noexcept {
    if (aborted_) return;
    aborted_ = true;
    events_.reset();
    inbox_.clear();
    sent_.clear();
    send_errors_.clear();
    end_.reset();
    if (!done_) conn_->abort_stream(*this);
    done_ = true;
}

sdk::flow_info quic_stream::info() const noexcept {
    return conn_->info();
}

std::shared_ptr<sdk::flow> quic_stream::fork() noexcept {
    if (aborted_) return nullptr;
    return conn_->fork();
}

bool quic_stream::writable() const noexcept {
    if (id_ < 0 || fin_sent_ || aborted_ || done_) return false;
    return announce_ || !out_.empty() || close_requested_;
}

bool quic_stream::take(const std::uint8_t* p, std::size_t n, std::size_t limit,
                       std::uint64_t& announced) {
    while (n > 0) {
        if (!rx_need_) {
            rx_header_[rx_header_len_++] = *p++;
            --n;
            const std::size_t want = std::size_t{1} << (rx_header_[0] >> 6);
            if (rx_header_len_ < want) continue;
            std::uint64_t v = rx_header_[0] & 0x3f;
            for (std::size_t i = 1; i < want; ++i)
                v = (v << 8) | rx_header_[i];
            rx_header_len_ = 0;
            if (v > limit) {
                announced = v;
                return false;
            }
            rx_need_ = v;
            rx_body_.clear();
            rx_body_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(v, 1 << 20)));
        }
        const std::size_t take_now =
            static_cast<std::size_t>(std::min<std::uint64_t>(*rx_need_ - rx_body_.size(), n));
        const auto* b = reinterpret_cast<const std::byte*>(p);
        rx_body_.insert(rx_body_.end(), b, b + take_now);
        p += take_now;
        n -= take_now;
        if (rx_body_.size() == *rx_need_) {
            inbox_.push_back(std::exchange(rx_body_, {}));
            rx_need_.reset();
        }
    }
    return true;
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
    out_.clear();
    queued_bytes_ = 0;
    rx_body_.clear();
    rx_need_.reset();
}

} // namespace post::plugins::quic
