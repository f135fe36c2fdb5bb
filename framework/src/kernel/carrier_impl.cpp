#include <utility>

#include "carrier_impl.hpp"
#include "establishment.hpp"
#include "listener_impl.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace post::detail {

namespace asio = boost::asio;

namespace {
/// Messages a peer can make us hold while the application does not read: bounded.
constexpr std::size_t max_inbox_bytes = 64u << 20;
/// For stacks that do not interleave, how much may wait inside the stack before the scheduler
/// stops handing messages down: enough to keep a socket busy, small enough that a more urgent
/// message sent later is not stuck behind much.
constexpr std::size_t stack_window_bytes = 256u << 10;
} // namespace

carrier_impl::carrier_impl(std::shared_ptr<context_state> ctx, std::shared_ptr<association> assoc,
                           std::shared_ptr<const merged_policy> policy)
    : ctx_(std::move(ctx))
    , association_(std::move(assoc))
    , policy_(std::move(policy))
    , expiry_timer_(ctx_->executor) {}

carrier_impl::~carrier_impl() {
    if (race_) race_->cancel();
    if (active_) active_->abort();
}

void carrier_impl::start_initiate(const remote& r, std::shared_ptr<prepared_policy> prepared,
                                  local from) {
    ctx_->keep(shared_from_this());
    remote_ = r;
    prepared_ = prepared;
    from_ = from;
    race_ = std::make_shared<establishment>(weak_from_this(), ctx_, r, std::move(prepared),
                                            std::move(from));
    asio::post(ctx_->executor, [race = race_] { race->start(); });
}

void carrier_impl::fail_now(error e) {
    ctx_->keep(shared_from_this());
    asio::post(ctx_->executor,
               [self = shared_from_this(), e = std::move(e)] { self->race_failed(e); });
}

void carrier_impl::adopt(std::shared_ptr<transient_impl> t,
                         std::function<void(std::shared_ptr<carrier_impl>, const error&)> done) {
    ctx_->keep(shared_from_this());
    established_ = std::move(done);
    active_ = std::move(t);
    active_->set_owner(weak_from_this());
    active_->top().start();
}

std::shared_ptr<carrier_impl> carrier_impl::fork() {
    auto twin = std::make_shared<carrier_impl>(ctx_, association_, policy_);
    ctx_->keep(twin);
    // active_ and the stack are touched on the executor only; posted (never inline) so that
    // the caller sets its handlers before any event of the new carrier.
    asio::post(ctx_->executor, [self = shared_from_this(), twin] { self->fork_into(twin); });
    return twin;
}

std::shared_ptr<transient_impl> carrier_impl::sibling(carrier_impl& c, std::shared_ptr<sdk::flow> f,
                                                      const transient_impl& on) const {
    c.remote_ = remote_;
    c.prepared_ = prepared_;
    c.from_ = from_;
    c.listener_ = listener_;
    auto t = std::make_shared<transient_impl>(on.stack(), on.address());
    t->attach(c.weak_from_this(), std::move(f));
    return t;
}

void carrier_impl::fork_into(const std::shared_ptr<carrier_impl>& twin) {
    // A carrier with its transient (active, or a stream not ready yet: adopted, no race) can
    // ask its top flow for another stream; the layer says no when it cannot.
    const bool has_flow =
        state_ == carrier_state::active || (state_ == carrier_state::establishing && !race_);
    if (has_flow && active_) {
        if (auto f = active_->top().fork()) {
            auto t = sibling(*twin, std::move(f), *active_);
            ctx_->emit(trace_event{trace_event::kind::forked, std::chrono::steady_clock::now(),
                                   association_ ? association_->key() : active_->address(),
                                   active_->stack()->names,
                                   "new stream on the connection to " + active_->address()});
            twin->adopt(std::move(t), nullptr);
            return;
        }
    }
    if (remote_) {
        twin->start_initiate(*remote_, prepared_, from_);
        return;
    }
    twin->fail_now({make_error_code(errc::not_supported),
                    "fork() on an accepted carrier needs a stack that opens streams (SCTP, "
                    "QUIC) and a live connection: an accepted carrier does not know how to "
                    "reach its peer again"});
}

