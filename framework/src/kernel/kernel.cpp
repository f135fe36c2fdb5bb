// The entry points: initiate, initiate_stream and listen.
#include <utility>

#include "carrier_impl.hpp"
#include "listener_impl.hpp"
#include "stream_state.hpp"

#include <post/context.hpp>
#include <post/stream.hpp>

namespace post {

stack_constraint constraint_for(const remote& r) {
    return constraint_for_scheme(r.scheme());
}

stack_constraint constraint_for_scheme(std::string_view scheme) {
    stack_constraint c;
    if (scheme.empty()) return c;
    c.origin = "URL scheme " + std::string(scheme) + "://";
    // A scheme names what is on the wire: tcp:// and udp:// are plain (no security layer over
    // them), tls:// is TLS over TCP, dtls:// DTLS over UDP; others name their layer.
    if (scheme == "tcp") {
        c.must_contain = {"tcp"};
        c.must_not_contain = {"tls"};
    } else if (scheme == "udp") {
        // Plain datagrams: nothing that runs its own protocol inside UDP.
        c.must_contain = {"udp"};
        c.must_not_contain = {"dtls", "sctp", "quic"};
    } else if (scheme == "tls") {
        c.must_contain = {"tls", "tcp"};
    } else if (scheme == "https") {
        // HTTP over TLS over TCP, or HTTP/3 over QUIC (both port 443): [http1, tls, tcp] and
        // [h3, quic, udp] race when the policy lists both (docs/http.md).
        c.must_contain_one_of = {{"tls", "tcp"}, {"h3", "quic"}};
    } else if (scheme == "http") {
        c.must_contain = {"tcp"};
        c.must_not_contain = {"tls", "quic"};
    } else if (scheme == "dtls") {
        c.must_contain = {"dtls", "udp"};
    } else {
        c.must_contain = {std::string(scheme)};
    }
    return c;
}

namespace {

/// Start a carrier over the candidates that `constraint` leaves (policy errors end it at once).
carrier start_carrier(context& ctx, const remote& r, const policy& p,
                      const stack_constraint& constraint, const local& bind = {}) {
    const auto& state = detail::kernel_access::state(ctx);
    try {
        auto prepared = state->policies.prepare(*state, p, constraint);
        auto impl = std::make_shared<detail::carrier_impl>(state, ctx.association_for(r),
                                                           prepared->merged());
        impl->start_initiate(r, std::move(prepared), bind);
        return carrier(impl);
    } catch (const policy_error& e) {
        auto impl = std::make_shared<detail::carrier_impl>(
            state, ctx.association_for(r), std::make_shared<const merged_policy>(ctx.effective(p)));
        bool none = std::string_view(e.what()).find("no candidate") != std::string_view::npos;
        impl->fail_now(
            {make_error_code(none ? errc::no_candidate : errc::policy_invalid), e.what()});
        return carrier(impl);
    }
}

} // namespace

carrier initiate(context& ctx, const remote& r, const policy& p) {
    return start_carrier(ctx, r, p, constraint_for(r));
}

carrier initiate(context& ctx, const remote& r, const local& from, const policy& p) {
    return start_carrier(ctx, r, p, constraint_for(r), from);
}

stream initiate_stream(context& ctx, const remote& r, const policy& p) {
    auto constraint = constraint_for(r);
    constraint.stream_top = true;
    return detail::stream_for_new_carrier(start_carrier(ctx, r, p, constraint));
}

listener listen(context& ctx, const local& l, const policy& p, const stack_constraint& constraint) {
    const auto& state = detail::kernel_access::state(ctx);
    auto merged = ctx.effective(p);
    auto catalog = state->registry.catalog();
    validate(merged, catalog, constraint);
    auto selected = select_stacks(merged, catalog, constraint);
    auto impl = std::make_shared<detail::listener_impl>(
        state, std::make_shared<const merged_policy>(std::move(merged)));
    impl->open(l, selected.candidates);
    return listener(impl);
}

listener& listener::on_carrier(std::function<void(carrier)> h) {
    impl_->on_carrier = std::move(h);
    return *this;
}
listener& listener::on_error(std::function<void(const error&)> h) {
    impl_->on_error = std::move(h);
    return *this;
}
void listener::accept_with(detail::unique_function<void(boost::system::error_code, carrier)> h) {
    impl_->accept(std::move(h));
}
std::vector<sdk::endpoint> listener::local_endpoints() const {
    return impl_->endpoints();
}
std::vector<std::vector<std::string>> listener::stacks() const {
    return impl_->stacks();
}
std::vector<std::string> listener::left_out() const {
    return impl_->left_out();
}
void listener::close() {
    impl_->close();
}
boost::asio::any_io_executor listener::get_executor() const {
    return impl_->executor();
}

} // namespace post
