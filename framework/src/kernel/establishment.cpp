#include <utility>

#include "establishment.hpp"

#include "association_store.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace post::detail {

namespace asio = boost::asio;

establishment::establishment(std::weak_ptr<carrier_impl> owner, std::shared_ptr<context_state> ctx,
                             remote r, std::vector<candidate_stack> stacks)
    : owner_(std::move(owner))
    , ctx_(std::move(ctx))
    , remote_(std::move(r))
    , stacks_(std::move(stacks))
    , instances_(stacks_.size())
    , resolver_(ctx_->executor)
    , attempt_timer_(ctx_->executor)
    , deadline_(ctx_->executor) {}

void establishment::trace(trace_event::kind k, std::vector<std::string> stack, std::string detail) {
    ctx_->emit(trace_event{k, std::chrono::steady_clock::now(), remote_.key(), std::move(stack),
                           std::move(detail)});
}

void establishment::start() {
    auto owner = owner_.lock();
    if (!owner) return;
    const auto& settings = owner->policy().effective.connection;
    deadline_.expires_after(settings.timeout);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (ec || self->done_) return;
        std::string what;
        for (const auto& a : self->attempts_)
            what += "; " + a.label + ": " + (a.outcome.empty() ? "still running" : a.outcome);
        auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
            self->owner_.lock() ? self->owner_.lock()->policy().effective.connection.timeout
                                : std::chrono::milliseconds(0));
        self->fail({make_error_code(errc::timed_out),
                    "no carrier to " + self->remote_.key() + " within the connection timeout of " +
                        std::to_string(timeout.count()) + " ms" +
                        (what.empty() ? std::string(" (no attempt started)") : what)});
    });

    if (remote_.is_literal()) {
        auto addr = asio::ip::make_address(remote_.host());
        asio::post(ctx_->executor, [self = shared_from_this(), addr] { self->resolved({addr}); });
        return;
    }
    trace(trace_event::kind::resolve_started, {}, remote_.host());
    resolver_.async_resolve(
        remote_.host(), std::to_string(remote_.port()),
        [self = shared_from_this()](boost::system::error_code ec,
                                    asio::ip::tcp::resolver::results_type results) {
            if (self->done_) return;
            if (ec) {
                self->fail({make_error_code(errc::resolve_failed),
                            "could not resolve '" + self->remote_.host() + "': " + ec.message()});
                return;
            }
            std::vector<asio::ip::address> addrs;
            for (const auto& r : results) {
                auto a = r.endpoint().address();
                if (std::find(addrs.begin(), addrs.end(), a) == addrs.end()) addrs.push_back(a);
            }
            self->resolved(std::move(addrs));
        });
}

void establishment::resolved(std::vector<asio::ip::address> addresses) {
    if (done_) return;
    auto owner = owner_.lock();
    if (!owner) return;
    const auto& racing = owner->policy().effective.racing;
    {
        std::string list;
        for (const auto& a : addresses)
            list += (list.empty() ? "" : " ") + a.to_string();
        trace(trace_event::kind::resolved, {}, list);
    }
    // RFC 8305 §4: interleave the families, starting with the preferred one.
    std::vector<asio::ip::address> v6, v4, ordered;
    for (const auto& a : addresses)
        (a.is_v6() ? v6 : v4).push_back(a);
    auto& first = racing.prefer_family == address_family::ipv4 ? v4 : v6;
    auto& second = racing.prefer_family == address_family::ipv4 ? v6 : v4;
    for (std::size_t i = 0; i < std::max(first.size(), second.size()); ++i) {
        if (i < first.size()) ordered.push_back(first[i]);
        if (i < second.size()) ordered.push_back(second[i]);
    }
    for (std::size_t s = 0; s < stacks_.size(); ++s)
        for (const auto& a : ordered)
            queue_.push_back(candidate{nullptr, s, a});

    // What the association learned: last time's winner goes first.
    if (auto learned = owner->assoc()->last_winner()) {
        auto it = std::find_if(queue_.begin(), queue_.end(), [&](const candidate& c) {
            return stacks_[c.stack_index].layers == learned->stack &&
                   sdk::endpoint{c.address, remote_.port()}.to_string() == learned->address;
        });
        if (it != queue_.end()) std::rotate(queue_.begin(), it, it + 1);
    }
    if (queue_.empty()) {
        fail({make_error_code(errc::resolve_failed),
              "'" + remote_.host() + "' resolved to no usable address"});
        return;
    }
    launch_next();
}

std::shared_ptr<stack_instance> establishment::stack_for(std::size_t index, error& err) {
    if (!instances_[index]) {
        auto owner = owner_.lock();
        if (!owner) return nullptr;
        instances_[index] =
            make_stack(*ctx_, owner->policy().effective, stacks_[index].layers, err);
    }
    return instances_[index];
}

