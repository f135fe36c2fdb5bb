// The host's interfaces, gathered again only when the kernel says they changed.
//
// Listing interfaces costs a getifaddrs netlink dump plus a dozen sysfs reads per interface;
// doing that for every carrier halved the rate of short TLS connections. A NETLINK_ROUTE socket
// subscribed to link and address changes tells us when the last list went stale: the kernel
// queues its notification before the change (`ip addr add`, an interface going down) returns, so
// a non-blocking look at that socket when a list is wanted is exact, with no reader running.
#pragma once

#include <post/interfaces.hpp>

#include <memory>
#include <mutex>
#include <vector>

namespace post::detail {

class interface_cache {
public:
    interface_cache() = default;
    interface_cache(const interface_cache&) = delete;
    interface_cache& operator=(const interface_cache&) = delete;
    ~interface_cache();

    /// The interfaces as they are now (gather_interfaces(), possibly from the last call).
    /// Thread-safe. Throws what gather_interfaces() throws.
    std::shared_ptr<const std::vector<interface_info>> snapshot();

    /// How many times snapshot() had to gather (for tests).
    unsigned long gathers() const;

private:
    /// True when the socket reports a change since the last look (or cannot tell).
    bool changed_locked() noexcept;

    mutable std::mutex mutex_;
    int fd_ = -1;
    bool opened_ = false;
    unsigned long gathers_ = 0;
    std::shared_ptr<const std::vector<interface_info>> cached_;
};

} // namespace post::detail
