// Transport features (RFC 9622 selection properties) and how a layer affects them.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace post::sdk {

/// How one layer changes one feature of the stack beneath it. A stack's features are composed
/// bottom-up, starting from "absent": `provides` turns a feature on, `removes` turns it off,
/// and a feature a layer does not mention passes through unchanged.
enum class feature_effect : std::uint8_t { provides = 1, removes = 2 };

struct feature_entry {
    const char* name; ///< One of known_features.
    feature_effect effect;
};

/// The selection properties the policy engine knows (RFC 9622 §6.2 names in kebab-case,
/// plus `security`, which RFC 9622 handles as security parameters).
inline constexpr std::array<std::string_view, 14> known_features{
    "reliability",         "preserve-msg-boundaries",
    "per-msg-reliability", "preserve-order",
    "zero-rtt-msg",        "multistreaming",
    "full-checksum-send",  "full-checksum-recv",
    "congestion-control",  "keep-alive",
    "multipath",           "security",
    "soft-error-notify",   "active-read-before-send",
};

} // namespace post::sdk
