#include "post_frame_flow.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <algorithm>

namespace post::plugins::framing {

namespace asio = boost::asio;
namespace pf = post::plugins::framing::post_frame;

namespace {

sdk::flow_error out_of_memory(const char* where) {
    return {std::make_error_code(std::errc::not_enough_memory),
            std::string("post-frame: out of memory while ") + where};
}

} // namespace

post_frame_flow::post_frame_flow(asio::any_io_executor ex, std::shared_ptr<sdk::flow> lower,
                                 sdk::role side, post_frame_settings settings, sdk::log_sink* log)
    : executor_(std::move(ex))
    , lower_(std::move(lower))
    , log_(log)
    , side_(side)
    , settings_(settings)
    // Enough below us to keep the stream busy while the next chunks are chosen; an urgent
    // message waits for at most this much (plus what the kernel holds: tcp notsent-lowat).
    , window_(settings.send_window)
    , matcher_(side == sdk::role::client ? pf::responder_preface : pf::initiator_preface)
    , decoder_(settings.limits)
    , timer_(executor_)
    , ack_timer_(executor_)
    , preface_out_(side == sdk::role::client) {}

void post_frame_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
}

void post_frame_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void post_frame_flow::start() noexcept {
    if (!done_) lower_->start();
}

bool post_frame_flow::may_send_data() const noexcept {
    switch (mode_) {
    case mode::framed:
        return true;
    case mode::raw:
        return false; // pump_raw
    case mode::negotiating:
        // The initiator sends at once (no round trip of waiting), except when it may fall back
        // to raw: then only the preface may reach a peer that turns out not to speak post-frame.
        return side_ == sdk::role::client && !settings_.fallback_raw;
    }
    return false;
}

bool post_frame_flow::early_data_possible() const noexcept {
    return !lower_ready_ && side_ == sdk::role::client && mode_ == mode::negotiating &&
           !settings_.fallback_raw && (lower_->info().capabilities & sdk::cap_early_data);
}

void post_frame_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (done_) return;
    try {
        const std::uint64_t limit = settings_.limits.max_message_size;
        if (data.size() > limit) {
            sdk::flow_error e{std::make_error_code(std::errc::message_size),
                              "message of " + std::to_string(data.size()) +
                                  " bytes exceeds max-message-size " + std::to_string(limit)};
            asio::post(executor_, [self = shared_from_this(), id = meta.id, e] {
                if (self->done_) return;
                if (auto ev = self->events_.lock()) ev->on_send_error(id, e);
            });
            return;
        }
        if (close_requested_) {
            asio::post(executor_, [self = shared_from_this(), id = meta.id] {
                if (self->done_) return;
                if (auto ev = self->events_.lock())
                    ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                           "post-frame: send after close()"});
            });
            return;
        }
        queued_bytes_ += data.size();
        pf::outgoing m;
        m.upper_id = meta.id;
        m.niceness = meta.niceness;
        m.deadline = meta.deadline;
        m.idempotent = meta.idempotent;
        m.data = std::move(data);
        scheduler_.push(std::move(m));
        if (meta.deadline && mode_ != mode::raw) arm_timer(*meta.deadline);
        // With the stream idle nothing is gained by waiting: send now. With it busy, the message
        // waits anyway, so coalesce it with whatever else this executor turn sends.
        if (meta.immediate || lower_bytes_ == 0)
            pump(true);
        else
            schedule_flush();
    } catch (...) {
        lower_->abort();
        try {
            asio::post(executor_,
                       [self = shared_from_this()] { self->finish(out_of_memory("sending")); });
        } catch (...) {
            done_ = true;
        }
    }
}

void post_frame_flow::schedule_flush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(executor_, [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->pump(false);
    });
}

void post_frame_flow::schedule_ack() {
    // A reply sent in this executor turn carries the ACK (pump takes control frames along), so
    // first look at the end of the turn; only an ACK still waiting then starts the timer, which
    // coalesces the ACKs of a receiver of bulk data instead of one small write per message.
    // (Arming a timer costs a system call: a request/response exchange should not pay it.)
    if (flush_posted_ || ack_timer_armed_ || ack_check_posted_) return;
    ack_check_posted_ = true;
    asio::post(executor_, [weak = weak_from_this()] {
        auto self = weak.lock();
        if (!self) return;
        self->ack_check_posted_ = false;
        if (!self->done_ && !self->control_.empty()) self->arm_ack_timer();
    });
}