void establishment::launch_next() {
    auto owner = owner_.lock();
    if (done_ || !owner) return;
    const auto& racing = owner->policy().effective.racing;
    while (next_ < queue_.size()) {
        if (static_cast<int>(running_.size()) >= std::max(1, racing.max_attempts)) return;
        candidate c = queue_[next_++];
        sdk::endpoint ep{c.address, remote_.port()};
        attempt_record rec{join_stack(stacks_[c.stack_index].layers) + " to " + ep.to_string(), {}};
        error err;
        auto stack = stack_for(c.stack_index, err);
        std::shared_ptr<sdk::flow> top;
        if (stack) {
            sdk::open_params params;
            params.side = sdk::role::client;
            params.remote = ep;
            params.host_name = remote_.host();
            params.session = std::make_shared<association_store>(owner->assoc());
            top = build_flows(*ctx_, *stack, params, nullptr, err);
        }
        if (!top) {
            rec.outcome = err.reason;
            attempts_.push_back(rec);
            trace(trace_event::kind::attempt_failed, stacks_[c.stack_index].layers,
                  ep.to_string() + ": " + err.reason);
            continue; // try the next candidate at once
        }
        attempts_.push_back(rec);
        auto t = std::make_shared<transient_impl>(stack, ep.to_string());
        t->attach(owner_, top);
        running_.push_back(t);
        trace(trace_event::kind::attempt_started, stack->names, ep.to_string());
        t->top().start();
        // A stack that takes early data (0-RTT, Fast Open) gets the idempotent messages now.
        if (t->top().info().capabilities & sdk::cap_early_data) owner->offer_early(t);
        arm_attempt_timer();
        return;
    }
    check_exhausted();
}

void establishment::arm_attempt_timer() {
    auto owner = owner_.lock();
    if (!owner || next_ >= queue_.size()) return;
    auto delay = owner->policy().effective.racing.attempt_delay;
    // A lower-ranked stack waits the stack delay on top of the attempt delay.
    if (queue_[next_].stack_index != queue_[next_ - 1].stack_index)
        delay += owner->policy().effective.racing.stack_delay;
    attempt_timer_.expires_after(delay);
    attempt_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->launch_next();
    });
}

void establishment::on_ready(transient_impl& t) {
    if (done_) return;
    done_ = true;
    attempt_timer_.cancel();
    deadline_.cancel();
    std::shared_ptr<transient_impl> winner;
    for (auto& r : running_) {
        if (r.get() == &t) {
            winner = r;
            continue;
        }
        trace(trace_event::kind::attempt_cancelled, r->stack()->names, r->address());
        r->abort();
    }
    running_.clear();
    auto owner = owner_.lock();
    if (!owner || !winner) return;
    owner->assoc()->record_win(
        {winner->stack()->names, winner->address(), std::chrono::steady_clock::now()});
    auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(winner->info().ready -
                                                                         winner->info().started);
    trace(trace_event::kind::attempt_won, winner->stack()->names,
          winner->address() + " in " + std::to_string(elapsed.count()) + " us");
    owner->race_won(std::move(winner));
}

void establishment::on_closed(transient_impl& t, const sdk::flow_error& e) {
    if (done_) return;
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const auto& r) { return r.get() == &t; });
    if (it == running_.end()) return;
    auto failed = *it;
    running_.erase(it);
    std::string why =
        e.reason.empty() ? (e.code ? e.code.message() : "closed before ready") : e.reason;
    for (auto& a : attempts_)
        if (a.label == failed->label() && a.outcome.empty()) {
            a.outcome = why;
            break;
        }
    if (auto owner = owner_.lock())
        owner->assoc()->record_failure(
            {failed->stack()->names, failed->address(), std::chrono::steady_clock::now()});
    trace(trace_event::kind::attempt_failed, failed->stack()->names,
          failed->address() + ": " + why);
    // A failure frees a slot: start the next candidate now rather than after the delay.
    attempt_timer_.cancel();
    launch_next();
}

void establishment::check_exhausted() {
    if (done_ || !running_.empty() || next_ < queue_.size()) return;
    std::string list;
    for (const auto& a : attempts_)
        list += "\n  " + a.label + ": " + a.outcome;
    fail({make_error_code(errc::establishment_failed),
          "could not establish a carrier to " + remote_.key() + ": " +
              std::to_string(attempts_.size()) + " attempt" + (attempts_.size() == 1 ? "" : "s") +
              " failed:" + list});
}

void establishment::fail(error e) {
    if (done_) return;
    cancel();
    if (auto owner = owner_.lock()) owner->race_failed(std::move(e));
}

void establishment::cancel() {
    if (done_) return;
    done_ = true;
    attempt_timer_.cancel();
    deadline_.cancel();
    resolver_.cancel();
    for (auto& r : running_)
        r->abort();
    running_.clear();
}

} // namespace post::detail
