#include "length_prefix_flow.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace post::plugins::framing {

namespace {
/// Below this payload size copying into one buffer is cheaper than a second unit.
constexpr std::size_t copy_threshold = 16 * 1024;
} // namespace

length_prefix_flow::length_prefix_flow(boost::asio::any_io_executor ex,
                                       std::shared_ptr<sdk::flow> lower,
                                       std::uint64_t max_message_size, sdk::log_sink* log)
    : executor_(std::move(ex))
    , lower_(std::move(lower))
    , log_(log)
    , decoder_(max_message_size) {}

void length_prefix_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
}

void length_prefix_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void length_prefix_flow::start() noexcept {
    if (!done_) lower_->start();
}

void length_prefix_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (done_) return;
    try {
        const std::uint64_t limit = decoder_.max_message_size();
        if (data.size() > limit) {
            sdk::flow_error e{std::make_error_code(std::errc::message_size),
                              "message of " + std::to_string(data.size()) +
                                  " bytes exceeds max-message-size " + std::to_string(limit)};
            boost::asio::post(executor_, [self = shared_from_this(), id = meta.id, e] {
                if (self->done_) return;
                if (auto ev = self->events_.lock()) ev->on_send_error(id, e);
            });
            return;
        }
        const auto header = encode_frame_header(static_cast<std::uint32_t>(data.size()));
        const std::size_t size = frame_header_size + data.size();
        sdk::send_meta lower_meta = meta;
        if (data.size() < copy_threshold) {
            // Small: one buffer, so the stream layer writes header and payload in one segment
            // (a lone 4-byte header would cost the peer an extra wake-up per message).
            sdk::byte_buffer frame(size);
            std::memcpy(frame.data(), header.data(), header.size());
            if (!data.empty())
                std::memcpy(frame.data() + frame_header_size, data.data(), data.size());
            data = std::move(frame);
        } else {
            // Large: the payload moves down without a copy; the stream layer gathers the two.
            lower_meta.id = next_lower_id_++; // the header's id is never looked up
            lower_->send(sdk::byte_buffer(header.begin(), header.end()), lower_meta);
        }
        lower_meta.id = next_lower_id_++;
        in_flight_.push_back({lower_meta.id, meta.id, size});
        queued_bytes_ += size;
        lower_->send(std::move(data), lower_meta);
    } catch (...) {
        // Out of memory: the stream would lose a message in the middle, so end it. The report
        // is posted: no event reaches the upper side from inside its own call.
        lower_->abort();
        try {
            boost::asio::post(executor_, [self = shared_from_this()] {
                self->finish({std::make_error_code(std::errc::not_enough_memory),
                              "length-prefix: out of memory while sending"});
            });
        } catch (...) {
            done_ = true;
        }
    }
}

void length_prefix_flow::close() noexcept {
    if (!done_) lower_->close();
}

void length_prefix_flow::abort() noexcept {
    done_ = true;
    events_.reset();
    in_flight_.clear();
    queued_bytes_ = 0;
    lower_->abort();
}

sdk::flow_info length_prefix_flow::info() const noexcept {
    sdk::flow_info i = lower_->info();
    i.kind = sdk::edge::message;
    i.max_message_size = static_cast<std::size_t>(decoder_.max_message_size());
    return i;
}

void length_prefix_flow::on_ready() noexcept {
    if (done_) return;
    if (auto ev = events_.lock()) ev->on_ready();
}

void length_prefix_flow::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    if (done_) return;
    try {
        std::vector<frame_buffer> messages;
        const bool ok = decoder_.feed(data, messages);
        // Messages completed before a malformed header are intact: deliver them first.
        for (auto& m : messages) {
            if (done_) return;
            if (auto ev = events_.lock()) ev->on_received(std::move(m), {});
        }
        if (!ok && !done_) {
            lower_->abort();
            finish({std::make_error_code(std::errc::protocol_error),
                    "length-prefix: malformed frame from " + lower_->info().remote.to_string() +
                        ": " + decoder_.error()});
        }
    } catch (...) {
        lower_->abort();
        finish({std::make_error_code(std::errc::not_enough_memory),
                "length-prefix: out of memory while receiving"});
    }
}

bool length_prefix_flow::take(std::uint64_t lower_id, in_flight& out) {
    auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                           [&](const in_flight& f) { return f.lower_id == lower_id; });
    if (it == in_flight_.end()) return false;
    out = *it;
    queued_bytes_ -= it->size;
    in_flight_.erase(it);
    return true;
}

void length_prefix_flow::on_sent(std::uint64_t id) noexcept {
    in_flight f;
    if (done_ || !take(id, f)) return;
    if (auto ev = events_.lock()) ev->on_sent(f.upper_id);
}

void length_prefix_flow::on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept {
    in_flight f;
    if (done_ || !take(id, f)) return;
    if (auto ev = events_.lock()) ev->on_send_error(f.upper_id, e);
}

void length_prefix_flow::on_closed(const sdk::flow_error& e) noexcept {
    if (!e && decoder_.mid_frame()) {
        return finish({std::make_error_code(std::errc::protocol_error),
                       "length-prefix: the stream ended inside a frame (" +
                           std::to_string(decoder_.buffered()) +
                           " bytes of an unfinished frame received)"});
    }
    finish(e);
}

void length_prefix_flow::finish(const sdk::flow_error& e) {
    if (done_) return;
    done_ = true;
    auto ev = events_.lock();
    events_.reset();
    in_flight_.clear();
    queued_bytes_ = 0;
    if (e && log_) log_->log(sdk::log_level::debug, "length-prefix", e.reason);
    if (ev) ev->on_closed(e);
}

} // namespace post::plugins::framing
