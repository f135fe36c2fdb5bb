#include <utility>

#include "establishment.hpp"

#include "association_store.hpp"

#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

namespace post::detail {

namespace asio = boost::asio;

namespace {

std::string family_name(const asio::ip::address& a) {
    return a.is_v6() ? "IPv6" : "IPv4";
}

bool link_local(const asio::ip::address& a) {
    return a.is_v6() && a.to_v6().is_link_local();
}

std::string describe(const local_candidate& l) {
    return l.address.to_string() + (l.interface.empty() ? "" : " (" + l.interface + ")");
}

/// RFC 8305 §4: alternate the families, starting with the preferred one.
std::vector<asio::ip::address> interleave(const std::vector<asio::ip::address>& addresses,
                                          address_family prefer) {
    std::vector<asio::ip::address> v6, v4, ordered;
    for (const auto& a : addresses)
        (a.is_v6() ? v6 : v4).push_back(a);
    auto& first = prefer == address_family::ipv4 ? v4 : v6;
    auto& second = prefer == address_family::ipv4 ? v6 : v4;
    for (std::size_t i = 0; i < std::max(first.size(), second.size()); ++i) {
        if (i < first.size()) ordered.push_back(first[i]);
        if (i < second.size()) ordered.push_back(second[i]);
    }
    return ordered;
}

} // namespace

establishment::establishment(std::weak_ptr<carrier_impl> owner, std::shared_ptr<context_state> ctx,
                             remote r, std::shared_ptr<prepared_policy> prepared, post::local bind)
    : owner_(std::move(owner))
    , ctx_(std::move(ctx))
    , remote_(std::move(r))
    , prepared_(std::move(prepared))
    , stacks_(prepared_->candidates())
    , bind_(std::move(bind))
    , attempt_timer_(ctx_->executor)
    , deadline_(ctx_->executor) {
    // Stacks come best first, each in its own tier: a lower one waits the stack delay. (Equal
    // scores do not make stacks equal: the engine still ranks them, and racing a TLS stack
    // beside a plain one against the same server would cost the server a connection.)
    for (std::size_t i = 0; i < stacks_.size(); ++i)
        tiers_.push_back(static_cast<int>(i));
}

void establishment::trace(trace_event::kind k, std::vector<std::string> stack, std::string detail) {
    if (!ctx_->tracing.load(std::memory_order_relaxed)) return;
    ctx_->emit(trace_event{k, std::chrono::steady_clock::now(), remote_.key(), std::move(stack),
                           std::move(detail)});
}

void establishment::start() {
    auto owner = owner_.lock();
    if (!owner || done_) return;
    const auto& policy = owner->policy();
    const auto timeout = policy.effective.connection.timeout;
    deadline_.expires_after(timeout);
    deadline_.async_wait([self = shared_from_this(), timeout](boost::system::error_code ec) {
        if (ec || self->done_) return;
        std::string what;
        for (const auto& a : self->attempts_)
            what += "\n  " + a.label + ": " + (a.outcome.empty() ? "timed out" : a.outcome);
        if (self->resolving_) what += "\n  resolving " + self->remote_.host() + ": timed out";
        self->fail({make_error_code(errc::timed_out),
                    "no carrier to " + self->remote_.key() + " within the connection timeout of " +
                        std::to_string(timeout.count()) + " ms" +
                        (what.empty() ? std::string(" (no attempt started)") : ":" + what)});
    });

    if (!gather(policy)) return;
    start_learned_winner();

    if (remote_.is_literal()) {
        // start() already runs in a handler of its own (the application has set its handlers),
        // so the address goes in at once: a posted step per connection is a scheduler round
        // and a poll of the reactor more.
        add_addresses({asio::ip::make_address(remote_.host())});
        return;
    }
    trace(trace_event::kind::resolve_started, {}, remote_.host());
    resolving_ = true;
    resolver_ = std::make_shared<happy_resolver>(ctx_->executor);
    std::weak_ptr<establishment> weak = weak_from_this();
    resolver_->start(
        remote_.host(), policy.effective.racing.resolution_delay,
        [weak](std::vector<asio::ip::address> addresses, const family_answer&) {
            if (auto self = weak.lock(); self && !self->done_)
                self->add_addresses(std::move(addresses));
        },
        [weak](const std::string& why) {
            auto self = weak.lock();
            if (!self || self->done_) return;
            self->resolving_ = false;
            self->resolve_error_ = why;
            self->check_exhausted();
        },
        [weak](const family_answer& a) {
            auto self = weak.lock();
            if (!self || self->done_) return;
            std::string list;
            for (const auto& addr : a.addresses)
                list += " " + addr.to_string();
            const auto us = a.elapsed.count();
            self->trace(trace_event::kind::resolve_answer, {},
                        std::string(a.ipv6 ? "AAAA" : "A") +
                            (a.error.empty() ? list : ": " + a.error) + " in " +
                            std::to_string(us / 1000) + "." + std::to_string(us % 1000 / 100) +
                            " ms");
            // Once both families have answered, resolving is over: if every address has been
            // tried by then, the race is lost. Posted, so that the addresses this answer
            // releases are queued first.
            if (++self->answers_ == 2)
                asio::post(self->ctx_->executor, [self] {
                    self->resolving_ = false;
                    self->check_exhausted();
                });
        });
}

bool establishment::gather(const merged_policy& policy) {
    const auto& rules = policy.effective.interfaces;
    const bool has_rules = rules && (!rules->require.empty() || !rules->prefer.empty() ||
                                     !rules->avoid.empty() || !rules->prohibit.empty());
    const bool pinned = bind_.address || !bind_.interface.empty() || bind_.port != 0;
    if (!has_rules && !pinned) return true; // the kernel's routing picks the source address

    try {
        interfaces_ = ctx_->interfaces.snapshot();
    } catch (const boost::system::system_error& e) {
        fail({make_error_code(errc::establishment_failed),
              std::string("cannot list this host's interfaces: ") + e.what()});
        return false;
    }
    gathered_locals g = apply_interface_rules(*interfaces_, rules);
    auto keep_if = [&](auto pred, const std::string& why) {
        std::vector<local_candidate> kept;
        for (auto& l : g.usable)
            if (pred(l))
                kept.push_back(std::move(l));
            else
                g.excluded.emplace_back(std::move(l), why);
        g.usable = std::move(kept);
    };
    if (!bind_.interface.empty())
        keep_if([&](const local_candidate& l) { return l.interface == bind_.interface; },
                "not interface " + bind_.interface + ", which the application asked for");
    if (bind_.address) {
        if (bind_.address->is_unspecified()) {
            // Any address of that family, on a given port.
            g.usable = {local_candidate{{}, interface_type::other, *bind_.address}};
        } else {
            for (const auto& [l, why] : g.excluded)
                if (l.address == *bind_.address) {
                    fail({make_error_code(errc::establishment_failed),
                          "cannot bind to " + bind_.address->to_string() + ": " + why});
                    return false;
                }
            // Not necessarily listed (any 127/8 address is ours on lo): the bind decides.
            local_candidate pinned{interface_of(*interfaces_, *bind_.address),
                                   interface_type::other, *bind_.address, 1};
            for (const auto& l : g.usable)
                if (l.address == *bind_.address) pinned = l;
            g.usable = {pinned};
        }
    } else if (!has_rules && bind_.interface.empty()) {
        // Only a port is pinned: any address of either family, on that port.
        g.usable = {local_candidate{{}, interface_type::other, asio::ip::address_v6::any()},
                    local_candidate{{}, interface_type::other, asio::ip::address_v4::any()}};
    }
    if (ctx_->tracing) {
        std::string detail;
        for (const auto& l : g.usable)
            detail += (detail.empty() ? "" : ", ") + describe(l);
        detail = "usable: " + (detail.empty() ? std::string("none") : detail);
        for (const auto& [l, why] : g.excluded)
            detail += "; " + (l.address.is_unspecified() ? "" : l.address.to_string() + " ") + why;
        trace(trace_event::kind::gathered, {}, detail);
    }
    locals_ = std::move(g);
    return true;
}

std::vector<std::optional<local_candidate>> establishment::locals_for(const asio::ip::address& a) {
    if (!locals_) return {std::nullopt};
    std::vector<std::optional<local_candidate>> out;
    for (const auto& l : locals_->usable) {
        if (l.address.is_v6() != a.is_v6()) continue;
        if (!l.address.is_unspecified() && !bind_.address) { // a pinned address is as asked
            // A loopback source reaches only loopback, and a link-local one only its link.
            if (l.address.is_loopback() != a.is_loopback()) continue;
            if (link_local(l.address) != link_local(a)) continue;
        }
        out.emplace_back(l);
    }
    return out;
}

void establishment::add_addresses(std::vector<asio::ip::address> addresses) {
    auto owner = owner_.lock();
    if (!owner || done_) return;
    const auto& racing = owner->policy().effective.racing;
    if (ctx_->tracing) {
        std::string list;
        for (const auto& a : addresses)
            list += (list.empty() ? "" : " ") + a.to_string();
        trace(trace_event::kind::resolved, {}, list);
    }
    const auto ordered = interleave(addresses, racing.prefer_family);
    std::vector<candidate> fresh;
    for (std::size_t s = 0; s < stacks_.size(); ++s) {
        for (const auto& a : ordered) {
            auto locals = locals_for(a);
            if (locals.empty()) {
                attempt_record rec{join_stack(stacks_[s].layers) + " to " +
                                       sdk::endpoint{a, remote_.port()}.to_string(),
                                   "no " + family_name(a) +
                                       " local address that the policy's interface rules allow"};
                if (std::none_of(attempts_.begin(), attempts_.end(),
                                 [&](const auto& r) { return r.label == rec.label; }))
                    attempts_.push_back(std::move(rec));
                continue;
            }
            for (auto& l : locals) {
                // The learned winner may have started before DNS answered: not twice.
                const bool queued = std::any_of(queue_.begin(), queue_.end(), [&](const auto& q) {
                    return q.stack_index == s && q.address == a &&
                           q.local.has_value() == l.has_value() &&
                           (!l || q.local->address == l->address);
                });
                if (!queued) fresh.push_back(candidate{s, a, std::move(l), tiers_[s], 0});
            }
        }
    }
    // One group per stack and remote address, with every local of equal rank: the policy
    // has no preference among those, so they start side by side (two ethernet interfaces, say);
    // locals it ranks lower form the next group. Better tiers first; stable, so the family
    // interleaving and the local ranking stay.
    std::stable_sort(fresh.begin(), fresh.end(),
                     [](const candidate& x, const candidate& y) { return x.tier < y.tier; });
    for (std::size_t i = 0; i < fresh.size(); ++i) {
        const auto& c = fresh[i];
        const bool same = i > 0 && c.tier == fresh[i - 1].tier &&
                          c.address == fresh[i - 1].address && c.local && fresh[i - 1].local &&
                          c.local->rank == fresh[i - 1].local->rank;
        if (!same) ++next_group_;
        fresh[i].group = next_group_;
    }
    queue_.insert(queue_.end(), fresh.begin(), fresh.end());
    // What is still to start keeps tier order across batches (a late AAAA answer's tier-0
    // candidates go before tier-1 ones of the earlier batch).
    std::stable_sort(queue_.begin() + static_cast<std::ptrdiff_t>(next_), queue_.end(),
                     [](const candidate& x, const candidate& y) { return x.tier < y.tier; });
    apply_history();

    if (running_.empty() || !timer_armed_) {
        // Nothing waits for the attempt delay: start now, or once the delay since the last
        // start has passed.
        arm_attempt_timer();
    }
}

void establishment::start_learned_winner() {
    auto owner = owner_.lock();
    if (!owner) return;
    auto learned = owner->assoc()->last_winner();
    if (!learned || std::chrono::steady_clock::now() - learned->when >
                        owner->policy().effective.racing.history_expiry)
        return;
    auto stack = std::find_if(stacks_.begin(), stacks_.end(),
                              [&](const candidate_stack& c) { return c.layers == learned->stack; });
    auto ep = url::parse(learned->address);
    if (stack == stacks_.end() || !ep || ep->port != remote_.port()) return;
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(ep->host, ec);
    if (ec) return;
    // Last time's winner starts now, before DNS answers (which may take the resolution delay
    // or longer): a repeat connect to a remote that works costs one round trip. DNS goes on
    // in parallel; if the winner fails, its answers race as usual.
    auto locals = locals_for(addr);
    if (locals.empty()) return;
    const auto s = static_cast<std::size_t>(stack - stacks_.begin());
    queue_.push_back(candidate{s, addr, locals.front(), tiers_[s], -1});
    if (ctx_->tracing) trace(trace_event::kind::resolved, {}, addr.to_string() + " (learned)");
    if (remote_.is_literal()) return; // start() adds the address at once, which launches it
    asio::post(ctx_->executor, [self = shared_from_this()] {
        if (!self->done_ && self->running_.empty()) self->launch_next();
    });
}

void establishment::apply_history() {
    auto owner = owner_.lock();
    if (!owner) return;
    const auto expiry = owner->policy().effective.racing.history_expiry;
    const auto now = std::chrono::steady_clock::now();
    const auto pending = queue_.begin() + static_cast<std::ptrdiff_t>(next_);
    auto matches = [&](const candidate& c, const association::outcome& o) {
        return stacks_[c.stack_index].layers == o.stack &&
               sdk::endpoint{c.address, remote_.port()}.to_string() == o.address;
    };
    // Candidates that failed recently go last: another one is likelier to work.
    auto failures = owner->assoc()->recent_failures(expiry);
    if (!failures.empty())
        std::stable_partition(pending, queue_.end(), [&](const candidate& c) {
            return std::none_of(failures.begin(), failures.end(),
                                [&](const auto& f) { return matches(c, f); });
        });
    // Last time's winner, while fresh, goes first and alone: it starts without waiting.
    auto learned = owner->assoc()->last_winner();
    if (!learned || now - learned->when > expiry) return;
    auto it = std::find_if(pending, queue_.end(),
                           [&](const candidate& c) { return matches(c, *learned); });
    if (it == queue_.end() || it->group == -1) return;
    candidate winner = *it;
    queue_.erase(it);
    winner.group = -1; // its own group
    queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(next_), winner);
}

