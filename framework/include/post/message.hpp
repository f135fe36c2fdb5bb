// A message: the atomic unit applications send and receive, with its properties.
#pragma once

#include <post/sdk/flow.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace post {

using message_id = std::uint64_t;

/// Message properties (see docs/policy.md and DESIGN.md §2). Defaults come from the carrier.
struct message_properties {
    std::optional<std::chrono::milliseconds> lifetime; ///< Unset: no deadline.
    int niceness = 0;                                  ///< 0 = most urgent.
    bool immediate = false;
    bool idempotent = false;
    /// False: the message may be delivered before messages sent earlier (RFC 9622 msgOrdered)
    /// where the stack can do that (SCTP unordered messages); stacks that only deliver in
    /// order ignore it. Passed to the stack as the property "ordered" = "false".
    bool ordered = true;
    /// False: the message may be lost rather than retransmitted (RFC 9622 msgReliable), where
    /// the stack can send it so (QUIC DATAGRAM frames); reliable stacks deliver it anyway.
    /// Passed to the stack as the property "reliable" = "false".
    bool reliable = true;
    std::vector<message_id> antecedents;
    std::map<std::string, std::string> extra; ///< Carried to the stack as-is.
};

class message {
public:
    message() = default;
    explicit message(std::vector<std::byte> payload)
        : payload_(std::move(payload)) {}
    explicit message(std::string_view text)
        : payload_(reinterpret_cast<const std::byte*>(text.data()),
                   reinterpret_cast<const std::byte*>(text.data()) + text.size()) {}

    std::span<const std::byte> data() const noexcept { return payload_; }
    std::string_view text() const noexcept {
        return {reinterpret_cast<const char*>(payload_.data()), payload_.size()};
    }
    std::size_t size() const noexcept { return payload_.size(); }
    std::vector<std::byte>& payload() noexcept { return payload_; }

    message_properties& properties() noexcept { return properties_; }
    const message_properties& properties() const noexcept { return properties_; }

    /// Assigned by the carrier when the message is sent or received.
    message_id id() const noexcept { return id_; }
    void set_id(message_id id) noexcept { id_ = id; }

    /// Partial delivery (opt-in, for very large messages; RFC 9622 ReceivedPartial): this is a
    /// part of the message with id(); parts arrive in order and the last has
    /// end_of_message(). Whole messages have partial() == false.
    bool partial() const noexcept { return partial_; }
    bool end_of_message() const noexcept { return end_of_message_; }
    void set_partial(bool partial, bool end_of_message) noexcept {
        partial_ = partial;
        end_of_message_ = end_of_message;
    }

    /// For messages received by a responder or a datagram listener: who sent it.
    const std::optional<sdk::endpoint>& sender() const noexcept { return sender_; }
    void set_sender(sdk::endpoint e) { sender_ = e; }

private:
    std::vector<std::byte> payload_;
    message_properties properties_;
    message_id id_ = 0;
    bool partial_ = false;
    bool end_of_message_ = true;
    std::optional<sdk::endpoint> sender_;
};

} // namespace post
