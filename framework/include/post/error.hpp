// Error codes of the kernel, as a Boost.System category (Asio completion handlers take
// boost::system::error_code), and the detailed error events carry a reason for people.
#pragma once

#include <boost/system/error_code.hpp>

#include <string>
#include <type_traits>

namespace post {

enum class errc {
    success = 0,
    no_candidate = 1,         ///< The policy leaves no stack for this remote.
    establishment_failed = 2, ///< Every attempt failed; the reason lists them.
    resolve_failed = 3,       ///< The remote's name did not resolve.
    timed_out = 4,            ///< Connection timeout from the policy.
    message_too_large = 5,    ///< Bigger than the stack or path allows.
    closed = 6,               ///< The carrier is closed.
    protocol_error = 7,       ///< The peer sent something malformed.
    plugin_error = 8,         ///< A layer could not be created.
    cancelled = 9,
    not_supported = 10, ///< The stack cannot do this (e.g. send on a sink).
    policy_invalid = 11,
    expired = 12,           ///< The message's lifetime ran out before it could be delivered.
    antecedent_failed = 13, ///< An antecedent of the message expired or failed.
    invalid_argument = 14,  ///< E.g. an unknown or cyclic antecedent.
    resource_limit = 15,    ///< A policy limit, e.g. a listener's connection.max-connections.
};

const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// An error event: a code to test and a sentence to show.
struct error {
    boost::system::error_code code;
    std::string reason;

    explicit operator bool() const noexcept { return static_cast<bool>(code); }
    std::string to_string() const { return reason.empty() ? code.message() : reason; }
};

} // namespace post

namespace boost::system {
template <> struct is_error_code_enum<post::errc> : std::true_type {};
} // namespace boost::system