void post_frame_flow::arm_ack_timer() {
    if (ack_timer_armed_) return;
    ack_timer_armed_ = true;
    ack_timer_.expires_after(ack_delay);
    ack_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self) return;
        self->ack_timer_armed_ = false;
        if (!ec && !self->control_.empty()) self->pump(false);
    });
}

void post_frame_flow::pump(bool from_upper) {
    if (done_) return;
    // Early: the preface and idempotent messages, at the head of the queue, go now.
    const bool early = !lower_ready_;
    if (early && !early_data_possible()) return;
    try {
        if (mode_ == mode::raw) {
            pump_raw();
        } else {
            sdk::byte_buffer out;
            if (preface_out_) {
                out.assign(pf::initiator_preface.begin(), pf::initiator_preface.end());
                if (side_ == sdk::role::server)
                    out.assign(pf::responder_preface.begin(), pf::responder_preface.end());
                preface_out_ = false;
            }
            if (!control_.empty()) {
                out.insert(out.end(), control_.begin(), control_.end());
                control_.clear();
            }
            std::vector<completion> completes;
            if (may_send_data()) {
                const auto now = pf::clock::now();
                // The longest a frame written now may take to reach the peer: a smoothed round
                // trip (it includes the queues on the way there). Asked once per pass, and only
                // when a message has a deadline.
                std::optional<pf::clock::duration> transit;
                auto transit_for = [&](const auto& msg) -> pf::clock::duration {
                    if (!msg.deadline) return {};
                    if (!transit) transit = lower_->smoothed_rtt();
                    return *transit;
                };
                while (!scheduler_.empty() && lower_bytes_ + out.size() < window_) {
                    auto& m = scheduler_.front();
                    if (early && !m.idempotent) break;
                    // A message not yet started that cannot arrive in time even if the way
                    // there takes only half a round trip is dropped here, not sent.
                    if (m.expired(now) ||
                        (!m.started() && m.deadline && *m.deadline - now <= transit_for(m) / 2)) {
                        auto gone = scheduler_.pop_front();
                        expire(gone, out);
                        continue;
                    }
                    const std::size_t size = m.data.size();
                    if (!m.started() && size > settings_.chunk_size && size <= max_whole_send &&
                        (lower_bytes_ + out.size() + size <= window_ ||
                         (lower_bytes_ == 0 && size <= window_))) {
                        // It goes down whole without exceeding the window: one chunk, its
                        // payload handed to the lower flow as it is, without a copy.
                        auto whole = scheduler_.pop_front();
                        whole.wire_id = next_wire_id_++;
                        pf::append_whole_header(
                            out, whole.wire_id, settings_.acks, static_cast<std::uint32_t>(size),
                            pf::lifetime_ms(whole.deadline, now, transit_for(whole)));
                        send_lower(std::exchange(out, {}), std::exchange(completes, {}), early);
                        if (settings_.acks)
                            awaiting_ack_.push_back({whole.wire_id, whole.upper_id});
                        send_lower(std::move(whole.data), {{whole.upper_id, whole.wire_id, size}},
                                   early);
                        continue;
                    }
                    const std::size_t n = std::min(settings_.chunk_size, size - m.offset);
                    const bool first = !m.started();
                    if (first) m.wire_id = next_wire_id_++;
                    const bool last = m.offset + n == size;
                    pf::append_data(out, m.wire_id, first, last, settings_.acks, size,
                                    pf::lifetime_ms(m.deadline, now, transit_for(m)),
                                    std::span<const std::byte>(m.data).subspan(m.offset, n));
                    m.offset += n;
                    if (last) {
                        completes.push_back({m.upper_id, m.wire_id, size});
                        if (settings_.acks) awaiting_ack_.push_back({m.wire_id, m.upper_id});
                        scheduler_.pop_front();
                    }
                }
            }
            if (!out.empty()) send_lower(std::move(out), std::move(completes), early);
        }
    } catch (...) {
        lower_->abort();
        return finish(out_of_memory("framing"));
    }
    report_expired(from_upper);
    maybe_close_lower();
}

