// What a protocol layer offers above it and needs below it, and which way its data travels.
#pragma once

#include <cstdint>
#include <string_view>

namespace post::sdk {

/// The kind of service crossing the boundary between two adjacent layers.
enum class edge : std::uint8_t {
    none = 0, ///< Below a bottom layer: the operating system (sockets).
    stream,   ///< Ordered, reliable bytes without boundaries (TCP, TLS).
    datagram, ///< Bounded, possibly lost packets (UDP, DTLS).
    message,  ///< Whole messages with per-message properties (framers, SCTP, QUIC).
};

constexpr std::string_view to_string(edge e) noexcept {
    switch (e) {
    case edge::none:
        return "none";
    case edge::stream:
        return "stream";
    case edge::datagram:
        return "datagram";
    case edge::message:
        return "message";
    }
    return "?";
}

/// ABI 4.1. Which way data may travel on a flow (RFC 9622 section 6.2.16, Direction of
/// Communication), asked for in open_params. A layer that cannot open a one-way flow opens a
/// bidirectional one with the other half unused (TCP, TLS, SCTP): that is not an error.
enum class flow_direction : std::uint8_t {
    bidirectional,
    send_only,    ///< Unidirectional send: this side sends, the peer only receives.
    receive_only, ///< Unidirectional receive: the peer sends, this side only receives.
};

constexpr std::string_view to_string(flow_direction d) noexcept {
    switch (d) {
    case flow_direction::bidirectional:
        return "bidirectional";
    case flow_direction::send_only:
        return "unidirectional-send";
    case flow_direction::receive_only:
        return "unidirectional-receive";
    }
    return "?";
}

} // namespace post::sdk
