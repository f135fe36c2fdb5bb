#include "http1_flow.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace post::plugins::http {

namespace {
/// Below this body size one buffer (head + body) is cheaper than a second unit for the stream.
constexpr std::size_t copy_threshold = 16 * 1024;
} // namespace

http1_flow::http1_flow(boost::asio::any_io_executor ex, std::shared_ptr<sdk::flow> lower,
                       sdk::role side, std::string default_authority, http1_limits limits,
                       sdk::log_sink* log)
    : executor_(std::move(ex))
    , lower_(std::move(lower))
    , side_(side)
    , default_authority_(std::move(default_authority))
    , limits_(limits)
    , log_(log)
    , decoder_(side == sdk::role::client ? http1_decoder::mode::response
                                         : http1_decoder::mode::request,
               limits) {}

void http1_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
}

void http1_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void http1_flow::start() noexcept {
    if (!done_) lower_->start();
}

void http1_flow::fail_send(std::uint64_t id, std::error_code code, std::string reason) {
    sdk::flow_error e{code, "http1: " + std::move(reason)};
    boost::asio::post(executor_, [self = shared_from_this(), id, e] {
        if (self->done_) return;
        if (auto ev = self->events_.lock()) ev->on_send_error(id, e);
    });
}

void http1_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (done_) return;
    try {
        if (closing_ || local_close_)
            return fail_send(meta.id, std::make_error_code(std::errc::not_connected),
                             "the connection is closing (connection: close)");
        if (data.size() > limits_.max_body)
            return fail_send(meta.id, std::make_error_code(std::errc::message_size),
                             "body of " + std::to_string(data.size()) +
                                 " bytes exceeds max-message-size " +
                                 std::to_string(limits_.max_body));
        if (side_ == sdk::role::client)
            send_request(std::move(data), meta);
        else
            send_response(std::move(data), meta);
    } catch (...) {
        // Out of memory: the stream would lose a message in the middle, so end it. The report
        // is posted: no event reaches the upper side from inside its own call.
        lower_->abort();
        try {
            boost::asio::post(executor_, [self = shared_from_this()] {
                self->finish({std::make_error_code(std::errc::not_enough_memory),
                              "http1: out of memory while sending"});
            });
        } catch (...) {
            done_ = true;
        }
    }
}

void http1_flow::send_request(sdk::byte_buffer data, const sdk::send_meta& meta) {
    std::string head, error;
    sent_request req;
    if (!encode_request(meta.properties, data.size(), default_authority_, head, req, error))
        return fail_send(meta.id, std::make_error_code(std::errc::invalid_argument), error);
    pending_.push_back(req);
    decoder_.expect_response(req.head);
    transmit(std::move(head), std::move(data), true, meta);
}

void http1_flow::send_response(sdk::byte_buffer data, const sdk::send_meta& meta) {
    if (pending_.empty())
        return fail_send(meta.id, std::make_error_code(std::errc::invalid_argument),
                         "no request to answer (a message sent by a server answers the oldest "
                         "unanswered request)");
    std::string head, error;
    bool with_body = false, close = false;
    if (!encode_response(meta.properties, data.size(), pending_.front().head, head, with_body,
                         close, error))
        return fail_send(meta.id, std::make_error_code(std::errc::invalid_argument), error);
    const bool last = close || pending_.front().close;
    pending_.pop_front();
    transmit(std::move(head), std::move(data), with_body, meta);
    if (last) close_after_exchange();
}

void http1_flow::transmit(std::string head, sdk::byte_buffer body, bool with_body,
                          const sdk::send_meta& meta) {
    if (!with_body) body.clear();
    const std::size_t size = head.size() + body.size();
    sdk::send_meta lower_meta;
    lower_meta.niceness = meta.niceness;
    lower_meta.deadline = meta.deadline;
    lower_meta.immediate = meta.immediate;
    lower_meta.idempotent = meta.idempotent;
    const auto* h = reinterpret_cast<const std::byte*>(head.data());
    if (body.size() < copy_threshold) {
        // Small: one buffer, so the stream writes head and body in one segment.
        sdk::byte_buffer unit;
        unit.reserve(size);
        unit.insert(unit.end(), h, h + head.size());
        unit.insert(unit.end(), body.begin(), body.end());
        body = std::move(unit);
    } else {
        // Large: the body moves down without a copy; the stream layer gathers the two.
        lower_meta.id = next_lower_id_++; // the head's id is never looked up
        lower_->send(sdk::byte_buffer(h, h + head.size()), lower_meta);
    }
    lower_meta.id = next_lower_id_++;
    in_flight_.push_back({lower_meta.id, meta.id, size});
    queued_bytes_ += size;
    lower_->send(std::move(body), lower_meta);
}

void http1_flow::close_after_exchange() {
    if (closing_) return;
    closing_ = true;
    if (!lower_closed_) lower_->close();
}