void carrier_impl::transient_incoming(transient_impl& t, std::shared_ptr<sdk::flow> incoming) {
    auto c = std::make_shared<carrier_impl>(ctx_, association_, policy_);
    auto nt = sibling(*c, std::move(incoming), t);
    ctx_->emit(trace_event{trace_event::kind::incoming, std::chrono::steady_clock::now(),
                           t.address(), t.stack()->names,
                           "the peer opened a stream on the connection"});
    if (auto l = listener_.lock()) {
        l->adopt_stream(std::move(c), std::move(nt));
        return;
    }
    // An initiated carrier: the application takes peer streams through on_incoming.
    c->adopt(std::move(nt),
             [weak = weak_from_this()](std::shared_ptr<carrier_impl> c, const error& e) {
                 auto self = weak.lock();
                 if (self && !e) self->incoming_ready(std::move(c));
             });
}

void carrier_impl::incoming_ready(std::shared_ptr<carrier_impl> c) {
    if (on_incoming) {
        on_incoming(carrier(std::move(c)));
        return;
    }
    constexpr std::size_t max_waiting = 64;
    std::erase_if(incoming_backlog_, [](const std::shared_ptr<carrier_impl>& w) {
        return w->state() == carrier_state::closed;
    });
    if (incoming_backlog_.size() >= max_waiting) {
        c->abort();
        return;
    }
    incoming_backlog_.push_back(std::move(c));
}

void carrier_impl::set_incoming_handler(std::function<void(carrier)> h) {
    asio::dispatch(ctx_->executor, [self = shared_from_this(), h = std::move(h)]() mutable {
        self->on_incoming = std::move(h);
        while (self->on_incoming && !self->incoming_backlog_.empty()) {
            auto c = std::move(self->incoming_backlog_.front());
            self->incoming_backlog_.pop_front();
            self->on_incoming(carrier(std::move(c)));
        }
    });
}

void carrier_impl::become_dormant(const sdk::flow_error& why) {
    ctx_->emit(trace_event{trace_event::kind::closed, std::chrono::steady_clock::now(),
                           association_ ? association_->key() : std::string{}, stack(),
                           "dormant: " + (why ? why.reason : std::string("peer closed"))});
    state_ = carrier_state::dormant;
    update_watch();
    std::shared_ptr<transient_impl> gone;
    {
        std::lock_guard lock(inspect_mutex_);
        gone = std::move(active_);
    }
    // We are inside one of its events: let it go once that has returned.
    asio::post(ctx_->executor, [gone = std::move(gone)] {});
    // What the stack had not finished sending is lost with the connection; the scheduler's
    // queue is kept for the next one.
    for (auto& [id, done] : std::exchange(in_flight_, {})) {
        scheduler_.record(id, message_scheduler::outcome::failed);
        error e{make_error_code(errc::closed),
                "the connection went away before the message was sent"};
        if (done) done(e.code, id);
        if (on_send_error) on_send_error(id, e);
    }
    stack_closed_ = false;
    if (!scheduler_.empty()) reactivate();
}

void carrier_impl::reactivate() {
    state_ = carrier_state::establishing;
    race_ = std::make_shared<establishment>(weak_from_this(), ctx_, *remote_, prepared_, from_);
    asio::post(ctx_->executor, [race = race_] { race->start(); });
}

void carrier_impl::race_won(std::shared_ptr<transient_impl> winner) {
    race_.reset();
    become_active(std::move(winner));
}

void carrier_impl::race_failed(error e) {
    race_.reset();
    finish(e, true);
}

void carrier_impl::offer_early(std::shared_ptr<transient_impl> t) {
    if (early_ || state_ != carrier_state::establishing || !t) return;
    early_ = std::move(t);
    pump();
}

bool carrier_impl::ours(const transient_impl& t) const {
    return active_.get() == &t || (early_.get() == &t && state_ == carrier_state::establishing);
}

