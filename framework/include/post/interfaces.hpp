// Gathering locals, the first phase of establishment: the host's interfaces and addresses
// (getifaddrs), what kind of link each one is, and which of them a policy's interface rules
// allow, in the order the policy prefers them.
#pragma once

#include <utility>
// <utility> before Asio (g++ 12 with Boost 1.74).
#include <boost/asio/ip/address.hpp>

#include <post/policy.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace post {

/// What kind of link an interface is. Policies name these in `interface:` rules.
enum class interface_type : std::uint8_t { loopback, ethernet, wifi, cellular, tunnel, other };

/// "loopback", "ethernet", "wifi", "cellular", "tunnel", "other".
std::string_view to_string(interface_type t) noexcept;
/// The inverse of to_string; also accepts "vpn" for tunnel. nullopt for anything else.
std::optional<interface_type> interface_type_from_string(std::string_view name) noexcept;

struct interface_info {
    std::string name;   ///< "eth0", "wlan0", "lo"
    unsigned index = 0; ///< if_nametoindex
    interface_type type = interface_type::other;
    bool up = false; ///< IFF_UP and IFF_RUNNING
    /// Unicast addresses; IPv6 link-local ones carry their scope id.
    std::vector<boost::asio::ip::address> addresses;
};

/// Every interface of the calling thread's network namespace, in the kernel's order. Throws
/// boost::system::system_error when getifaddrs fails.
std::vector<interface_info> gather_interfaces();

/// The type of interface `name` with getifaddrs flags `flags`, from what Linux says of it in
/// `sysfs_net` (normally /sys/class/net): ARPHRD type, uevent DEVTYPE, wireless/phy80211,
/// tun_flags; the name is only a last resort (wwan*, wg*, tun*).
interface_type classify_interface(const std::string& name, unsigned flags,
                                  const std::string& sysfs_net = "/sys/class/net");

/// One local address establishment may bind to.
struct local_candidate {
    std::string interface;
    interface_type type = interface_type::other;
    boost::asio::ip::address address;
    /// 0: the policy prefers its interface, 1: no rule says, 2: the policy avoids it.
    /// Establishment starts candidates of equal rank to one remote address side by side.
    int rank = 1;
};

/// What the policy's interface rules make of the gathered interfaces.
struct gathered_locals {
    /// Usable addresses of interfaces that are up, best first: `prefer` matches, then those
    /// without a rule, then `avoid` matches; within a rank, the kernel's order.
    std::vector<local_candidate> usable;
    /// Addresses left out and why: "eth1 (ethernet): prohibited by interface.prohibit [ethernet]",
    /// "wlan0 (wifi): not in interface.require [ethernet]", "eth2: down".
    std::vector<std::pair<local_candidate, std::string>> excluded;
    /// Whether any rule (require, prefer, avoid, prohibit) applied to these interfaces. When
    /// false, establishment may leave the choice of source address to the kernel's routing.
    bool rules_apply = false;
};

/// Apply `rules` (types or interface names; see interface_type_from_string) to `interfaces`.
/// Loopback addresses are never excluded by a type rule that does not name loopback or the
/// interface itself, so that a policy written for the Internet still reaches localhost.
gathered_locals apply_interface_rules(const std::vector<interface_info>& interfaces,
                                      const std::optional<interface_rules>& rules);

/// The name of the interface that holds `address`, or empty.
std::string interface_of(const std::vector<interface_info>& interfaces,
                         const boost::asio::ip::address& address);

} // namespace post