std::shared_ptr<stack_instance> establishment::stack_for(std::size_t index, error& err) {
    return prepared_->stack(*ctx_, index, err);
}

void establishment::launch(const candidate& c) {
    auto owner = owner_.lock();
    if (!owner) return;
    sdk::endpoint ep{c.address, remote_.port()};
    std::string label = join_stack(stacks_[c.stack_index].layers) + " to " + ep.to_string();
    std::string from;
    if (c.local) {
        from = " from " + describe(*c.local);
        label += " from " + c.local->address.to_string();
    }
    attempt_record rec{label, {}};
    error err;
    auto stack = stack_for(c.stack_index, err);
    std::shared_ptr<sdk::flow> top;
    if (stack) {
        sdk::open_params params;
        params.side = sdk::role::client;
        params.remote = ep;
        if (c.local) params.local = sdk::endpoint{c.local->address, bind_.port};
        params.host_name = remote_.host();
        params.session = std::make_shared<association_store>(owner->assoc());
        params.direction = owner->policy().effective.connection.direction;
        top = build_flows(*ctx_, *stack, params, nullptr, err);
    }
    if (!top) {
        rec.outcome = err.reason;
        attempts_.push_back(rec);
        trace(trace_event::kind::attempt_failed, stacks_[c.stack_index].layers,
              ep.to_string() + from + ": " + err.reason);
        return;
    }
    attempts_.push_back(rec);
    auto t = std::make_shared<transient_impl>(stack, ep.to_string());
    t->set_label(label);
    t->attach(owner_, top);
    running_.push_back(t);
    if (ctx_->tracing)
        trace(trace_event::kind::attempt_started, stack->names, ep.to_string() + from);
    t->top().start();
    // A stack that takes early data (0-RTT, Fast Open) gets the idempotent messages now.
    if (t->top().info().capabilities & sdk::cap_early_data) owner->offer_early(t);
}