void post_frame_flow::pump_raw() {
    // No framing, so no interleaving either: whole messages in scheduling order.
    const auto now = pf::clock::now();
    while (!scheduler_.empty() && !done_) {
        auto m = scheduler_.pop_front();
        if (m.expired(now)) {
            sdk::byte_buffer unused;
            expire(m, unused);
            continue;
        }
        const std::size_t size = m.data.size();
        if (size == 0) { // nothing to write; it has left at once
            completion c{m.upper_id, 0, 0};
            send_lower({}, {c});
            continue;
        }
        send_lower(std::move(m.data), {{m.upper_id, 0, size}});
    }
}

void post_frame_flow::send_lower(sdk::byte_buffer out, std::vector<completion> completes,
                                 bool idempotent) {
    sdk::send_meta lm;
    lm.id = next_lower_id_++;
    lm.idempotent = idempotent;
    lower_bytes_ += out.size();
    lower_sends_.push_back({lm.id, out.size(), std::move(completes)});
    lower_->send(std::move(out), lm);
}

void post_frame_flow::expire(pf::outgoing& m, sdk::byte_buffer& out) {
    // Part of it is on the wire: the peer must drop what it has.
    if (m.started()) pf::append_abort(out, m.wire_id);
    queued_bytes_ -= m.data.size();
    expired_.push_back(m.upper_id);
}

void post_frame_flow::report_expired(bool from_upper) {
    if (expired_.empty()) return;
    auto ids = std::move(expired_);
    expired_.clear();
    auto report = [self = shared_from_this(), ids = std::move(ids)] {
        for (auto id : ids) {
            if (self->done_) return;
            if (auto ev = self->events_.lock()) ev->on_expired(id);
        }
    };
    if (from_upper)
        asio::post(executor_, std::move(report));
    else
        report();
}

void post_frame_flow::arm_timer(pf::clock::time_point at) {
    if (timer_at_ && *timer_at_ <= at) return;
    timer_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec == asio::error::operation_aborted) return;
        self->on_timer();
    });
}

void post_frame_flow::on_timer() {
    timer_at_.reset();
    if (done_ || mode_ == mode::raw) return;
    try {
        // A message waiting behind others (or behind a blocked stream) expires on time, not when
        // its turn comes.
        auto gone = scheduler_.take_expired(pf::clock::now());
        for (auto& m : gone)
            expire(m, control_);
        pump(false);
        if (done_) return;
        if (auto next = scheduler_.earliest_deadline()) arm_timer(*next);
    } catch (...) {
        lower_->abort();
        finish(out_of_memory("expiring messages"));
    }
}

void post_frame_flow::close() noexcept {
    if (done_ || close_requested_) return;
    close_requested_ = true;
    // An initiator closing before it framed anything has nothing to negotiate: the preface
    // would only cost both sides a write and a read (and the responder its own preface).
    if (side_ == sdk::role::client && mode_ == mode::negotiating && next_wire_id_ == 1 &&
        scheduler_.empty() && control_.empty() && !matcher_.started())
        preface_out_ = false;
    maybe_close_lower();
}

void post_frame_flow::maybe_close_lower() {
    if (done_ || !close_requested_ || lower_closing_) return;
    // Queued messages and frames go first (as the lower stream does with its own queue).
    if (!scheduler_.empty() || !control_.empty() || flush_posted_ || preface_out_) return;
    lower_closing_ = true;
    lower_->close();
}

void post_frame_flow::abort() noexcept {
    done_ = true;
    aborted_ = true;
    events_.reset();
    boost::system::error_code ec;
    timer_.cancel(ec);
    ack_timer_.cancel(ec);
    scheduler_.clear();
    lower_sends_.clear();
    awaiting_ack_.clear();
    queued_bytes_ = 0;
    lower_->abort();
}

sdk::flow_info post_frame_flow::info() const noexcept {
    sdk::flow_info i = lower_->info();
    i.kind = sdk::edge::message;
    i.max_message_size = static_cast<std::size_t>(settings_.limits.max_message_size);
    const std::uint32_t early = early_data_possible() ? std::uint32_t{sdk::cap_early_data} : 0u;
    if (mode_ == mode::raw) {
        i.capabilities = sdk::cap_ordered;
    } else {
        i.capabilities = sdk::cap_expires_in_flight | sdk::cap_interleaves | sdk::cap_ordered;
        if (settings_.acks) i.capabilities |= sdk::cap_acked;
        if (settings_.limits.partial_delivery > 0) i.capabilities |= sdk::cap_partial;
        i.capabilities |= early;
    }
    return i;
}

