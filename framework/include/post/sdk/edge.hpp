// What a protocol layer offers above it and needs below it.
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

} // namespace post::sdk
