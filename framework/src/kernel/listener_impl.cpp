#include <utility>

#include "listener_impl.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <map>

#include <post/interfaces.hpp>

namespace post::detail {

namespace asio = boost::asio;

namespace {

/// Forwards one acceptor's events, tagged with its index, to the listener.
class acceptor_sink final : public sdk::acceptor_events {
public:
    acceptor_sink(std::weak_ptr<listener_impl> owner, std::size_t index)
        : owner_(std::move(owner))
        , index_(index) {}
    void on_accepted(std::shared_ptr<sdk::flow> f) noexcept override {
        if (auto o = owner_.lock())
            o->accepted(index_, std::move(f));
        else if (f)
            f->abort();
    }
    void on_closed(const sdk::flow_error& e) noexcept override {
        if (auto o = owner_.lock()) o->acceptor_closed(index_, e);
    }

private:
    std::weak_ptr<listener_impl> owner_;
    std::size_t index_;
};

/// Connections accepted but not yet taken by the application: bounded so a flood of peers
/// cannot grow memory without limit.
constexpr std::size_t max_backlog = 1024;

} // namespace

void listener_impl::open(const local& where, const std::vector<candidate_stack>& stacks) {
    // One stack per bottom layer: the bottom cannot tell which upper stack a peer speaks, so
    // the best-ranked stack for each bottom layer is the one offered.
    std::vector<const candidate_stack*> chosen;
    std::set<std::string> bottoms;
    for (const auto& s : stacks)
        if (!s.layers.empty() && bottoms.insert(s.layers.back()).second) chosen.push_back(&s);

    std::vector<asio::ip::address> addresses;
    const auto& rules = policy_->effective.interfaces;
    const bool has_rules = rules && (!rules->require.empty() || !rules->prefer.empty() ||
                                     !rules->avoid.empty() || !rules->prohibit.empty());
    if (where.address) {
        addresses.push_back(*where.address);
    } else if (has_rules || !where.interface.empty()) {
        // Every gathered local the policy allows (of the pinned interface, if any), both
        // families: a wildcard would also accept on the interfaces the policy rules out.
        auto gathered = apply_interface_rules(*ctx_->interfaces.snapshot(), rules);
        for (const auto& l : gathered.usable)
            if (where.interface.empty() || l.interface == where.interface)
                addresses.push_back(l.address);
        if (addresses.empty())
            throw boost::system::system_error(
                make_error_code(errc::establishment_failed),
                "could not listen: no local address is allowed" +
                    (where.interface.empty() ? std::string(" by the policy's interface rules")
                                             : " on interface " + where.interface));
    } else {
        addresses = {asio::ip::address_v6::any(), asio::ip::address_v4::any()};
    }

    // A stack that binds no address is left out, with why, while the others listen; unless
    // the port is taken: then another server is there, and listening on only some of the
    // protocols at that port would split its clients between two programs.
    std::string failures, taken;
    for (const auto* s : chosen) {
        error err;
        auto instance = make_stack(*ctx_, policy_->effective, s->layers, err);
        if (!instance) {
            left_out_.push_back(join_stack(s->layers) + ": " + err.reason);
            failures += "\n  " + left_out_.back();
            continue;
        }
        // A stack one of whose layers cannot take the server role (quic or tls without a
        // certificate) would bind and then refuse every peer: left out before binding.
        if (auto refusal = serve_refusal(*instance); !refusal.empty()) {
            left_out_.push_back(instance->label() + ": " + refusal);
            failures += "\n  " + left_out_.back();
            continue;
        }
        std::uint16_t port = where.port;
        std::string why, first_reason;
        bool any = false, in_use = false;
        for (const auto& a : addresses) {
            sdk::flow_error ferr;
            sdk::endpoint ep{a, port};
            auto acc = instance->layers.back()->listen(ep, ferr);
            if (!acc) {
                why += "\n  " + instance->label() + " on " + ep.to_string() + ": " + ferr.reason;
                if (first_reason.empty()) first_reason = ferr.reason;
                in_use = in_use || ferr.code == std::errc::address_in_use;
                continue;
            }
            any = true;
            auto sink = std::make_shared<acceptor_sink>(weak_from_this(), bound_.size());
            acc->set_events(sink);
            ep = acc->local_endpoint();
            if (port == 0) port = ep.port; // both families on the same ephemeral port
            bound_.push_back({instance, acc, sink, ep});
            if (bound_.size() == 1) ctx_->keep(shared_from_this());
            acc->start();
            ctx_->emit(trace_event{trace_event::kind::listener_started,
                                   std::chrono::steady_clock::now(),
                                   ep.to_string(),
                                   instance->names,
                                   {}});
        }
        // Some addresses may fail while others bind (a wildcard of a family the host lacks,
        // or [::] already covering 0.0.0.0): only a stack that binds none is left out.
        if (any) continue;
        failures += why;
        if (in_use) taken += why;
        left_out_.push_back(instance->label() + ": " + first_reason);
    }
    if (!taken.empty() || bound_.empty()) {
        for (auto& b : std::exchange(bound_, {}))
            b.acceptor->close();
        ctx_->release(this);
        throw boost::system::system_error(
            make_error_code(errc::establishment_failed),
            !taken.empty()
                ? "could not listen: the port is taken" + taken
                : "could not listen:" + (failures.empty() ? std::string(" no stack") : failures));
    }
}

std::string listener_impl::serve_refusal(const stack_instance& stack) const {
    for (std::size_t i = 0; i < stack.layers.size(); ++i) {
        sdk::flow_error err;
        if (!ctx_->registry.can_serve(stack.names[i], *stack.layers[i], err))
            return err.reason.empty() ? stack.names[i] + " cannot take the server role"
                                      : err.reason;
    }
    return {};
}

void listener_impl::accepted(std::size_t index, std::shared_ptr<sdk::flow> flow) {
    if (closed_ || index >= bound_.size() || bound_[index].stopped || !flow) {
        if (flow) flow->abort();
        return;
    }
    auto& b = bound_[index];
    flow = ctx_->registry.pin(b.stack->names.back(), std::move(flow));
    auto fi = flow->info();
    if (over_limit(fi.remote.to_string(), b.stack->names, "connection")) {
        flow->abort();
        return;
    }
    sdk::open_params params;
    params.side = sdk::role::server;
    params.remote = fi.remote;
    params.local = fi.local;
    error err;
    std::error_code layer_code;
    auto top = build_flows(*ctx_, *b.stack, params, flow, err, &layer_code);
    if (!top) {
        flow->abort();
        if (layer_code == std::errc::invalid_argument) return leave_out(index, err);
        if (on_error) on_error(err);
        return;
    }
    if (ctx_->tracing)
        ctx_->emit(trace_event{trace_event::kind::accepted, std::chrono::steady_clock::now(),
                               fi.remote.to_string(), b.stack->names, fi.local.to_string()});
    auto assoc = std::make_shared<association>(fi.remote.to_string());
    auto c = std::make_shared<carrier_impl>(ctx_, assoc, policy_);
    c->set_listener(weak_from_this());
    auto t = std::make_shared<transient_impl>(b.stack, fi.remote.to_string());
    t->attach(c, top);
    establish(std::move(c), std::move(t), fi.remote.to_string());
}

void listener_impl::leave_out(std::size_t index, const error& why) {
    // A layer whose options refuse the server role refuses every peer alike (one that
    // can_serve did not catch: a plugin built before ABI 4.2 cannot say so before binding).
    // Listening on would leave each client waiting for an answer until its deadline and
    // report the same error for every packet; closed, the port refuses them at once (ICMP for
    // UDP, a reset for TCP).
    const auto stack = bound_[index].stack;
    for (auto& b : bound_)
        if (b.stack == stack && !b.stopped) {
            b.stopped = true;
            b.acceptor->close();
        }
    left_out_.push_back(stack->label() + ": " + why.reason);
    ctx_->emit(trace_event{trace_event::kind::accepted,
                           std::chrono::steady_clock::now(),
                           {},
                           stack->names,
                           "refused: no longer listening: " + why.reason});
    if (on_error)
        on_error({make_error_code(errc::plugin_error),
                  "no longer listening over " + stack->label() + ": " + why.reason});
}

bool listener_impl::over_limit(const std::string& peer, const std::vector<std::string>& stack,
                               const std::string& what) {
    if (live_carriers() < policy_->effective.connection.max_connections) return false;
    // Refused before any handshake: the carriers already there keep their share.
    const auto limit = std::to_string(policy_->effective.connection.max_connections);
    ctx_->emit(trace_event{trace_event::kind::accepted, std::chrono::steady_clock::now(), peer,
                           stack, "refused: connection.max-connections is " + limit});
    if (on_error)
        on_error({make_error_code(errc::resource_limit),
                  what + " from " + peer + " refused: " + limit +
                      " carriers already (connection.max-connections)"});
    return true;
}

void listener_impl::adopt_stream(std::shared_ptr<carrier_impl> c,
                                 std::shared_ptr<transient_impl> t) {
    const auto peer = t->address();
    if (closed_ || over_limit(peer, t->stack()->names, "stream")) {
        t->abort();
        return;
    }
    establish(std::move(c), std::move(t), peer);
}

void listener_impl::establish(std::shared_ptr<carrier_impl> c, std::shared_ptr<transient_impl> t,
                              std::string peer) {
    establishing_.insert(c);
    c->adopt(std::move(t), [weak = weak_from_this(), peer = std::move(peer)](
                               std::shared_ptr<carrier_impl> c, const error& e) {
        auto self = weak.lock();
        if (!self) return;
        self->establishing_.erase(c);
        if (!e) {
            self->ready(std::move(c));
        } else if (self->on_error && !self->closed_ && !c->withdrawn()) {
            // The application never saw this carrier; the listener reports why it failed.
            self->on_error(
                {e.code, "connection from " + peer + " failed before it was ready: " + e.reason});
        }
    });
}

std::size_t listener_impl::live_carriers() {
    std::erase_if(live_, [](const std::weak_ptr<carrier_impl>& w) {
        auto c = w.lock();
        return !c || c->state() == carrier_state::closed;
    });
    return establishing_.size() + live_.size();
}

void listener_impl::ready(std::shared_ptr<carrier_impl> c) {
    if (closed_) {
        c->abort();
        return;
    }
    live_.push_back(c);
    carrier handle(std::move(c));
    if (on_carrier) {
        on_carrier(handle);
    } else if (!acceptors_waiting_.empty()) {
        auto h = std::move(acceptors_waiting_.front());
        acceptors_waiting_.pop_front();
        h({}, handle);
    } else if (backlog_.size() < max_backlog) {
        backlog_.push_back(handle);
    } else {
        handle.abort();
    }
}

void listener_impl::acceptor_closed(std::size_t index, const sdk::flow_error& e) {
    if (closed_ || !e || (index < bound_.size() && bound_[index].stopped)) return;
    std::string where = index < bound_.size() ? bound_[index].where.to_string() : "?";
    if (on_error)
        on_error({make_error_code(errc::closed), "listener on " + where + ": " + e.reason});
}

void listener_impl::accept(unique_function<void(boost::system::error_code, carrier)> h) {
    asio::dispatch(ctx_->executor, [self = shared_from_this(), h = std::move(h)]() mutable {
        if (!self->backlog_.empty()) {
            auto c = self->backlog_.front();
            self->backlog_.pop_front();
            h({}, c);
        } else if (self->closed_) {
            h(make_error_code(errc::closed), carrier{});
        } else {
            self->acceptors_waiting_.push_back(std::move(h));
        }
    });
}

void listener_impl::close() {
    asio::dispatch(ctx_->executor, [self = shared_from_this()] {
        if (self->closed_) return;
        self->closed_ = true;
        for (auto& b : self->bound_)
            b.acceptor->close();
        for (auto& c : std::exchange(self->establishing_, {}))
            c->abort();
        for (auto& h : std::exchange(self->acceptors_waiting_, {}))
            h(make_error_code(errc::closed), carrier{});
        self->backlog_.clear();
        // Posted: close() may be called from inside one of these handlers.
        asio::post(self->ctx_->executor, [self] {
            self->on_carrier = nullptr;
            self->on_error = nullptr;
            self->ctx_->release(self.get());
        });
    });
}

void listener_impl::shutdown() noexcept {
    closed_ = true;
    for (auto& b : bound_)
        b.acceptor->close();
    for (auto& c : establishing_)
        c->shutdown();
    establishing_.clear();
    acceptors_waiting_.clear();
    backlog_.clear();
    on_carrier = nullptr;
    on_error = nullptr;
}

std::vector<sdk::endpoint> listener_impl::endpoints() const {
    std::vector<sdk::endpoint> out;
    for (const auto& b : bound_)
        if (!b.stopped) out.push_back(b.where);
    return out;
}

std::vector<std::string> listener_impl::left_out() const {
    return left_out_;
}

std::vector<std::vector<std::string>> listener_impl::stacks() const {
    std::vector<std::vector<std::string>> out;
    for (const auto& b : bound_)
        if (!b.stopped && (out.empty() || out.back() != b.stack->names))
            out.push_back(b.stack->names);
    return out;
}

} // namespace post::detail
