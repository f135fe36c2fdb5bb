#include "udp_segments.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace post::plugins::udp {

namespace {

/// The kernel's UDP_MAX_SEGMENTS (64 since GSO came in Linux 4.18; later kernels take more).
constexpr std::size_t max_gso_segments = 64;
/// Entries per sendmmsg call when GSO is off.
constexpr std::size_t max_mmsg = 64;

boost::system::error_code from_errno(int e) {
    return {e, boost::system::system_category()};
}

bool is_gso_refusal(int e) {
    return e == EIO || e == EINVAL || e == ENOPROTOOPT || e == EOPNOTSUPP;
}

/// One sendmsg of `len` bytes at `at`: a single datagram, or (segment < len) a GSO train.
ssize_t send_one(int fd, const train& t, const std::byte* at, std::size_t len) {
    iovec iov{const_cast<std::byte*>(at), len};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(t.to);
    msg.msg_namelen = t.to ? t.to_length : 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))] = {};
    if (len > t.segment_size) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto seg = static_cast<std::uint16_t>(t.segment_size);
        std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
    return ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/// The rest of `t` as separate datagrams, up to max_mmsg per sendmmsg call.
boost::system::error_code send_separately(int fd, train& t) {
    mmsghdr msgs[max_mmsg];
    iovec iovs[max_mmsg];
    while (t.offset < t.data.size()) {
        std::size_t count = 0;
        for (std::size_t at = t.offset; at < t.data.size() && count < max_mmsg;
             at += t.segment_size, ++count) {
            const std::size_t len = std::min(t.segment_size, t.data.size() - at);
            iovs[count] = {const_cast<std::byte*>(t.data.data() + at), len};
            msgs[count] = {};
            msgs[count].msg_hdr.msg_name = const_cast<sockaddr*>(t.to);
            msgs[count].msg_hdr.msg_namelen = t.to ? t.to_length : 0;
            msgs[count].msg_hdr.msg_iov = &iovs[count];
            msgs[count].msg_hdr.msg_iovlen = 1;
        }
        const int n =
            ::sendmmsg(fd, msgs, static_cast<unsigned>(count), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return from_errno(errno);
        }
        for (int i = 0; i < n; ++i)
            t.offset += iovs[i].iov_len;
    }
    return {};
}

} // namespace

boost::system::error_code send_train(int fd, train& t, gso_state& gso,
                                     const udp_settings& settings) noexcept {
    if (t.segment_size == 0) return make_error_code(boost::system::errc::invalid_argument);
    // The IP length limit bounds one GSO call as it bounds one datagram.
    const std::size_t per_call =
        std::min(max_gso_segments, std::max<std::size_t>(1, t.limit / t.segment_size)) *
        t.segment_size;
    while (gso.enabled && t.offset < t.data.size()) {
        const std::size_t len = std::min(per_call, t.data.size() - t.offset);
        const ssize_t n = send_one(fd, t, t.data.data() + t.offset, len);
        if (n >= 0) {
            t.offset += len; // a datagram socket sends all of it or nothing
            continue;
        }
        const int e = errno;
        if (e == EINTR) continue;
        if (len > t.segment_size && is_gso_refusal(e)) {
            gso.enabled = false;
            if (!gso.logged) {
                gso.logged = true;
                settings.write_log(sdk::log_level::info,
                                   std::string("UDP GSO refused (") + std::strerror(e) +
                                       "): sending datagram trains one datagram at a time");
            }
            break;
        }
        return from_errno(e);
    }
    return send_separately(fd, t);
}

} // namespace post::plugins::udp