void carrier_impl::reclaim_early(const transient_impl& winner) {
    auto early = std::exchange(early_, nullptr);
    auto copies = std::exchange(early_copies_, {});
    if (!early || early.get() == &winner) return; // the winner's stack re-sends what it must
    for (auto& [id, c] : copies) {
        auto it = in_flight_.find(id);
        if (it == in_flight_.end()) continue;
        scheduler_.requeue({std::move(c.msg), std::move(it->second), c.deadline});
        in_flight_.erase(it);
    }
}

void carrier_impl::become_active(std::shared_ptr<transient_impl> t) {
    reclaim_early(*t);
    {
        std::lock_guard lock(inspect_mutex_);
        active_ = std::move(t);
    }
    state_ = carrier_state::active;
    if (established_) {
        auto cb = std::move(established_);
        established_ = nullptr;
        cb(shared_from_this(), {});
    }
    auto waiters = std::move(ready_waiters_);
    ready_waiters_.clear();
    for (auto& w : waiters)
        w({});
    update_watch();
    if (on_ready) on_ready();
    // Messages sent while establishing go out now, most urgent first.
    if (state_ == carrier_state::active) pump();
    if (close_requested_ && state_ == carrier_state::active) close();
}

// ---- public operations ----

message_id carrier_impl::send(message m,
                              unique_function<void(boost::system::error_code, message_id)> done) {
    message_id id = next_id_++;
    m.set_id(id);
    // Dispatched (inline on the executor's thread: no extra trip through the scheduler on the
    // latency path) and in order with close(). No event runs inside send() all the same:
    // stacks post theirs, and fail_send() posts ours.
    // The lifetime counts from the send call.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    if (const auto& life = m.properties().lifetime)
        deadline = std::chrono::steady_clock::now() + *life;
    asio::dispatch(ctx_->executor,
                   [self = shared_from_this(),
                    p = pending_send{std::move(m), std::move(done), deadline}]() mutable {
                       self->accept_send(std::move(p));
                   });
    return id;
}

void carrier_impl::accept_send(pending_send p) {
    switch (state_.load()) {
    case carrier_state::establishing:
    case carrier_state::active:
    case carrier_state::dormant:
        break;
    default:
        fail_send(std::move(p), {make_error_code(errc::closed), "carrier is closed"});
        return;
    }
    if (auto bad = scheduler_.check(p.msg)) {
        fail_send(std::move(p), std::move(*bad));
        return;
    }
    if (p.msg.properties().niceness < 0) {
        fail_send(std::move(p), {make_error_code(errc::invalid_argument),
                                 "niceness must be 0 (most urgent) or more, got " +
                                     std::to_string(p.msg.properties().niceness)});
        return;
    }
    scheduler_.enqueue(std::move(p));
    if (state_ == carrier_state::dormant) reactivate();
    pump();
}

void carrier_impl::pump() {
    const auto now = std::chrono::steady_clock::now();
    for (auto& e : scheduler_.take_expired(now))
        expire_later(std::move(e));
    // A failure can doom the successors of the failed message in turn.
    for (auto doomed = scheduler_.take_doomed(); !doomed.empty();
         doomed = scheduler_.take_doomed()) {
        for (auto& [e, why] : doomed)
            fail_send(std::move(e), std::move(why));
    }
    const auto sending = [this] {
        return state_ == carrier_state::active || state_ == carrier_state::closing;
    };
    // Early data: while establishing, idempotent messages at the head of the queue may go on
    // the attempt that accepts them. A copy is kept until that attempt has won.
    while (state_ == carrier_state::establishing && early_ && has_room(*early_)) {
        auto next =
            scheduler_.pop_ready_if([](const message& m) { return m.properties().idempotent; });
        if (!next) break;
        if (next->deadline && *next->deadline <= now) {
            scheduler_.record(next->msg.id(), message_scheduler::outcome::expired);
            expire_later(std::move(*next));
            continue;
        }
        message copy(std::vector<std::byte>(next->msg.data().begin(), next->msg.data().end()));
        copy.set_id(next->msg.id());
        copy.properties() = next->msg.properties();
        early_copies_.emplace(next->msg.id(), early_copy{std::move(copy), next->deadline});
        transmit(std::move(*next), *early_);
    }
    while (sending() && stack_has_room()) {
        auto next = scheduler_.pop_ready();
        if (!next) break;
        if (next->deadline && *next->deadline <= now) {
            scheduler_.record(next->msg.id(), message_scheduler::outcome::expired);
            expire_later(std::move(*next));
            continue;
        }
        transmit(std::move(*next), *active_);
    }
    // A graceful close waits until the stack has every message, then closes the stack (which
    // sends what it holds before it ends).
    if (state_ == carrier_state::closing && scheduler_.empty() && !stack_closed_) {
        stack_closed_ = true;
        active_->top().close();
    }
    arm_expiry_timer();
}

