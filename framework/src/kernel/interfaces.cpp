// Gathering locals: getifaddrs grouped by interface, each interface classified from what sysfs
// says of it, and the policy's interface rules applied to the result.
#include <post/interfaces.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>

#include <ifaddrs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <sys/socket.h>

namespace post {

namespace {

namespace fs = std::filesystem;
namespace ip = boost::asio::ip;

// ---- classification ------------------------------------------------------------------------

/// Linux refuses interface names with '/', ':' or whitespace, and "." and ".." are not
/// interfaces: anything else would make us read outside the interface's sysfs directory.
bool safe_interface_name(const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.size() >= IFNAMSIZ) return false;
    return std::none_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || c == '\0' || c == ' ' || c == '\t' || c == '\n';
    });
}

/// The first line of a small sysfs file, or nothing; never throws (sysfs files vanish when an
/// interface goes away, and some are unreadable without privileges).
std::optional<std::string> read_first_line(const fs::path& file) {
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line)) return std::nullopt;
    return line;
}

/// DEVTYPE from the interface's uevent: drivers that know what they are say it there even when
/// their ARPHRD type is plain Ethernet (Wi-Fi, WWAN modems that present as Ethernet, overlays).
std::optional<std::string> read_devtype(const fs::path& uevent) {
    std::ifstream in(uevent);
    std::string line;
    constexpr std::string_view key = "DEVTYPE=";
    for (int lines = 0; lines < 64 && std::getline(in, line); ++lines)
        if (line.rfind(key, 0) == 0) return line.substr(key.size());
    return std::nullopt;
}

bool present(const fs::path& p) {
    std::error_code ec;
    return fs::exists(p, ec) && !ec;
}

std::optional<interface_type> type_from_devtype(std::string_view devtype) {
    if (devtype == "wlan") return interface_type::wifi;
    if (devtype == "wwan") return interface_type::cellular;
    // Overlays and VPNs that say what they are, although some use an Ethernet ARPHRD type.
    if (devtype == "wireguard" || devtype == "vxlan" || devtype == "geneve" || devtype == "l2tpeth")
        return interface_type::tunnel;
    return std::nullopt;
}

/// From <linux/if_arp.h>; glibc's <net/if_arp.h> lacks it and the two headers do not mix.
constexpr long arphrd_ip6gre = 823;

std::optional<interface_type> type_from_arphrd(long type) {
    switch (type) {
    case ARPHRD_ETHER: // also veth, dummy, bridge, bond, vlan, macvlan, ifb
        return interface_type::ethernet;
    case ARPHRD_LOOPBACK:
        return interface_type::loopback;
    case ARPHRD_IEEE80211:
    case ARPHRD_IEEE80211_PRISM:
    case ARPHRD_IEEE80211_RADIOTAP:
        return interface_type::wifi;
    case ARPHRD_RAWIP: // rmnet and other modems carrying bare IP
        return interface_type::cellular;
    case ARPHRD_NONE: // tun, wireguard
    case ARPHRD_TUNNEL:
    case ARPHRD_TUNNEL6:
    case ARPHRD_SIT:
    case ARPHRD_IPGRE:
    case arphrd_ip6gre:
    case ARPHRD_PPP:
        return interface_type::tunnel;
    default:
        return std::nullopt;
    }
}

/// What sysfs says, most specific evidence first; nothing when the directory is missing or
/// says nothing we recognise.
std::optional<interface_type> classify_from_sysfs(const fs::path& dir) {
    if (!present(dir)) return std::nullopt;
    if (present(dir / "wireless") || present(dir / "phy80211")) return interface_type::wifi;
    if (auto devtype = read_devtype(dir / "uevent"))
        if (auto t = type_from_devtype(*devtype)) return t;
    // Before the ARPHRD type: a tap device is ARPHRD_ETHER but still a tunnel.
    if (present(dir / "tun_flags")) return interface_type::tunnel;
    if (auto line = read_first_line(dir / "type")) {
        try {
            std::size_t used = 0;
            const long type = std::stol(*line, &used);
            if (used == line->size()) return type_from_arphrd(type);
        } catch (const std::exception&) {
            // Not a number: sysfs says nothing useful.
        }
    }
    return std::nullopt;
}

bool starts_with_any(std::string_view name, std::initializer_list<std::string_view> prefixes) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [&](std::string_view p) { return name.substr(0, p.size()) == p; });
}

/// Naming conventions (kernel drivers, systemd predictable names, Android modems): only a last
/// resort, since anyone can name an interface anything.
interface_type classify_from_name(std::string_view name) {
    if (starts_with_any(name, {"wwan", "rmnet", "ccmni"})) return interface_type::cellular;
    if (starts_with_any(name, {"wg", "tun", "tap", "ppp", "ipsec", "vpn"}))
        return interface_type::tunnel;
    if (starts_with_any(name, {"wlan", "wlp"})) return interface_type::wifi;
    if (starts_with_any(name, {"eth", "en"})) return interface_type::ethernet;
    return interface_type::other;
}

