// Sending a train of datagrams (send_meta::segment_size) in as few system calls as possible:
// UDP GSO (one sendmsg with a UDP_SEGMENT control message per up to 64 datagrams), else, when
// the kernel or the route refuses GSO, sendmmsg with one entry per datagram.
#pragma once

#include "udp_common.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

#include <sys/socket.h>

namespace post::plugins::udp {

/// What one socket learnt about GSO; starts as the layer's `gso` option.
struct gso_state {
    bool enabled = true;
    bool logged = false; ///< The fallback was logged once.
};

/// One train being sent: where it goes and how far it got.
struct train {
    std::span<const std::byte> data;
    std::size_t segment_size = 0; ///< Non-zero.
    const sockaddr* to = nullptr; ///< nullptr on a connected socket.
    socklen_t to_length = 0;
    std::size_t offset = 0; ///< Bytes (whole datagrams) already sent.
    std::size_t limit = 0;  ///< Largest datagram (payload) the path takes: bounds one GSO call.
};

/// Sends what is left of `t` without blocking, advancing t.offset. Returns {} when all of it
/// went, would_block when the socket buffer is full (call again when writable), or the error
/// that ended it. A refusal of GSO (EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP) switches `gso` off
/// for good and the rest goes one datagram per sendmmsg entry; nothing is lost or reordered.
boost::system::error_code send_train(int fd, train& t, gso_state& gso,
                                     const udp_settings& settings) noexcept;

} // namespace post::plugins::udp