bool carrier_impl::has_room(transient_impl& t) const {
    auto& top = t.top();
    if (top.info().capabilities & sdk::cap_interleaves) return true;
    return top.queued_bytes() < stack_window_bytes;
}

void carrier_impl::arm_expiry_timer() {
    const auto next = scheduler_.next_deadline();
    if (next == timer_deadline_) return;
    timer_deadline_ = next;
    if (!next) {
        expiry_timer_.cancel();
        return;
    }
    expiry_timer_.expires_at(*next);
    expiry_timer_.async_wait([weak = weak_from_this(), at = *next](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->timer_deadline_ != at) return;
        self->timer_deadline_.reset();
        if (self->state_ == carrier_state::establishing || self->state_ == carrier_state::active ||
            self->state_ == carrier_state::closing)
            self->pump();
    });
}

void carrier_impl::expire_later(pending_send p) {
    asio::post(ctx_->executor, [self = shared_from_this(), p = std::move(p)]() mutable {
        const auto id = p.msg.id();
        if (p.done) p.done(make_error_code(errc::expired), id);
        if (self->on_expired) self->on_expired(id);
    });
}

void carrier_impl::fail_send(pending_send p, error e) {
    asio::post(ctx_->executor,
               [self = shared_from_this(), p = std::move(p), e = std::move(e)]() mutable {
                   if (p.done) p.done(e.code, p.msg.id());
                   if (self->on_send_error) self->on_send_error(p.msg.id(), e);
               });
}

void carrier_impl::transmit(pending_send p, transient_impl& t) {
    const message_id id = p.msg.id();
    const std::size_t limit = t.top().info().max_message_size;
    if (limit != 0 && p.msg.size() > limit) {
        const auto size = p.msg.size();
        scheduler_.record(id, message_scheduler::outcome::failed);
        fail_send(std::move(p),
                  {make_error_code(errc::message_too_large),
                   "message of " + std::to_string(size) + " bytes exceeds the limit of " +
                       std::to_string(limit) + " bytes of stack " + t.stack()->label()});
        return;
    }
    const auto& props = p.msg.properties();
    sdk::send_meta meta;
    meta.id = id;
    meta.niceness = props.niceness;
    meta.deadline = p.deadline;
    meta.immediate = props.immediate;
    meta.idempotent = props.idempotent;
    meta.properties = props.extra;
    if (!props.ordered) meta.properties["ordered"] = "false";
    if (!props.reliable) meta.properties["reliable"] = "false";
    if (p.done)
        in_flight_.emplace(id, std::move(p.done));
    else
        in_flight_.emplace(id, nullptr);
    t.top().send(std::move(p.msg.payload()), meta);
}

void carrier_impl::receive(unique_function<void(boost::system::error_code, message)> h) {
    asio::dispatch(ctx_->executor, [self = shared_from_this(), h = std::move(h)]() mutable {
        self->drain_inbox(); // drops what expired while waiting
        if (!self->inbox_.empty()) {
            auto r = std::move(self->inbox_.front());
            self->inbox_.pop_front();
            self->inbox_bytes_ -= r.msg.size();
            h({}, std::move(r.msg));
        } else if (self->state_ == carrier_state::closed) {
            h(make_error_code(errc::closed), message{});
        } else {
            self->receivers_.push_back(std::move(h));
        }
    });
}

