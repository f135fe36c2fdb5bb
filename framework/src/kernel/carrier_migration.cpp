// Connection migration of a carrier (docs/quic.md "Migration"): on request (carrier::migrate)
// or when the local address it uses goes away (address_watcher), the kernel opens the stack's
// bottom layer again from the new local address, to the same remote, and hands that flow to the
// top flow (sdk::flow::migrate); the layer moves its connection and every carrier on it reports
// the new path (flow_events::on_path_changed). Every decision is traced (kinds migration and
// migrated).
#include <utility>

#include "address_watcher.hpp"
#include "carrier_impl.hpp"

#include <post/interfaces.hpp>

#include <boost/asio/post.hpp>

namespace post::detail {

namespace asio = boost::asio;

namespace {

std::string family_of(const asio::ip::address& a) {
    return a.is_v4() ? "IPv4" : "IPv6";
}

} // namespace

void carrier_impl::trace_migration(trace_event::kind k, const std::string& detail) {
    const auto names = stack();
    std::string remote = association_ ? association_->key() : std::string{};
    if (remote.empty() && active_) remote = active_->address();
    ctx_->emit(trace_event{k, std::chrono::steady_clock::now(), std::move(remote), names, detail});
}

void carrier_impl::update_watch() {
    const bool want = state_ == carrier_state::active && active_ && remote_ &&
                      (active_->top().info().capabilities & sdk::cap_migrates) != 0;
    if (want == watched_) return;
    watched_ = want;
    if (want) {
        if (!ctx_->addresses) ctx_->addresses = std::make_shared<address_watcher>(ctx_->executor);
        ctx_->addresses->watch(shared_from_this());
    } else if (ctx_->addresses) {
        ctx_->addresses->forget(this);
    }
}

void carrier_impl::migrate(const local& to, std::function<void(const error&)> done) {
    asio::post(ctx_->executor, [self = shared_from_this(), to, done = std::move(done)] {
        auto report = [&](const error& e) {
            if (e) self->trace_migration(trace_event::kind::migration, "refused: " + e.reason);
            if (done) done(e);
        };
        if (self->state_ != carrier_state::active || !self->active_)
            return report({make_error_code(errc::not_supported),
                           "cannot migrate: the carrier is " +
                               std::string(to_string(self->state_.load())) + ", not connected"});
        const auto remote = self->active_->info().path.remote.address;
        std::optional<asio::ip::address> address = to.address;
        if (!address && !to.interface.empty()) {
            // The interface's first usable address of the remote's family.
            try {
                const auto g = apply_interface_rules(*self->ctx_->interfaces.snapshot(),
                                                     self->policy_->effective.interfaces);
                for (const auto& l : g.usable)
                    if (l.interface == to.interface && l.address.is_v4() == remote.is_v4() &&
                        !l.address.is_unspecified()) {
                        address = l.address;
                        break;
                    }
            } catch (const boost::system::system_error& e) {
                return report({make_error_code(errc::invalid_argument),
                               std::string("cannot migrate: cannot list this host's "
                                           "interfaces: ") +
                                   e.what()});
            }
            if (!address)
                return report({make_error_code(errc::invalid_argument),
                               "cannot migrate: interface " + to.interface + " has no usable " +
                                   family_of(remote) + " address"});
        }
        if (!address)
            return report({make_error_code(errc::invalid_argument),
                           "cannot migrate: give a local address or interface to move to"});
        if (address->is_v4() != remote.is_v4())
            return report({make_error_code(errc::invalid_argument),
                           "cannot migrate: " + address->to_string() + " is " +
                               family_of(*address) + ", the remote " + remote.to_string() + " is " +
                               family_of(remote)});
        report(self->migrate_to(*address, to.port, "asked for by the application"));
    });
}

error carrier_impl::migrate_to(const asio::ip::address& to, std::uint16_t port,
                               const std::string& why) {
    auto& t = *active_;
    const auto& stack = *t.stack();
    const auto from = t.info().path.local;
    if ((t.top().info().capabilities & sdk::cap_migrates) == 0)
        return {make_error_code(errc::not_supported),
                "cannot migrate: the stack " + stack.label() +
                    " cannot move its connection to another local address (only a QUIC client "
                    "connection can)"};
    if (to == from.address && (port == 0 || port == from.port))
        return {make_error_code(errc::invalid_argument),
                "cannot migrate: the carrier already runs from " + from.to_string()};
    sdk::open_params p;
    p.side = sdk::role::client;
    p.remote = t.info().path.remote;
    p.local = sdk::endpoint{to, port};
    if (remote_) p.host_name = remote_->host();
    sdk::flow_error ferr;
    auto lower = stack.layers.back()->open(nullptr, p, ferr);
    if (!lower)
        return {make_error_code(errc::invalid_argument),
                "cannot migrate to " + to.to_string() + ": " + stack.names.back() + ": " +
                    (ferr.reason.empty() ? "open failed" : ferr.reason)};
    lower = ctx_->registry.pin(stack.names.back(), std::move(lower));
    if (!t.top().migrate(lower, ferr)) {
        lower->abort();
        if (ferr.code == std::errc::operation_in_progress) {
            // Another carrier of the same connection (a stream) asked first.
            trace_migration(trace_event::kind::migration,
                            "already moving off " + from.to_string() + " (" + why + ")");
            return {};
        }
        return {make_error_code(ferr.code == std::errc::invalid_argument ? errc::invalid_argument
                                                                         : errc::not_supported),
                "cannot migrate " + stack.label() + ": " + ferr.reason};
    }
    trace_migration(trace_event::kind::migration,
                    "moving from " + from.to_string() + " to " + to.to_string() + " (" + why + ")");
    return {};
}

std::optional<asio::ip::address> carrier_impl::replacement_for(const asio::ip::address& lost,
                                                               std::string& why_not) {
    std::vector<interface_info> interfaces;
    try {
        interfaces = *ctx_->interfaces.snapshot();
    } catch (const boost::system::system_error& e) {
        why_not = std::string("cannot list this host's interfaces: ") + e.what();
        return std::nullopt;
    }
    const auto g = apply_interface_rules(interfaces, policy_->effective.interfaces);
    const auto remote = active_->info().path.remote.address;
    for (const auto& l : g.usable) {
        const auto& a = l.address;
        if (a.is_unspecified() || a == lost || a.is_v4() != lost.is_v4()) continue;
        if (!from_.interface.empty() && l.interface != from_.interface) continue;
        // A loopback source reaches only loopback, a link-local one only its link.
        if (a.is_loopback() != remote.is_loopback()) continue;
        if (a.is_v6() && a.to_v6().is_link_local() &&
            !(remote.is_v6() && remote.to_v6().is_link_local()))
            continue;
        return a;
    }
    why_not = "no other usable " + family_of(lost) + " address" +
              (from_.interface.empty()
                   ? std::string()
                   : " on interface " + from_.interface + " (the application's choice)");
    for (const auto& [l, reason] : g.excluded)
        if (l.address.is_v4() == lost.is_v4() && !l.address.is_unspecified())
            why_not += "; " + l.address.to_string() + " " + reason;
    return std::nullopt;
}

void carrier_impl::local_address_lost(const asio::ip::address& a) {
    if (state_ != carrier_state::active || !active_) return;
    if (active_->info().path.local.address != a) return;
    const std::string what = "local address " + a.to_string() + " removed";
    if (from_.address && *from_.address == a) {
        trace_migration(trace_event::kind::migration,
                        what + ": the application bound the carrier to it, staying (the "
                               "connection's idle timeout decides)");
        return;
    }
    std::string why_not;
    const auto to = replacement_for(a, why_not);
    if (!to) {
        trace_migration(trace_event::kind::migration,
                        what + ": " + why_not +
                            "; staying on it (the connection's idle timeout decides)");
        return;
    }
    if (auto e = migrate_to(*to, from_.port, what))
        trace_migration(trace_event::kind::migration, what + ": " + e.reason);
}

void carrier_impl::transient_path_changed(transient_impl& t) {
    if (active_.get() != &t) return;
    std::vector<interface_info> interfaces;
    try {
        interfaces = *ctx_->interfaces.snapshot();
    } catch (const boost::system::system_error&) {
        // The interface name is informative only.
    }
    path now;
    {
        std::lock_guard lock(inspect_mutex_);
        const auto fi = t.top().info();
        auto& p = t.info().path;
        p.local = fi.local;
        p.remote = fi.remote;
        p.interface = interface_of(interfaces, fi.local.address);
        now = p;
    }
    trace_migration(trace_event::kind::migrated,
                    "now from " + now.local.to_string() +
                        (now.interface.empty() ? "" : " (" + now.interface + ")") + " to " +
                        now.remote.to_string());
    if (on_path_changed) on_path_changed(now);
}

} // namespace post::detail
