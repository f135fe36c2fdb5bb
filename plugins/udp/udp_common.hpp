// Settings and small helpers shared by the UDP flows, acceptor and layer.
#pragma once

#include <utility>

#include <boost/asio/ip/udp.hpp>
#include <boost/system/error_code.hpp>

#include <post/sdk.hpp>
#include <post/sdk/asio.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace post::plugins::udp {

inline constexpr std::string_view layer_name = "udp";

/// Largest UDP payload the IP layer can carry without jumbograms: IPv4's 16-bit total length
/// counts its own 20-byte header and UDP's 8 (65535 - 28); IPv6's payload length excludes the
/// fixed header, so only UDP's 8 bytes come off (65535 - 8).
inline constexpr std::size_t max_udp_payload_v4 = 65507;
inline constexpr std::size_t max_udp_payload_v6 = 65527;
/// Receive buffer: room for the largest possible datagram.
inline constexpr std::size_t receive_buffer_size = 65536;
/// Datagrams read without waiting after each completed receive (those already queued), so that
/// a burst reaches the layer above in one executor turn.
inline constexpr std::size_t receive_burst = 64;

struct udp_settings {
    std::size_t max_message_size = 0; ///< 0 = the path limit.
    std::size_t max_peers = 1024;
    bool reuse_address = true;
    /// Send datagram trains (send_meta::segment_size) with UDP GSO; false: sendmmsg, one entry
    /// per datagram (also the fallback when the kernel refuses GSO).
    bool gso = true;
    sdk::log_sink* log = nullptr;

    void write_log(sdk::log_level level, std::string_view text) const noexcept {
        if (log) log->log(level, layer_name, text);
    }

    /// The send limit for a flow of this address family. We do not query IP_MTU: Linux leaves
    /// IP_MTU_DISCOVER at "want" for UDP and fragments locally, so the IP length limit is the
    /// real one; a configured max-message-size can only lower it.
    std::size_t limit_for(const boost::asio::ip::address& a) const noexcept {
        const std::size_t path = a.is_v6() ? max_udp_payload_v6 : max_udp_payload_v4;
        return max_message_size == 0 ? path : std::min(max_message_size, path);
    }
};

/// Socket receive buffer we ask for: a sender that hands trains of datagrams to the kernel
/// (UDP GSO) delivers bursts that the default (~208 KiB) drops even on loopback. The kernel caps
/// the request at net.core.rmem_max; failure is harmless, so it is ignored.
inline constexpr int wanted_receive_buffer = 4 << 20;

inline void grow_receive_buffer(boost::asio::ip::udp::socket& s) noexcept {
    boost::system::error_code ignored;
    s.set_option(boost::asio::socket_base::receive_buffer_size(wanted_receive_buffer), ignored);
}

// Shared conversions from the SDK (post/sdk/asio.hpp), bound to udp.
using sdk::to_sdk;
using sdk::to_std;

inline boost::asio::ip::udp::endpoint to_asio(const sdk::endpoint& e) {
    return sdk::to_asio<boost::asio::ip::udp>(e);
}

inline sdk::flow_error make_error(const boost::system::error_code& ec, std::string what) {
    return sdk::make_flow_error(ec, std::move(what));
}

inline sdk::flow_error oversize_error(std::size_t size, std::size_t limit) {
    return {std::make_error_code(std::errc::message_size),
            "message of " + std::to_string(size) +
                " bytes exceeds the path's maximum datagram size of " + std::to_string(limit) +
                " bytes"};
}

} // namespace post::plugins::udp
