// Automatic migration (docs/quic.md "Migration"): tells carriers whose stack can move its
// connection (sdk::cap_migrates) that their local address went away.
//
// A NETLINK_ROUTE socket subscribed to address changes is read on the executor, but only while
// some carrier is watched: an application's io_context.run() still returns once its carriers
// are done. The interface cache (interface_cache.hpp) has its own socket and learns of the same
// change when the carrier asks it for the addresses left.
#pragma once

#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <map>
#include <memory>

namespace post::detail {

class carrier_impl;

class address_watcher final : public std::enable_shared_from_this<address_watcher> {
public:
    explicit address_watcher(boost::asio::any_io_executor ex);
    ~address_watcher();
    address_watcher(const address_watcher&) = delete;
    address_watcher& operator=(const address_watcher&) = delete;

    /// On the executor. `c` hears of removed addresses until forget(c).
    void watch(const std::shared_ptr<carrier_impl>& c);
    void forget(const carrier_impl* c);
    /// A local address was removed (from netlink; tests may call it): every watched carrier
    /// is told, on the executor.
    void address_removed(const boost::asio::ip::address& a);

private:
    void arm();
    void on_readable();

    boost::asio::any_io_executor executor_;
    boost::asio::posix::stream_descriptor socket_;
    std::map<const carrier_impl*, std::weak_ptr<carrier_impl>> carriers_;
    bool waiting_ = false;
    bool unusable_ = false; ///< No netlink here: only calls to address_removed() move carriers.
};

} // namespace post::detail