void http1_flow::close() noexcept {
    if (done_ || local_close_) return;
    local_close_ = true;
    if (!closing_) lower_->close();
}

void http1_flow::abort() noexcept {
    done_ = true;
    events_.reset();
    in_flight_.clear();
    queued_bytes_ = 0;
    lower_->abort();
}

sdk::flow_info http1_flow::info() const noexcept {
    sdk::flow_info i = lower_->info();
    i.kind = sdk::edge::message;
    i.max_message_size = static_cast<std::size_t>(limits_.max_body);
    // Requests and responses go whole and in order; early data passes through unchanged.
    i.capabilities &= sdk::cap_ordered | sdk::cap_early_data;
    return i;
}

void http1_flow::on_ready() noexcept {
    if (done_) return;
    if (auto ev = events_.lock()) ev->on_ready();
}

bool http1_flow::deliver(std::vector<http1_message>& messages) {
    for (auto& m : messages) {
        if (done_ || closing_ || stop_reading_) return false;
        bool last = !m.keep_alive;
        if (side_ == sdk::role::client) {
            if (pending_.empty()) {
                protocol_failure("a response arrived without a request");
                return false;
            }
            last = last || pending_.front().close;
            pending_.pop_front();
        } else {
            const auto method = m.properties.find(":method");
            pending_.push_back({method != m.properties.end() && method->second == "HEAD", last});
            // The response to this request is the last one; what the client sent after it is
            // not read (RFC 9112 9.6).
            if (last) stop_reading_ = true;
        }
        sdk::receive_meta meta;
        meta.properties = std::move(m.properties);
        if (auto ev = events_.lock()) ev->on_received(std::move(m.body), meta);
        if (last && side_ == sdk::role::client) close_after_exchange();
    }
    return !done_;
}

void http1_flow::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    if (done_ || closing_ || stop_reading_) return;
    try {
        std::vector<http1_message> messages;
        const bool ok = decoder_.feed(data, messages);
        // Messages completed before the fault are intact: deliver them first.
        if (!deliver(messages)) return;
        if (!ok && !closing_ && !stop_reading_) protocol_failure(decoder_.error());
    } catch (...) {
        lower_->abort();
        finish({std::make_error_code(std::errc::not_enough_memory),
                "http1: out of memory while receiving"});
    }
}

void http1_flow::protocol_failure(const std::string& what) {
    if (done_) return;
    lower_->abort();
    finish({std::make_error_code(std::errc::protocol_error),
            "http1: HTTP from " + lower_->info().remote.to_string() + " rejected: " + what});
}

bool http1_flow::take(std::uint64_t lower_id, in_flight& out) {
    auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                           [&](const in_flight& f) { return f.lower_id == lower_id; });
    if (it == in_flight_.end()) return false;
    out = *it;
    queued_bytes_ -= it->size;
    in_flight_.erase(it);
    return true;
}

void http1_flow::on_sent(std::uint64_t id) noexcept {
    in_flight f;
    if (done_ || !take(id, f)) return;
    if (auto ev = events_.lock()) ev->on_sent(f.upper_id);
}

void http1_flow::on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept {
    in_flight f;
    if (done_ || !take(id, f)) return;
    if (auto ev = events_.lock()) ev->on_send_error(f.upper_id, e);
}

void http1_flow::on_closed(const sdk::flow_error& e) noexcept {
    if (done_) return;
    lower_closed_ = true;
    if (e) {
        // After a connection: close exchange the connection was meant to end anyway.
        return finish(closing_ ? sdk::flow_error{} : e);
    }
    if (!closing_ && !stop_reading_) {
        try {
            // A response delimited by the end of the connection completes now.
            std::vector<http1_message> messages;
            const bool ok = decoder_.finish(messages);
            if (!deliver(messages)) return;
            if (!ok)
                return finish({std::make_error_code(std::errc::protocol_error),
                               "http1: the stream from " + lower_->info().remote.to_string() +
                                   " ended inside a message: " + decoder_.error()});
        } catch (...) {
            return finish({std::make_error_code(std::errc::not_enough_memory),
                           "http1: out of memory while receiving"});
        }
        if (side_ == sdk::role::client && !pending_.empty() && !local_close_ && !closing_)
            return finish({std::make_error_code(std::errc::connection_reset),
                           "http1: the server closed the connection before answering " +
                               std::to_string(pending_.size()) + " request(s)"});
    }
    finish({});
}

void http1_flow::finish(const sdk::flow_error& e) {
    if (done_) return;
    done_ = true;
    auto ev = events_.lock();
    events_.reset();
    in_flight_.clear();
    queued_bytes_ = 0;
    if (e && log_) log_->log(sdk::log_level::debug, "http1", e.reason);
    if (ev) ev->on_closed(e);
}

} // namespace post::plugins::http
