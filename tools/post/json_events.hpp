// One JSON object per line on stdout, for `--json` output that scripts read event by event.
#pragma once

#include "common.hpp"

#include <post.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace post_tool {

/// Serialise on one line; invalid UTF-8 in message text is replaced rather than thrown on.
std::string to_line(const nlohmann::json& j);

/// Print `j` as one line on stdout and flush.
void emit_json(const nlohmann::json& j);

/// {"event": name} plus the carrier's stack, local and remote endpoints when known.
nlohmann::json carrier_event(const char* name, const post::carrier& c);

/// A send event (`sent`, `acked`, `expired`, `send-error`) of message `id`: carrier_event()
/// plus "id". Callers add what they know of the message (index, size, reason).
nlohmann::json send_event(const char* name, const post::carrier& c, post::message_id id);

/// The properties a message was sent with, as fields of `j`: "niceness" always; "lifetime_ms",
/// "immediate" and "idempotent" only when set, so default output stays short.
void add_properties(nlohmann::json& j, const post::message_properties& p);

} // namespace post_tool