void post_frame_flow::on_ready() noexcept {
    if (done_) return;
    lower_ready_ = true;
    if (auto ev = events_.lock()) ev->on_ready();
    if (done_) return;
    try {
        // The initiator's preface leaves with whatever the upper side sends in this turn.
        schedule_flush();
    } catch (...) {
        lower_->abort();
        finish(out_of_memory("starting"));
    }
}

void post_frame_flow::deliver(sdk::byte_buffer data, const sdk::receive_meta& meta) {
    if (done_) return;
    if (auto ev = events_.lock()) ev->on_received(std::move(data), meta);
}

void post_frame_flow::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    if (done_) return;
    try {
        std::span<const std::byte> rest(data);
        if (mode_ == mode::negotiating) {
            std::size_t used = 0;
            switch (matcher_.feed(rest, used)) {
            case pf::preface_matcher::result::need_more:
                return;
            case pf::preface_matcher::result::mismatch: {
                auto seen = matcher_.seen();
                sdk::byte_buffer first(seen.begin(), seen.end());
                first.insert(first.end(), rest.begin() + static_cast<std::ptrdiff_t>(used),
                             rest.end());
                return not_post_frame(std::move(first), false);
            }
            case pf::preface_matcher::result::matched:
                mode_ = mode::framed;
                rest = rest.subspan(used);
                if (side_ == sdk::role::server) preface_out_ = true;
                schedule_flush(); // our preface, and what was held for the decision
                break;
            }
        }
        if (mode_ == mode::raw) return deliver(std::move(data), {});
        if (rest.empty()) return;
        const auto now = pf::clock::now();
        decoded_.clear();
        const bool ok = decoder_.feed(rest, now, decoded_);
        // What came before a malformed frame is intact: handle it first.
        for (auto& d : decoded_) {
            if (done_) return;
            handle_decoded(d, now);
        }
        decoded_.clear();
        if (!ok && !done_) protocol_error("post-frame: " + decoder_.error());
    } catch (...) {
        lower_->abort();
        finish(out_of_memory("receiving"));
    }
}

void post_frame_flow::handle_decoded(pf::decoded& d, pf::clock::time_point now) {
    using kind = pf::decoded::kind;
    switch (d.what) {
    case kind::message: {
        // Judged now, not when this read began (a large read takes a while to decode): the ACK
        // says what the application got, and the kernel hands on at once what comes up here.
        const bool late = d.deadline && *d.deadline <= pf::clock::now();
        // Queued before delivering, so that a reply sent from the handler carries it.
        if (d.ack_requested) {
            pf::append_ack(control_, d.id, late);
            schedule_ack();
        }
        if (!late) {
            sdk::receive_meta meta;
            meta.deadline = d.deadline;
            deliver(std::move(d.data), meta);
        }
        break;
    }
    case kind::part: {
        sdk::receive_meta meta;
        meta.partial = true;
        meta.unit = d.id;
        meta.end_of_message = d.end;
        meta.deadline = d.deadline;
        deliver(std::move(d.data), meta);
        if (d.end && d.ack_requested && !done_) {
            pf::append_ack(control_, d.id, d.deadline && *d.deadline < now);
            schedule_ack();
        }
        break;
    }
    case kind::abort:
        if (log_)
            log_->log(sdk::log_level::debug, "framer",
                      "peer dropped message " + std::to_string(d.id) + " (expired) mid-way");
        break;
    case kind::ack:
        handle_ack(d.id, d.expired);
        break;
    }
}

void post_frame_flow::handle_ack(std::uint64_t wire_id, bool expired) {
    // ACKs come in the order the messages were completed, so this is almost always the front.
    auto it = std::find_if(awaiting_ack_.begin(), awaiting_ack_.end(),
                           [&](const ack_wait& w) { return w.wire_id == wire_id; });
    if (it == awaiting_ack_.end() || it->state != ack_state::waiting)
        return protocol_error("post-frame: ACK for message " + std::to_string(wire_id) +
                              (settings_.acks ? " which was never sent or is already acknowledged"
                                              : " but no ACK was requested"));
    it->state = expired ? ack_state::expired : ack_state::acked;
    if (!it->sent) return; // reported right after its on_sent
    const ack_wait w = *it;
    awaiting_ack_.erase(it);
    report_ack(w);
}

