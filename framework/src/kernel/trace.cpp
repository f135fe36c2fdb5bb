#include <post/carrier.hpp>
#include <post/trace.hpp>

namespace post {

std::string_view to_string(trace_event::kind k) noexcept {
    using enum trace_event::kind;
    switch (k) {
    case resolve_started:
        return "resolve-started";
    case resolved:
        return "resolved";
    case gathered:
        return "gathered";
    case resolve_answer:
        return "resolve-answer";
    case attempt_started:
        return "attempt-started";
    case attempt_failed:
        return "attempt-failed";
    case attempt_cancelled:
        return "attempt-cancelled";
    case attempt_won:
        return "attempt-won";
    case listener_started:
        return "listener-started";
    case accepted:
        return "accepted";
    case layer_log:
        return "layer-log";
    case closed:
        return "closed";
    case forked:
        return "forked";
    case incoming:
        return "incoming";
    case migration:
        return "migration";
    case migrated:
        return "migrated";
    }
    return "?";
}

std::string_view to_string(carrier_state s) noexcept {
    switch (s) {
    case carrier_state::establishing:
        return "establishing";
    case carrier_state::active:
        return "active";
    case carrier_state::dormant:
        return "dormant";
    case carrier_state::closing:
        return "closing";
    case carrier_state::closed:
        return "closed";
    }
    return "?";
}

} // namespace post