void carrier_impl::wait_ready(unique_function<void(boost::system::error_code)> h) {
    asio::dispatch(ctx_->executor, [self = shared_from_this(), h = std::move(h)]() mutable {
        switch (self->state_.load()) {
        case carrier_state::establishing:
        case carrier_state::dormant: // ready again once the next send re-establishes it
            self->ready_waiters_.push_back(std::move(h));
            break;
        case carrier_state::closed:
            h(self->last_error_ ? self->last_error_->code : make_error_code(errc::closed));
            break;
        default:
            h({});
        }
    });
}

void carrier_impl::close() {
    // Dispatched like send(), so a close() never overtakes a message sent before it.
    asio::dispatch(ctx_->executor, [self = shared_from_this()] {
        switch (self->state_.load()) {
        case carrier_state::establishing:
            self->close_requested_ = true;
            break;
        case carrier_state::dormant:
            self->finish({}, false);
            break;
        case carrier_state::active:
            self->state_ = carrier_state::closing;
            self->pump();
            break;
        default:
            break;
        }
    });
}

void carrier_impl::abort() {
    asio::post(ctx_->executor, [self = shared_from_this()] {
        if (self->state_ == carrier_state::closed) return;
        if (self->race_) self->race_->cancel();
        self->race_.reset();
        if (self->active_) self->active_->abort();
        self->finish({make_error_code(errc::cancelled), "carrier aborted"}, false);
    });
}

void carrier_impl::set_received_handler(std::function<void(message)> h) {
    on_received = std::move(h);
    asio::post(ctx_->executor, [self = shared_from_this()] { self->drain_inbox(); });
}

void carrier_impl::drain_inbox() {
    const auto now = std::chrono::steady_clock::now();
    // A message is never handed over after its lifetime: those that ran out while waiting go.
    std::erase_if(inbox_, [&](const received& r) {
        if (!r.deadline || *r.deadline > now) return false;
        inbox_bytes_ -= r.msg.size();
        return true;
    });
    while (on_received && !inbox_.empty()) {
        auto r = std::move(inbox_.front());
        inbox_.pop_front();
        inbox_bytes_ -= r.msg.size();
        on_received(std::move(r.msg));
    }
}

// ---- events from the transient ----

void carrier_impl::transient_ready(transient_impl& t) {
    if (race_) {
        race_->on_ready(t);
        return;
    }
    if (active_.get() == &t && state_ == carrier_state::establishing) become_active(active_);
}

void carrier_impl::transient_received(transient_impl& t, sdk::byte_buffer data,
                                      const sdk::receive_meta& meta) {
    if (active_.get() != &t) return;
    // No deadline check here: the layer that set meta.deadline has just judged the message on
    // time, and may have told the peer so (post-frame's ACK); a second look with a later clock
    // could drop what the sender is told was delivered. The deadline still applies to messages
    // that wait in the inbox for the application (drain_inbox).
    message m(std::move(data));
    if (meta.partial) {
        // Every part of one message carries that message's id.
        auto [it, fresh] = partial_ids_.try_emplace(meta.unit, 0);
        if (fresh) it->second = next_id_++;
        m.set_id(it->second);
        m.set_partial(true, meta.end_of_message);
        if (meta.end_of_message) partial_ids_.erase(it);
    } else {
        m.set_id(next_id_++);
    }
    if (meta.from) m.set_sender(*meta.from);
    if (!meta.properties.empty()) m.properties().extra = meta.properties;
    deliver({std::move(m), meta.deadline});
}

void carrier_impl::deliver(received r) {
    if (!receivers_.empty()) {
        auto h = std::move(receivers_.front());
        receivers_.pop_front();
        h({}, std::move(r.msg));
        return;
    }
    if (on_received) {
        on_received(std::move(r.msg));
        return;
    }
    inbox_bytes_ += r.msg.size();
    inbox_.push_back(std::move(r));
    if (inbox_bytes_ > max_inbox_bytes) {
        active_->abort();
        finish({make_error_code(errc::protocol_error),
                "more than " + std::to_string(max_inbox_bytes >> 20) +
                    " MiB of received messages are waiting: the application is not reading"},
               true);
    }
}

