#include "interface_cache.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace post::detail {

namespace {

/// A NETLINK_ROUTE socket that receives link and address changes, or -1 (no netlink: every
/// snapshot gathers, as before the cache existed).
int open_change_socket() noexcept {
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -1;
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

} // namespace

interface_cache::~interface_cache() {
    if (fd_ >= 0) ::close(fd_);
}

bool interface_cache::changed_locked() noexcept {
    if (fd_ < 0) return true;
    bool changed = false;
    std::array<char, 8192> buffer;
    for (;;) {
        const auto n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            changed = true; // any link or address message: the contents do not matter
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        // EAGAIN: drained. ENOBUFS: notifications were lost, so assume a change. n == 0 or
        // another error: the socket is unusable; gather every time from now on.
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return changed;
        if (n < 0 && errno == ENOBUFS) return true;
        ::close(fd_);
        fd_ = -1;
        return true;
    }
}

std::shared_ptr<const std::vector<interface_info>> interface_cache::snapshot() {
    std::lock_guard lock(mutex_);
    if (!opened_) {
        // Subscribe before the first gather, so a change during it is seen next time.
        fd_ = open_change_socket();
        opened_ = true;
    }
    if (changed_locked() || !cached_) {
        cached_ = std::make_shared<const std::vector<interface_info>>(gather_interfaces());
        ++gathers_;
    }
    return cached_;
}

unsigned long interface_cache::gathers() const {
    std::lock_guard lock(mutex_);
    return gathers_;
}

} // namespace post::detail
