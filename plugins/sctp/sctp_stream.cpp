#include "sctp_stream.hpp"

#include <boost/asio/post.hpp>

namespace post::plugins::sctp {

sctp_stream::sctp_stream(std::shared_ptr<sctp_association> assoc, std::uint16_t id, bool incoming)
    : assoc_(std::move(assoc))
    , id_(id)
    , incoming_(incoming) {}

sctp_stream::~sctp_stream() {
    // Dropped without close or abort: as abort() (reset if others live, else ABORT).
    if (!done_) assoc_->abort_stream(id_, this);
}

void sctp_stream::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void sctp_stream::start() noexcept {
    if (started_ || aborted_) return;
    started_ = true;
    if (end_) {
        // It ended before it was started: report that now, one turn later.
        try {
            boost::asio::post(assoc_->executor(),
                              [self = shared_from_this()] { self->deliver_end(); });
        } catch (...) {
        }
        return;
    }
    assoc_->start_stream(shared_from_this());
}

void sctp_stream::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (done_ || aborted_) return;
    assoc_->send_on(shared_from_this(), std::move(data), meta);
}

void sctp_stream::close() noexcept {
    if (done_ || aborted_ || close_requested_) return;
    assoc_->close_stream(shared_from_this());
}

void sctp_stream::abort() noexcept {
    if (aborted_) return;
    aborted_ = true;
    events_.reset();
    pending_.clear();
    queued_bytes_ = 0;
    inbox_.clear();
    inbox_bytes_ = 0;
    end_.reset();
    const bool was_done = std::exchange(done_, true);
    if (!was_done) assoc_->abort_stream(id_, this);
}

std::shared_ptr<sdk::flow> sctp_stream::fork() noexcept {
    if (done_ || aborted_) return nullptr;
    return assoc_->fork();
}

void sctp_stream::queue_sent(std::uint64_t id) {
    sent_.push_back(id);
    post_report();
}

void sctp_stream::queue_expired(std::uint64_t id) {
    expired_.push_back(id);
    post_report();
}

void sctp_stream::queue_error(std::uint64_t id, sdk::flow_error e) {
    errors_.emplace_back(id, std::move(e));
    post_report();
}

void sctp_stream::post_report() {
    if (report_posted_) return;
    report_posted_ = true;
    boost::asio::post(assoc_->executor(), [self = shared_from_this()] {
        self->report_posted_ = false;
        auto sent = std::exchange(self->sent_, {});
        auto expired = std::exchange(self->expired_, {});
        auto errors = std::exchange(self->errors_, {});
        for (auto id : sent) {
            if (self->aborted_) return;
            if (auto ev = self->events_.lock()) ev->on_sent(id);
        }
        for (auto id : expired) {
            if (self->aborted_) return;
            if (auto ev = self->events_.lock()) ev->on_expired(id);
        }
        for (auto& [id, e] : errors) {
            if (self->aborted_) return;
            if (auto ev = self->events_.lock()) ev->on_send_error(id, e);
        }
    });
}

void sctp_stream::finish(const sdk::flow_error& e, std::vector<std::uint64_t> held, bool later) {
    if (done_) return;
    done_ = true;
    end_report r;
    r.error = e;
    r.open_first = !ready_ && !e;
    if (r.open_first) r.inbox = std::exchange(inbox_, {});
    inbox_.clear();
    inbox_bytes_ = 0;
    r.sent = std::exchange(sent_, {});
    r.expired = std::exchange(expired_, {});
    r.errors = std::exchange(errors_, {});
    for (const auto& p : pending_)
        r.unsent.push_back(p.id);
    pending_.clear();
    queued_bytes_ = 0;
    r.held = std::move(held);
    end_ = std::move(r);
    if (!started_) return; // reported after start()
    if (later) {
        boost::asio::post(assoc_->executor(), [self = shared_from_this()] { self->deliver_end(); });
        return;
    }
    deliver_end();
}

void sctp_stream::deliver_end() noexcept {
    if (!end_) return;
    auto r = std::move(*end_);
    end_.reset();
    auto ev = events_.lock();
    events_.reset();
    if (!ev || aborted_) return;
    auto wanted = [this] { return !aborted_; };
    if (r.open_first) {
        ready_ = true;
        ev->on_ready();
        for (auto& m : r.inbox) {
            if (!wanted()) return;
            ev->on_received(std::move(m), {});
        }
    }
    for (auto id : r.sent)
        if (wanted()) ev->on_sent(id);
    for (auto id : r.expired)
        if (wanted()) ev->on_expired(id);
    for (auto& [id, err] : r.errors)
        if (wanted()) ev->on_send_error(id, err);
    if (!r.error) {
        // Clean: held messages were acknowledged (SHUTDOWN or both resets need that first).
        for (auto id : r.held)
            if (wanted()) ev->on_sent(id);
        for (auto id : r.unsent)
            if (wanted())
                ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                       "sctp: the flow closed before this was sent"});
        sdk::report_end(*ev, {}, {}, wanted);
        return;
    }
    auto failed = std::move(r.held);
    failed.insert(failed.end(), r.unsent.begin(), r.unsent.end());
    sdk::report_end(*ev, r.error, failed, wanted);
}

} // namespace post::plugins::sctp
