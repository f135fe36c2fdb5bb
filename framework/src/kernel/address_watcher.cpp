#include "address_watcher.hpp"

#include "carrier_impl.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

namespace post::detail {

namespace asio = boost::asio;

namespace {

/// A non-blocking NETLINK_ROUTE socket that receives address changes, or -1.
int open_address_socket() noexcept {
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -1;
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// The addresses removed in one batch of netlink messages (RTM_DELADDR, IFA_LOCAL or else
/// IFA_ADDRESS: on point-to-point links IFA_ADDRESS is the peer's).
std::vector<asio::ip::address> removed_addresses(const char* buf, std::size_t len) {
    std::vector<asio::ip::address> out;
    auto remaining = static_cast<unsigned>(len);
    for (auto* nh = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(nh, remaining);
         nh = NLMSG_NEXT(nh, remaining)) {
        if (nh->nlmsg_type != RTM_DELADDR) continue;
        const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(nh));
        std::optional<asio::ip::address> local, address;
        auto attr_len = static_cast<unsigned>(IFA_PAYLOAD(nh));
        for (auto* rta = IFA_RTA(ifa); RTA_OK(rta, attr_len); rta = RTA_NEXT(rta, attr_len)) {
            if (rta->rta_type != IFA_LOCAL && rta->rta_type != IFA_ADDRESS) continue;
            std::optional<asio::ip::address> a;
            if (ifa->ifa_family == AF_INET && RTA_PAYLOAD(rta) == 4) {
                asio::ip::address_v4::bytes_type b;
                std::memcpy(b.data(), RTA_DATA(rta), 4);
                a = asio::ip::address_v4(b);
            } else if (ifa->ifa_family == AF_INET6 && RTA_PAYLOAD(rta) == 16) {
                asio::ip::address_v6::bytes_type b;
                std::memcpy(b.data(), RTA_DATA(rta), 16);
                a = asio::ip::address_v6(b);
            }
            (rta->rta_type == IFA_LOCAL ? local : address) = a;
        }
        if (local)
            out.push_back(*local);
        else if (address)
            out.push_back(*address);
    }
    return out;
}

} // namespace

address_watcher::address_watcher(asio::any_io_executor ex)
    : executor_(std::move(ex))
    , socket_(executor_) {}

address_watcher::~address_watcher() {
    boost::system::error_code ignored;
    socket_.close(ignored);
}

void address_watcher::watch(const std::shared_ptr<carrier_impl>& c) {
    carriers_[c.get()] = c;
    arm();
}

void address_watcher::forget(const carrier_impl* c) {
    carriers_.erase(c);
    if (carriers_.empty() && waiting_) {
        // Nothing to watch for: no pending wait keeps the application's run() going.
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    }
}

void address_watcher::arm() {
    if (waiting_ || unusable_ || carriers_.empty()) return;
    if (!socket_.is_open()) {
        const int fd = open_address_socket();
        if (fd < 0) {
            unusable_ = true;
            return;
        }
        boost::system::error_code ec;
        socket_.assign(fd, ec);
        if (ec) {
            ::close(fd);
            unusable_ = true;
            return;
        }
    }
    waiting_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [weak = weak_from_this()](const boost::system::error_code& ec) {
                           auto self = weak.lock();
                           if (!self) return;
                           self->waiting_ = false;
                           if (!ec) self->on_readable();
                           self->arm();
                       });
}

void address_watcher::on_readable() {
    std::array<char, 16384> buf;
    std::vector<asio::ip::address> removed;
    for (;;) {
        sockaddr_nl from{};
        socklen_t from_len = sizeof from;
        const auto n = ::recvfrom(socket_.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT,
                                  reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n > 0) {
            if (from.nl_pid != 0) continue; // only the kernel tells us what changed
            auto r = removed_addresses(buf.data(), static_cast<std::size_t>(n));
            removed.insert(removed.end(), r.begin(), r.end());
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        // EAGAIN: drained. ENOBUFS: some notifications were lost; the next ones still come.
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) break;
        boost::system::error_code ignored;
        socket_.close(ignored);
        unusable_ = true;
        break;
    }
    for (const auto& a : removed)
        address_removed(a);
}

void address_watcher::address_removed(const asio::ip::address& a) {
    std::vector<std::shared_ptr<carrier_impl>> told;
    for (auto it = carriers_.begin(); it != carriers_.end();) {
        if (auto c = it->second.lock()) {
            told.push_back(std::move(c));
            ++it;
        } else {
            it = carriers_.erase(it);
        }
    }
    for (auto& c : told)
        c->local_address_lost(a);
}

} // namespace post::detail
