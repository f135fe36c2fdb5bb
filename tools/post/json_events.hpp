// One JSON object per line on stdout, for `--json` output that scripts read event by event.
#pragma once

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

} // namespace post_tool
