// Structured events about establishment and transients, for applications and `--trace`.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace post {

struct trace_event {
    enum class kind {
        resolve_started,
        resolved,
        gathered,       ///< Locals gathered: which the policy allows, which not and why.
        resolve_answer, ///< One family's DNS answer (AAAA or A), with its time.
        attempt_started,
        attempt_failed,
        attempt_cancelled,
        attempt_won,
        listener_started,
        accepted,
        layer_log,
        closed,
        forked,   ///< A carrier opened on an existing association (a new stream), no handshake.
        incoming, ///< The peer opened a new stream on an association: a carrier for it.
        /// A decision about moving a connection to another local address: asked for (by the
        /// application or because the local address went away), refused, or not possible.
        migration,
        migrated, ///< The connection now runs over another path (local or remote address).
    };
    kind what;
    std::chrono::steady_clock::time_point when;
    std::string remote; ///< Remote key or address.
    std::vector<std::string> stack;
    std::string detail;
};

std::string_view to_string(trace_event::kind k) noexcept;

} // namespace post