void carrier_impl::complete_send(message_id id, const error& e) {
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) return;
    auto done = std::move(it->second);
    in_flight_.erase(it);
    early_copies_.erase(id);
    const bool expired = e.code == make_error_code(errc::expired);
    scheduler_.record(id, !e        ? message_scheduler::outcome::sent
                          : expired ? message_scheduler::outcome::expired
                                    : message_scheduler::outcome::failed);
    if (done) done(e.code, id);
    if (expired) {
        if (on_expired) on_expired(id);
    } else if (e) {
        if (on_send_error) on_send_error(id, e);
    } else if (on_sent) {
        on_sent(id);
    }
    // The stack has room again, and successors of this message may go (or fail) now.
    if (state_ == carrier_state::active || state_ == carrier_state::closing) pump();
}

void carrier_impl::transient_sent(transient_impl& t, std::uint64_t id) {
    if (ours(t)) complete_send(id, {});
}

void carrier_impl::transient_expired(transient_impl& t, std::uint64_t id) {
    if (!ours(t)) return;
    if (in_flight_.count(id))
        return complete_send(id, {make_error_code(errc::expired), "message expired"});
    // After `sent`: the peer had the whole message only after its lifetime and did not deliver
    // it (post-frame's ACK with EXPIRED). The message left the stack already; only the event is
    // left to report, once.
    if (scheduler_.outcome_of(id) != message_scheduler::outcome::sent) return;
    scheduler_.record(id, message_scheduler::outcome::expired);
    if (on_expired) on_expired(id);
}

void carrier_impl::transient_acked(transient_impl& t, std::uint64_t id) {
    if (!ours(t)) return;
    scheduler_.record(id, message_scheduler::outcome::acked);
    if (on_acked) on_acked(id);
}

void carrier_impl::transient_send_error(transient_impl& t, std::uint64_t id,
                                        const sdk::flow_error& e) {
    // An early-data attempt that fails while racing loses nothing: its messages wait in
    // early_copies_ for the winner (or fail with the carrier if nothing wins).
    if (early_.get() == &t && state_ == carrier_state::establishing) return;
    if (!ours(t)) return;
    auto code = e.code == std::errc::message_size ? make_error_code(errc::message_too_large)
                : e.code == std::errc::timed_out  ? make_error_code(errc::expired)
                // A one-way flow that only receives (a peer's QUIC unidirectional stream).
                : e.code == std::errc::operation_not_permitted
                    ? make_error_code(errc::not_supported)
                    : make_error_code(errc::protocol_error);
    complete_send(id, {code, e.reason.empty() ? e.code.message() : e.reason});
}

void carrier_impl::transient_closed(transient_impl& t, const sdk::flow_error& e) {
    if (race_) {
        race_->on_closed(t, e);
        return;
    }
    if (active_.get() != &t) return;
    if (state_ == carrier_state::establishing && !remote_ &&
        e.code == std::errc::already_connected) {
        // The layer gave this accepted flow to a connection it already has (a QUIC client
        // that moved to a new address): not a connection of its own, nothing to report.
        withdrawn_ = true;
        finish({make_error_code(errc::closed), e.reason}, false);
        return;
    }
    if (policy_->effective.connection.dormant && remote_ && state_ == carrier_state::active) {
        become_dormant(e);
        return;
    }
    if (!e) {
        finish({}, false);
        return;
    }
    auto code = e.code == std::errc::protocol_error || e.code == std::errc::bad_message
                    ? make_error_code(errc::protocol_error)
                    : make_error_code(errc::closed);
    finish({code, e.reason.empty() ? e.code.message() : e.reason}, true);
}