void establishment::launch_next() {
    auto owner = owner_.lock();
    if (done_ || !owner) return;
    const int max_attempts = std::max(1, owner->policy().effective.racing.max_attempts);
    bool launched = false;
    while (next_ < queue_.size() && static_cast<int>(running_.size()) < max_attempts) {
        const int group = queue_[next_].group;
        // One group: the candidates the policy ranks equally start side by side.
        while (next_ < queue_.size() && queue_[next_].group == group &&
               static_cast<int>(running_.size()) < max_attempts) {
            launch(queue_[next_++]);
            launched = true;
            if (done_) return;
        }
        if (launched && !running_.empty()) break;
        // Every candidate of the group failed at once (no stack, bad bind): the next one now.
    }
    if (launched) last_launch_ = std::chrono::steady_clock::now();
    if (next_ < queue_.size() && !running_.empty()) arm_attempt_timer();
    check_exhausted();
}

void establishment::arm_attempt_timer() {
    auto owner = owner_.lock();
    if (!owner || done_) return;
    if (next_ >= queue_.size()) {
        check_exhausted();
        return;
    }
    if (running_.empty()) {
        // Nothing in flight: no reason to wait.
        timer_armed_ = false;
        attempt_timer_.cancel();
        launch_next();
        return;
    }
    const auto& racing = owner->policy().effective.racing;
    auto delay =
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(racing.attempt_delay);
    // A lower-ranked stack waits the stack delay on top of the attempt delay.
    if (next_ > 0 && queue_[next_].tier != queue_[next_ - 1].tier) delay += racing.stack_delay;
    timer_armed_ = true;
    attempt_timer_.expires_at(last_launch_ + delay);
    attempt_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (ec) return;
        self->timer_armed_ = false;
        self->launch_next();
    });
}