void post_frame_flow::report_ack(const ack_wait& w) {
    if (done_) return;
    auto ev = events_.lock();
    if (!ev) return;
    if (w.state == ack_state::expired)
        ev->on_expired(w.upper_id); // the peer had it complete, but too late
    else
        ev->on_acked(w.upper_id);
}

void post_frame_flow::on_sent(std::uint64_t id) noexcept {
    if (done_ || lower_sends_.empty()) return;
    try {
        auto it = std::find_if(lower_sends_.begin(), lower_sends_.end(),
                               [&](const lower_send& s) { return s.lower_id == id; });
        if (it == lower_sends_.end()) return;
        auto completes = std::move(it->completes);
        lower_bytes_ -= it->bytes;
        lower_sends_.erase(it);
        pump(false); // keep the stream busy before telling the upper side
        for (const auto& c : completes) {
            if (done_) return;
            queued_bytes_ -= c.size;
            if (auto ev = events_.lock()) ev->on_sent(c.upper_id);
            if (done_ || !settings_.acks || mode_ == mode::raw) continue;
            auto a = std::find_if(awaiting_ack_.begin(), awaiting_ack_.end(),
                                  [&](const ack_wait& w) { return w.wire_id == c.wire_id; });
            if (a == awaiting_ack_.end()) continue;
            a->sent = true;
            if (a->state == ack_state::waiting) continue;
            const ack_wait w = *a;
            awaiting_ack_.erase(a);
            report_ack(w);
        }
        maybe_close_lower();
    } catch (...) {
        lower_->abort();
        finish(out_of_memory("completing a send"));
    }
}

void post_frame_flow::on_send_error(std::uint64_t, const sdk::flow_error& e) noexcept {
    // A hole in the byte stream would corrupt every later frame: the flow cannot go on.
    if (done_) return;
    lower_->abort();
    finish(e ? e
             : sdk::flow_error{std::make_error_code(std::errc::io_error),
                               "post-frame: the lower flow failed a send"});
}

void post_frame_flow::not_post_frame(sdk::byte_buffer first_bytes, bool ended) {
    const std::string what =
        "peer does not speak post-frame: " + std::string(ended ? "the stream ended after " : "") +
        "first bytes were " + pf::hex_prefix(first_bytes);
    if (!settings_.fallback_raw) return protocol_error(what);
    mode_ = mode::raw;
    boost::system::error_code ec;
    timer_.cancel(ec);
    ack_timer_.cancel(ec);
    if (log_)
        log_->log(sdk::log_level::warning, "framer",
                  what + "; falling back to a raw byte stream (fallback: raw)");
    // Sends issued meanwhile go out unframed, in scheduling order.
    pump(false);
    if (!first_bytes.empty()) deliver(std::move(first_bytes), {});
}

void post_frame_flow::protocol_error(const std::string& reason) {
    lower_->abort();
    finish({std::make_error_code(std::errc::protocol_error), reason});
}

void post_frame_flow::on_closed(const sdk::flow_error& e) noexcept {
    if (done_) return;
    try {
        if (!e && mode_ == mode::negotiating && matcher_.started()) {
            auto seen = matcher_.seen();
            not_post_frame(sdk::byte_buffer(seen.begin(), seen.end()), true);
            if (done_) return;
        }
        if (!e && mode_ == mode::framed) {
            if (auto t = decoder_.truncation(); !t.empty())
                return finish(
                    {std::make_error_code(std::errc::protocol_error), "post-frame: " + t});
        }
        finish(e);
    } catch (...) {
        finish(out_of_memory("closing"));
    }
}

void post_frame_flow::finish(const sdk::flow_error& e) {
    if (done_) return;
    done_ = true;
    auto ev = events_.lock();
    events_.reset();
    boost::system::error_code ec;
    timer_.cancel(ec);
    ack_timer_.cancel(ec);
    std::vector<std::uint64_t> unsent;
    try {
        for (const auto& s : lower_sends_)
            for (const auto& c : s.completes)
                unsent.push_back(c.upper_id);
        for (auto id : scheduler_.clear())
            unsent.push_back(id);
    } catch (...) {
        // Out of memory: the units are still ended by on_closed.
    }
    lower_sends_.clear();
    awaiting_ack_.clear();
    queued_bytes_ = 0;
    if (e && log_) log_->log(sdk::log_level::debug, "framer", e.reason);
    if (ev) sdk::report_end(*ev, e, unsent, [this] { return !aborted_; });
}

} // namespace post::plugins::framing