void carrier_impl::finish(const error& e, bool report) {
    if (state_ == carrier_state::closed) return;
    const bool was_establishing = state_ == carrier_state::establishing;
    state_ = carrier_state::closed;
    update_watch();
    early_.reset(); // its messages are in in_flight_, failed below
    early_copies_.clear();
    if (e) {
        std::lock_guard lock(inspect_mutex_);
        last_error_ = e;
    }
    auto self = shared_from_this(); // handlers may drop the last handle
    const auto code = e ? e.code : make_error_code(errc::closed);
    if (established_) {
        auto cb = std::move(established_);
        established_ = nullptr;
        cb(self, e ? e : error{make_error_code(errc::closed), "closed before ready"});
    }
    for (auto& w : std::exchange(ready_waiters_, {}))
        w(code);
    expiry_timer_.cancel();
    timer_deadline_.reset();
    for (auto& p : scheduler_.take_all()) {
        if (p.done) p.done(code, p.msg.id());
        if (on_send_error)
            on_send_error(p.msg.id(),
                          {code, was_establishing ? "carrier closed before ready"
                                                  : "carrier closed before it was sent"});
    }
    for (auto& [id, done] : std::exchange(in_flight_, {})) {
        if (done) done(make_error_code(errc::closed), id);
    }
    for (auto& r : std::exchange(receivers_, {}))
        r(make_error_code(errc::closed), message{});
    if (e && report) {
        if (on_error) on_error(e);
    } else if (!was_establishing || !e) {
        if (on_closed) on_closed();
    }
    if (ctx_->tracing)
        ctx_->emit(trace_event{trace_event::kind::closed, std::chrono::steady_clock::now(),
                               association_ ? association_->key() : std::string{}, stack(),
                               e ? e.reason : "clean"});
    // Handlers often capture the carrier itself; dropping them breaks that cycle. Posted, as
    // we may be inside one of them right now.
    asio::post(ctx_->executor, [self] {
        self->clear_handlers();
        self->ctx_->release(self.get());
    });
}

void carrier_impl::clear_handlers() {
    on_ready = nullptr;
    on_received = nullptr;
    on_sent = nullptr;
    on_send_error = nullptr;
    on_expired = nullptr;
    on_acked = nullptr;
    on_closed = nullptr;
    on_error = nullptr;
    on_incoming = nullptr;
    on_path_changed = nullptr;
    // Peer streams nobody took can no longer be handed out.
    for (auto& c : std::exchange(incoming_backlog_, {}))
        c->abort();
}

void carrier_impl::shutdown() noexcept {
    if (race_) race_->cancel();
    race_.reset();
    if (active_) active_->abort();
    if (early_) early_->abort();
    early_.reset();
    early_copies_.clear();
    state_ = carrier_state::closed;
    clear_handlers();
    expiry_timer_.cancel();
    scheduler_.take_all();
    in_flight_.clear();
    receivers_.clear();
    ready_waiters_.clear();
}

// ---- inspection ----

std::vector<std::string> carrier_impl::stack() const {
    std::lock_guard lock(inspect_mutex_);
    return active_ ? active_->stack()->names : std::vector<std::string>{};
}

std::optional<path> carrier_impl::current_path() const {
    std::lock_guard lock(inspect_mutex_);
    if (!active_ || state_ == carrier_state::establishing) return std::nullopt;
    return active_->info().path;
}

std::optional<transient_info> carrier_impl::transient() const {
    std::lock_guard lock(inspect_mutex_);
    if (!active_) return std::nullopt;
    return active_->info();
}

std::size_t carrier_impl::max_message_size() const {
    std::lock_guard lock(inspect_mutex_);
    if (!active_ || state_ == carrier_state::establishing) return 0;
    return active_->info().path.max_message_size;
}

send_capabilities carrier_impl::capabilities() const {
    std::lock_guard lock(inspect_mutex_);
    send_capabilities c;
    if (!active_ || state_ == carrier_state::establishing) return c;
    const auto bits = active_->top().info().capabilities;
    c.acked = bits & sdk::cap_acked;
    c.expires_in_flight = bits & sdk::cap_expires_in_flight;
    c.interleaving = bits & sdk::cap_interleaves;
    c.ordered = bits & sdk::cap_ordered;
    c.partial_delivery = bits & sdk::cap_partial;
    if (bits & sdk::cap_send_only)
        c.direction = sdk::flow_direction::send_only;
    else if (bits & sdk::cap_receive_only)
        c.direction = sdk::flow_direction::receive_only;
    return c;
}

std::optional<error> carrier_impl::last_error() const {
    std::lock_guard lock(inspect_mutex_);
    return last_error_;
}

} // namespace post::detail