/// `sysfs_net` empty: do not look at sysfs (it describes another network namespace).
interface_type classify(const std::string& name, unsigned flags, const std::string& sysfs_net) {
    if (flags & IFF_LOOPBACK) return interface_type::loopback;
    if (!sysfs_net.empty() && safe_interface_name(name)) {
        try {
            if (auto t = classify_from_sysfs(fs::path(sysfs_net) / name)) return *t;
        } catch (...) {
            // Allocation failure or a filesystem oddity: fall back to what needs no sysfs.
        }
    }
    if (flags & IFF_POINTOPOINT) return interface_type::tunnel;
    return classify_from_name(name);
}

/// sysfs shows the interfaces of the network namespace that mounted it, which after a bare
/// unshare(CLONE_NEWNET) is not ours: a same-named host interface would lend us its type. Its
/// ifindex tells; an interface sysfs does not list at all is harmless (nothing is read).
bool sysfs_describes(const std::string& sysfs_net, const std::string& name, unsigned index) {
    if (!safe_interface_name(name)) return false;
    try {
        const auto line = read_first_line(fs::path(sysfs_net) / name / "ifindex");
        return !line || *line == std::to_string(index);
    } catch (...) {
        return false;
    }
}

// ---- gathering -----------------------------------------------------------------------------

struct ifaddrs_deleter {
    void operator()(ifaddrs* p) const noexcept { ::freeifaddrs(p); }
};

/// IPv4 addresses of an alias carry its label ("eth0:1"); the interface is what precedes ':'.
std::string interface_name_of(const char* label) {
    std::string name(label ? label : "");
    if (auto colon = name.find(':'); colon != std::string::npos) name.resize(colon);
    return name;
}

std::optional<ip::address> address_of(const sockaddr* sa, unsigned index) {
    if (!sa) return std::nullopt;
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        ip::address_v4::bytes_type bytes;
        std::memcpy(bytes.data(), &in->sin_addr, bytes.size());
        return ip::address_v4(bytes);
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        ip::address_v6::bytes_type bytes;
        std::memcpy(bytes.data(), &in6->sin6_addr, bytes.size());
        ip::address_v6 a(bytes, in6->sin6_scope_id);
        // A link-local address means nothing without its link.
        if (a.is_link_local() && a.scope_id() == 0) a.scope_id(index);
        if (!a.is_link_local()) a.scope_id(0);
        return a;
    }
    return std::nullopt;
}

// ---- rules ---------------------------------------------------------------------------------

enum class match : std::uint8_t { none, by_type, by_name };

match matches(const std::string& entry, const interface_info& i) {
    if (entry == i.name) return match::by_name;
    if (interface_type_from_string(entry) == i.type) return match::by_type;
    return match::none;
}

/// The strongest match of any entry in `list`, and the entries that matched.
struct list_match {
    match strongest = match::none;
    std::vector<std::string> entries;
};

list_match match_list(const std::vector<std::string>& list, const interface_info& i) {
    list_match m;
    for (const auto& entry : list) {
        const match one = matches(entry, i);
        if (one == match::none) continue;
        m.strongest = std::max(m.strongest, one);
        m.entries.push_back(entry);
    }
    return m;
}

std::string join(const std::vector<std::string>& list) {
    std::string out = "[";
    for (std::size_t n = 0; n < list.size(); ++n) {
        if (n) out += ", ";
        out += list[n];
    }
    return out + "]";
}

std::string described(const interface_info& i) {
    return i.name + " (" + std::string(to_string(i.type)) + ")";
}

/// Why `i` may not be used, or empty when it may.
std::string exclusion(const interface_info& i, const interface_rules* rules) {
    if (!i.up) return i.name + ": down";
    if (!rules) return {};
    const bool loopback = i.type == interface_type::loopback;
    // The loopback exception: only an entry naming loopback or the interface itself counts.
    // Every entry that matches a loopback interface does, so prohibit needs no special case.
    if (auto m = match_list(rules->prohibit, i); m.strongest != match::none)
        return described(i) + ": prohibited by interface.prohibit " + join(m.entries);
    if (!rules->require.empty() && match_list(rules->require, i).strongest == match::none &&
        !loopback)
        return described(i) + ": not in interface.require " + join(rules->require);
    return {};
}

/// 0 preferred, 1 no rule, 2 avoided. A name is more specific than a type, so it wins a
/// conflict between prefer and avoid; a tie means the policy contradicts itself: no rule.
int rank_of(const interface_info& i, const interface_rules* rules) {
    if (!rules) return 1;
    const match prefer = match_list(rules->prefer, i).strongest;
    const match avoid = match_list(rules->avoid, i).strongest;
    if (prefer > avoid) return 0;
    if (avoid > prefer) return 2;
    return 1;
}

ip::address without_mapping(const ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
    return a;
}

} // namespace