void establishment::on_ready(transient_impl& t) {
    if (done_) return;
    done_ = true;
    attempt_timer_.cancel();
    deadline_.cancel();
    if (resolver_) resolver_->cancel();
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
    auto& path = winner->info().path;
    if (path.interface.empty() && !path.local.address.is_unspecified()) {
        if (!interfaces_) {
            try {
                interfaces_ = ctx_->interfaces.snapshot();
            } catch (const boost::system::system_error&) {
                // The interface name is informative only.
            }
        }
        if (interfaces_) path.interface = interface_of(*interfaces_, path.local.address);
    }
    owner->assoc()->record_win(
        {winner->stack()->names, winner->address(), std::chrono::steady_clock::now()});
    auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(winner->info().ready -
                                                                         winner->info().started);
    if (ctx_->tracing)
        trace(trace_event::kind::attempt_won, winner->stack()->names,
              winner->address() + " from " + path.local.to_string() +
                  (path.interface.empty() ? "" : " (" + path.interface + ")") + " in " +
                  std::to_string(elapsed.count()) + " us");
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
    timer_armed_ = false;
    attempt_timer_.cancel();
    launch_next();
}

void establishment::check_exhausted() {
    if (done_ || !running_.empty() || next_ < queue_.size() || resolving_) return;
    if (attempts_.empty()) {
        fail({make_error_code(errc::resolve_failed),
              "could not resolve '" + remote_.host() + "': " +
                  (resolve_error_.empty() ? std::string("no usable address") : resolve_error_)});
        return;
    }
    std::string list;
    for (const auto& a : attempts_)
        list += "\n  " + a.label + ": " + a.outcome;
    if (!resolve_error_.empty()) list += "\n  resolving " + remote_.host() + ": " + resolve_error_;
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
    if (resolver_) resolver_->cancel();
    for (auto& r : running_)
        r->abort();
    running_.clear();
}

} // namespace post::detail