std::string_view to_string(interface_type t) noexcept {
    switch (t) {
    case interface_type::loopback:
        return "loopback";
    case interface_type::ethernet:
        return "ethernet";
    case interface_type::wifi:
        return "wifi";
    case interface_type::cellular:
        return "cellular";
    case interface_type::tunnel:
        return "tunnel";
    case interface_type::other:
        return "other";
    }
    return "other";
}

std::optional<interface_type> interface_type_from_string(std::string_view name) noexcept {
    constexpr std::array all{interface_type::loopback, interface_type::ethernet,
                             interface_type::wifi,     interface_type::cellular,
                             interface_type::tunnel,   interface_type::other};
    for (auto t : all)
        if (to_string(t) == name) return t;
    if (name == "vpn") return interface_type::tunnel;
    return std::nullopt;
}

interface_type classify_interface(const std::string& name, unsigned flags,
                                  const std::string& sysfs_net) {
    return classify(name, flags, sysfs_net);
}

std::vector<interface_info> gather_interfaces() {
    ifaddrs* raw = nullptr;
    if (::getifaddrs(&raw) != 0)
        throw boost::system::system_error(errno, boost::system::system_category(), "getifaddrs");
    const std::unique_ptr<ifaddrs, ifaddrs_deleter> list(raw);

    std::vector<interface_info> interfaces;
    std::vector<unsigned> flags; // parallel to interfaces
    auto find_or_add = [&](const ifaddrs& entry) -> interface_info& {
        const std::string name = interface_name_of(entry.ifa_name);
        auto it = std::find_if(interfaces.begin(), interfaces.end(),
                               [&](const interface_info& i) { return i.name == name; });
        if (it != interfaces.end()) return *it;
        interface_info& i = interfaces.emplace_back();
        i.name = name;
        i.index = ::if_nametoindex(name.c_str());
        flags.push_back(entry.ifa_flags);
        return i;
    };

    // AF_PACKET entries come first, one per interface in index order, so interfaces without an
    // address are listed too and the order is the kernel's.
    for (const ifaddrs* e = list.get(); e; e = e->ifa_next) {
        if (!e->ifa_name) continue;
        interface_info& i = find_or_add(*e);
        if (e->ifa_addr && e->ifa_addr->sa_family == AF_PACKET && i.index == 0)
            i.index = static_cast<unsigned>(
                reinterpret_cast<const sockaddr_ll*>(e->ifa_addr)->sll_ifindex);
        if (auto a = address_of(e->ifa_addr, i.index)) {
            if (std::find(i.addresses.begin(), i.addresses.end(), *a) == i.addresses.end())
                i.addresses.push_back(*a);
        }
    }

    const std::string sysfs_net = "/sys/class/net";
    for (std::size_t n = 0; n < interfaces.size(); ++n) {
        interface_info& i = interfaces[n];
        i.up = (flags[n] & IFF_UP) && (flags[n] & IFF_RUNNING);
        const bool trust_sysfs = sysfs_describes(sysfs_net, i.name, i.index);
        i.type = classify(i.name, flags[n], trust_sysfs ? sysfs_net : std::string());
    }
    return interfaces;
}

gathered_locals apply_interface_rules(const std::vector<interface_info>& interfaces,
                                      const std::optional<interface_rules>& rules) {
    const interface_rules* r = rules ? &*rules : nullptr;
    gathered_locals out;
    out.rules_apply = r && (!r->require.empty() || !r->prefer.empty() || !r->avoid.empty() ||
                            !r->prohibit.empty());

    std::array<std::vector<local_candidate>, 3> ranked;
    for (const auto& i : interfaces) {
        const std::string why = exclusion(i, r);
        const int rank = rank_of(i, r);
        if (i.addresses.empty()) {
            // Nothing to use, but say why, so `explain` accounts for every interface.
            local_candidate c{i.name, i.type, {}, rank};
            out.excluded.emplace_back(std::move(c),
                                      why.empty() ? described(i) + ": no address" : why);
            continue;
        }
        for (const auto& a : i.addresses) {
            local_candidate c{i.name, i.type, a, rank};
            if (why.empty())
                ranked[static_cast<std::size_t>(rank)].push_back(std::move(c));
            else
                out.excluded.emplace_back(std::move(c), why);
        }
    }
    for (auto& rank : ranked)
        std::move(rank.begin(), rank.end(), std::back_inserter(out.usable));
    return out;
}

std::string interface_of(const std::vector<interface_info>& interfaces,
                         const ip::address& address) {
    const ip::address wanted = without_mapping(address);
    const unsigned scope = wanted.is_v6() ? wanted.to_v6().scope_id() : 0;
    std::string first;
    for (const auto& i : interfaces) {
        for (const auto& a : i.addresses) {
            if (a.is_v4() != wanted.is_v4()) continue;
            const bool same =
                a.is_v4() ? a == wanted : a.to_v6().to_bytes() == wanted.to_v6().to_bytes();
            if (!same) continue;
            // The same link-local address can be on several links: the scope id picks one.
            if (scope == 0 || scope == i.index) return i.name;
            if (first.empty()) first = i.name;
        }
    }
    return first;
}

} // namespace post
