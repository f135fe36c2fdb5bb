// Gathering locals: the real getifaddrs, classification against a fake sysfs tree, the policy's
// interface rules on hand-built interfaces, and (as root) real dummy and tun interfaces in a
// private network namespace.
#define BOOST_TEST_MODULE interfaces
#include <utility>

#include <post/interfaces.hpp>

#include "interface_cache.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

using namespace post;
namespace utf = boost::unit_test;
namespace fs = std::filesystem;
namespace ip = boost::asio::ip;

namespace post {
/// Lets failed checks print types by name (found by Boost.Test through ADL).
std::ostream& boost_test_print_type(std::ostream& os, interface_type t) {
    return os << to_string(t);
}
} // namespace post

namespace {

// ---- the private network namespace (root only) ---------------------------------------------

/// Why the namespace could not be set up; empty once it is.
std::string netns_problem = "not tried";
/// Keeps tun0 attached, so that it has a carrier (IFF_RUNNING) and counts as up.
int tun_fd = -1;

bool run(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) == 0) return true;
    netns_problem = "`" + command + "` failed";
    return false;
}

bool attach_tun(const char* name) {
    tun_fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (tun_fd >= 0 && ::ioctl(tun_fd, TUNSETIFF, &ifr) == 0) return true;
    netns_problem = std::string("cannot attach to ") + name + ": " + std::strerror(errno);
    return false;
}

bool set_up_private_netns() {
    if (geteuid() != 0) {
        netns_problem = "needs root (creates interfaces in a private network namespace)";
        return false;
    }
    if (std::system("command -v ip >/dev/null 2>&1") != 0) {
        netns_problem = "needs the `ip` command (iproute2)";
        return false;
    }
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
        netns_problem = "needs /dev/net/tun";
        return false;
    }
    // A mount namespace too: sysfs shows the interfaces of the namespace that mounted it, so
    // /sys is mounted afresh (as `ip netns exec` does) for classification to see d0 and tun0.
    if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
        netns_problem =
            std::string("unshare(CLONE_NEWNET | CLONE_NEWNS) failed: ") + std::strerror(errno);
        return false;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        (::umount2("/sys", MNT_DETACH) != 0 && errno != EINVAL) ||
        ::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) {
        netns_problem =
            std::string("cannot mount sysfs for the new namespace: ") + std::strerror(errno);
        return false;
    }
    // tun0 first, so that the kernel's order alone would not put it last. Not every kernel
    // has the dummy driver: a veth pair (both ends up, so d0 has a carrier) does as well.
    const bool ready =
        run("ip link set lo up") && run("ip tuntap add dev tun0 mode tun") && attach_tun("tun0") &&
        run("ip addr add 10.78.0.1/24 dev tun0") && run("ip link set tun0 up") &&
        (run("ip link add d0 type dummy") ||
         (run("ip link add d0 type veth peer name d0p") && run("ip link set d0p up"))) &&
        run("ip addr add 10.77.0.1/24 dev d0") && run("ip addr add fd77::1/64 dev d0 nodad") &&
        run("ip addr add fe80::77/64 dev d0 nodad") && run("ip link set d0 up") &&
        (run("ip link add d1 type dummy") || run("ip link add d1 type veth peer name d1p"));
    if (ready) netns_problem.clear();
    return ready;
}

/// Before any thread exists: unshare changes the namespace of the calling thread only.
struct netns_fixture {
    netns_fixture() { set_up_private_netns(); }
    ~netns_fixture() {
        if (tun_fd >= 0) ::close(tun_fd);
    }
};
BOOST_TEST_GLOBAL_FIXTURE(netns_fixture);

struct in_private_netns {
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        boost::test_tools::assertion_result r(netns_problem.empty());
        r.message() << "skipped: " << netns_problem;
        return r;
    }
};

// ---- helpers -------------------------------------------------------------------------------

const interface_info* find(const std::vector<interface_info>& all, const std::string& name) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& i) { return i.name == name; });
    return it == all.end() ? nullptr : &*it;
}

bool holds(const interface_info& i, const std::string& address) {
    const auto wanted = ip::make_address(address);
    return std::any_of(i.addresses.begin(), i.addresses.end(), [&](const ip::address& a) {
        if (a.is_v4() != wanted.is_v4()) return false;
        return a.is_v4() ? a == wanted : a.to_v6().to_bytes() == wanted.to_v6().to_bytes();
    });
}

interface_info make_iface(std::string name, interface_type type, bool up,
                          std::initializer_list<const char*> addresses, unsigned index = 0) {
    interface_info i;
    i.name = std::move(name);
    i.index = index;
    i.type = type;
    i.up = up;
    for (const char* a : addresses)
        i.addresses.push_back(ip::make_address(a));
    return i;
}

/// "name/address" for each usable local, in order.
std::vector<std::string> order(const gathered_locals& g) {
    std::vector<std::string> out;
    for (const auto& c : g.usable)
        out.push_back(c.interface + "/" + c.address.to_string());
    return out;
}

/// Interface name -> reason, for the excluded locals.
std::map<std::string, std::string> reasons(const gathered_locals& g) {
    std::map<std::string, std::string> out;
    for (const auto& [c, why] : g.excluded)
        out[c.interface] = why;
    return out;
}

interface_rules rules(std::vector<std::string> require, std::vector<std::string> prefer,
                      std::vector<std::string> avoid, std::vector<std::string> prohibit) {
    interface_rules r;
    r.require = std::move(require);
    r.prefer = std::move(prefer);
    r.avoid = std::move(avoid);
    r.prohibit = std::move(prohibit);
    return r;
}

/// A sysfs-like tree in a fresh temporary directory, removed afterwards.
struct fake_sysfs {
    fs::path root;

    fake_sysfs() {
        root = fs::temp_directory_path() /
               ("post-test-sysfs-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(root);
        fs::create_directories(root);
    }
    ~fake_sysfs() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }

    /// An interface directory with files (name -> content); a name ending in '/' is a directory.
    void add(const std::string& name, std::map<std::string, std::string> files) {
        fs::create_directories(root / name);
        for (const auto& [file, content] : files) {
            if (!file.empty() && file.back() == '/')
                fs::create_directories(root / name / file);
            else
                std::ofstream(root / name / file) << content;
        }
    }

    interface_type classify(const std::string& name, unsigned flags = IFF_UP) const {
        return classify_interface(name, flags, root.string());
    }

    static inline int counter = 0;
};

} // namespace

// ---- the real getifaddrs -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_loopback_interface_is_gathered_and_classified) {
    const auto all = gather_interfaces();
    const auto* lo = find(all, "lo");
    BOOST_REQUIRE_MESSAGE(lo, "getifaddrs lists lo");
    BOOST_TEST(lo->type == interface_type::loopback);
    BOOST_TEST(lo->up);
    BOOST_TEST(lo->index == ::if_nametoindex("lo"));
    BOOST_TEST(holds(*lo, "127.0.0.1"));
    for (const auto& i : all) {
        BOOST_TEST(!i.name.empty());
        BOOST_TEST(i.name.find(':') == std::string::npos); // aliases folded into their interface
        for (const auto& a : i.addresses)
            if (a.is_v6() && a.to_v6().is_link_local())
                BOOST_TEST(a.to_v6().scope_id() == i.index, i.name << " " << a);
    }
}

BOOST_AUTO_TEST_CASE(type_names_round_trip) {
    for (auto t : {interface_type::loopback, interface_type::ethernet, interface_type::wifi,
                   interface_type::cellular, interface_type::tunnel, interface_type::other})
        BOOST_TEST((interface_type_from_string(to_string(t)) == t));
    BOOST_TEST(to_string(interface_type::wifi) == "wifi");
    BOOST_TEST((interface_type_from_string("vpn") == interface_type::tunnel));
    BOOST_TEST(!interface_type_from_string("Wifi").has_value());
    BOOST_TEST(!interface_type_from_string("eth0").has_value());
    BOOST_TEST(!interface_type_from_string("").has_value());
}

// ---- classification ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_loopback_flag_wins) {
    fake_sysfs sys;
    sys.add("lo", {{"type", "1\n"}});
    BOOST_TEST(sys.classify("lo", IFF_UP | IFF_LOOPBACK) == interface_type::loopback);
}

BOOST_AUTO_TEST_CASE(wifi_from_wireless_phy80211_and_devtype) {
    fake_sysfs sys;
    sys.add("a", {{"type", "1\n"}, {"wireless/", ""}});
    sys.add("b", {{"type", "1\n"}, {"phy80211/", ""}});
    sys.add("c", {{"type", "1\n"}, {"uevent", "INTERFACE=c\nDEVTYPE=wlan\nIFINDEX=3\n"}});
    BOOST_TEST(sys.classify("a") == interface_type::wifi);
    BOOST_TEST(sys.classify("b") == interface_type::wifi);
    BOOST_TEST(sys.classify("c") == interface_type::wifi);
}

BOOST_AUTO_TEST_CASE(devtype_names_cellular_and_tunnels) {
    fake_sysfs sys;
    // A USB modem that presents as Ethernet still says wwan.
    sys.add("usb0", {{"type", "1\n"}, {"uevent", "DEVTYPE=wwan\n"}});
    sys.add("wgx", {{"type", "65534\n"}, {"uevent", "DEVTYPE=wireguard\n"}});
    sys.add("ov", {{"type", "1\n"}, {"uevent", "DEVTYPE=vxlan\n"}});
    sys.add("br0", {{"type", "1\n"}, {"uevent", "DEVTYPE=bridge\n"}});
    BOOST_TEST(sys.classify("usb0") == interface_type::cellular);
    BOOST_TEST(sys.classify("wgx") == interface_type::tunnel);
    BOOST_TEST(sys.classify("ov") == interface_type::tunnel);
    BOOST_TEST(sys.classify("br0") == interface_type::ethernet); // bridges are Ethernet
}

BOOST_AUTO_TEST_CASE(tun_flags_make_a_tap_device_a_tunnel) {
    fake_sysfs sys;
    sys.add("x", {{"type", "1\n"}, {"tun_flags", "0x1002\n"}});
    BOOST_TEST(sys.classify("x") == interface_type::tunnel);
}

BOOST_AUTO_TEST_CASE(arphrd_types) {
    fake_sysfs sys;
    const std::map<std::string, interface_type> expected{
        {"1", interface_type::ethernet},   {"65534", interface_type::tunnel},
        {"768", interface_type::tunnel},   {"769", interface_type::tunnel},
        {"776", interface_type::tunnel},   {"778", interface_type::tunnel},
        {"823", interface_type::tunnel},   {"512", interface_type::tunnel},
        {"519", interface_type::cellular}, {"801", interface_type::wifi},
        {"32", interface_type::other},     {"junk", interface_type::other},
    };
    for (const auto& [type, t] : expected) {
        // The names say nothing: what sysfs says decides.
        const std::string name = "if" + type;
        sys.add(name, {{"type", type + "\n"}});
        BOOST_TEST(sys.classify(name) == t, "type " << type);
    }
    // Sysfs beats the name: an Ethernet device named like a modem is Ethernet.
    sys.add("wwan7", {{"type", "1\n"}});
    BOOST_TEST(sys.classify("wwan7") == interface_type::ethernet);
}

BOOST_AUTO_TEST_CASE(point_to_point_without_another_answer_is_a_tunnel) {
    fake_sysfs sys;
    sys.add("ib0", {{"type", "32\n"}});
    BOOST_TEST(sys.classify("ib0", IFF_UP | IFF_POINTOPOINT) == interface_type::tunnel);
    BOOST_TEST(sys.classify("ib0", IFF_UP) == interface_type::other);
    BOOST_TEST(sys.classify("missing", IFF_UP | IFF_POINTOPOINT) == interface_type::tunnel);
    // Sysfs answered: the flag does not override it.
    sys.add("e", {{"type", "1\n"}});
    BOOST_TEST(sys.classify("e", IFF_UP | IFF_POINTOPOINT) == interface_type::ethernet);
}

BOOST_AUTO_TEST_CASE(names_are_the_last_resort) {
    fake_sysfs sys;
    const std::map<std::string, interface_type> expected{
        {"wwan0", interface_type::cellular},  {"rmnet_data0", interface_type::cellular},
        {"ccmni1", interface_type::cellular}, {"wg0", interface_type::tunnel},
        {"tun3", interface_type::tunnel},     {"tap1", interface_type::tunnel},
        {"ppp0", interface_type::tunnel},     {"ipsec0", interface_type::tunnel},
        {"vpn1", interface_type::tunnel},     {"wlan0", interface_type::wifi},
        {"wlp2s0", interface_type::wifi},     {"eth1", interface_type::ethernet},
        {"enp3s0", interface_type::ethernet}, {"foo", interface_type::other},
    };
    for (const auto& [name, t] : expected) {
        BOOST_TEST(sys.classify(name) == t, name << " without a sysfs directory");
        BOOST_TEST(classify_interface(name, IFF_UP, "/nonexistent/sysfs") == t, name);
    }
    // A directory with nothing recognisable in it also falls back to the name.
    sys.add("wlan5", {{"uevent/", ""}, {"type", "\n"}});
    BOOST_TEST(sys.classify("wlan5") == interface_type::wifi);
}

BOOST_AUTO_TEST_CASE(odd_names_and_unreadable_files_never_throw) {
    fake_sysfs sys;
    sys.add("x", {{"type/", ""}, {"uevent/", ""}});
    BOOST_TEST(sys.classify("x") == interface_type::other);
    // Never leaves the interface's directory.
    sys.add("esc", {{"type", "1\n"}});
    BOOST_TEST(sys.classify("../" + sys.root.filename().string() + "/esc") ==
               interface_type::other);
    BOOST_TEST(sys.classify("") == interface_type::other);
    BOOST_TEST(sys.classify("..") == interface_type::other);
    BOOST_TEST(classify_interface("eth0", IFF_UP, "") == interface_type::ethernet);
}

// ---- rules ---------------------------------------------------------------------------------

namespace {
std::vector<interface_info> sample() {
    return {
        make_iface("lo", interface_type::loopback, true, {"127.0.0.1", "::1"}, 1),
        make_iface("eth0", interface_type::ethernet, true, {"192.0.2.1", "2001:db8::1"}, 2),
        make_iface("wlan0", interface_type::wifi, true, {"198.51.100.1"}, 3),
        make_iface("tun0", interface_type::tunnel, true, {"10.8.0.2"}, 4),
        make_iface("eth1", interface_type::ethernet, true, {"192.0.2.2", "192.0.2.3"}, 5),
        make_iface("wwan0", interface_type::cellular, true, {"100.64.0.1"}, 6),
        make_iface("eth2", interface_type::ethernet, false, {"203.0.113.1"}, 7),
        make_iface("eth3", interface_type::ethernet, true, {}, 8),
    };
}
} // namespace

BOOST_AUTO_TEST_CASE(without_rules_every_up_address_is_usable_in_kernel_order) {
    for (const auto& r : {std::optional<interface_rules>{}, std::optional(interface_rules{})}) {
        const auto g = apply_interface_rules(sample(), r);
        BOOST_TEST(!g.rules_apply);
        const std::vector<std::string> expected{
            "lo/127.0.0.1",       "lo/::1",        "eth0/192.0.2.1", "eth0/2001:db8::1",
            "wlan0/198.51.100.1", "tun0/10.8.0.2", "eth1/192.0.2.2", "eth1/192.0.2.3",
            "wwan0/100.64.0.1"};
        BOOST_TEST(order(g) == expected, boost::test_tools::per_element());
        const auto why = reasons(g);
        BOOST_TEST(why.size() == 2u);
        BOOST_TEST(why.at("eth2") == "eth2: down");
        BOOST_TEST(why.at("eth3") == "eth3 (ethernet): no address");
        BOOST_TEST(g.usable.front().type == interface_type::loopback);
    }
}

BOOST_AUTO_TEST_CASE(prefer_ranks_first_avoid_last_and_order_is_stable) {
    const auto g = apply_interface_rules(sample(), rules({}, {"wifi"}, {"vpn", "cellular"}, {}));
    BOOST_TEST(g.rules_apply);
    const std::vector<std::string> expected{
        "wlan0/198.51.100.1", "lo/127.0.0.1",     "lo/::1",
        "eth0/192.0.2.1",     "eth0/2001:db8::1", "eth1/192.0.2.2",
        "eth1/192.0.2.3",     "tun0/10.8.0.2",    "wwan0/100.64.0.1"};
    BOOST_TEST(order(g) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_name_is_more_specific_than_a_type) {
    auto all = sample();
    all.push_back(make_iface("wlan1", interface_type::wifi, true, {"198.51.100.2"}, 9));
    const auto g = apply_interface_rules(all, rules({}, {"wlan1"}, {"wifi"}, {}));
    BOOST_TEST(order(g).front() == "wlan1/198.51.100.2");
    BOOST_TEST(order(g).back() == "wlan0/198.51.100.1");
    // Preferring and avoiding the same type contradicts itself: no rule.
    const auto tie = apply_interface_rules(all, rules({}, {"wifi"}, {"wifi"}, {}));
    BOOST_TEST(order(tie) == order(apply_interface_rules(all, std::nullopt)),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(require_keeps_only_matches_and_loopback) {
    const auto g = apply_interface_rules(sample(), rules({"ethernet"}, {}, {}, {}));
    const std::vector<std::string> expected{"lo/127.0.0.1",     "lo/::1",         "eth0/192.0.2.1",
                                            "eth0/2001:db8::1", "eth1/192.0.2.2", "eth1/192.0.2.3"};
    BOOST_TEST(order(g) == expected, boost::test_tools::per_element());
    const auto why = reasons(g);
    BOOST_TEST(why.at("wlan0") == "wlan0 (wifi): not in interface.require [ethernet]");
    BOOST_TEST(why.at("tun0") == "tun0 (tunnel): not in interface.require [ethernet]");
    BOOST_TEST(why.at("wwan0") == "wwan0 (cellular): not in interface.require [ethernet]");
    BOOST_TEST(why.at("eth2") == "eth2: down");
    BOOST_TEST(why.count("lo") == 0u);

    // By name; the reason lists the whole requirement.
    const auto by_name = apply_interface_rules(sample(), rules({"eth1", "wifi"}, {}, {}, {}));
    const std::vector<std::string> kept{"lo/127.0.0.1", "lo/::1", "wlan0/198.51.100.1",
                                        "eth1/192.0.2.2", "eth1/192.0.2.3"};
    BOOST_TEST(order(by_name) == kept, boost::test_tools::per_element());
    BOOST_TEST(reasons(by_name).at("eth0") ==
               "eth0 (ethernet): not in interface.require [eth1, wifi]");
}

BOOST_AUTO_TEST_CASE(prohibit_by_type_and_by_name) {
    const auto g = apply_interface_rules(sample(), rules({}, {}, {}, {"cellular", "eth1", "vpn"}));
    const auto why = reasons(g);
    BOOST_TEST(why.at("wwan0") == "wwan0 (cellular): prohibited by interface.prohibit [cellular]");
    BOOST_TEST(why.at("eth1") == "eth1 (ethernet): prohibited by interface.prohibit [eth1]");
    BOOST_TEST(why.at("tun0") == "tun0 (tunnel): prohibited by interface.prohibit [vpn]");
    // Each excluded address is listed.
    BOOST_TEST(std::count_if(g.excluded.begin(), g.excluded.end(),
                             [](const auto& e) { return e.first.interface == "eth1"; }) == 2);
    for (const auto& c : g.usable) {
        BOOST_TEST(c.interface != "wwan0");
        BOOST_TEST(c.interface != "eth1");
        BOOST_TEST(c.interface != "tun0");
    }
    // Prohibit wins over require and prefer.
    const auto both = apply_interface_rules(sample(), rules({"eth1"}, {"eth1"}, {}, {"ethernet"}));
    BOOST_TEST(reasons(both).at("eth1") ==
               "eth1 (ethernet): prohibited by interface.prohibit [ethernet]");
}

BOOST_AUTO_TEST_CASE(down_interfaces_are_excluded_whatever_the_rules) {
    const auto g = apply_interface_rules(sample(), rules({"eth2"}, {"eth2"}, {}, {}));
    BOOST_TEST(reasons(g).at("eth2") == "eth2: down");
    for (const auto& c : g.usable)
        BOOST_TEST(c.interface != "eth2");
    auto down_lo = sample();
    down_lo[0].up = false;
    BOOST_TEST(reasons(apply_interface_rules(down_lo, std::nullopt)).at("lo") == "lo: down");
}

BOOST_AUTO_TEST_CASE(loopback_is_excluded_only_when_named) {
    auto has_lo = [](const gathered_locals& g) {
        return std::any_of(g.usable.begin(), g.usable.end(),
                           [](const auto& c) { return c.interface == "lo"; });
    };
    BOOST_TEST(has_lo(apply_interface_rules(sample(), rules({"wifi"}, {}, {}, {}))));
    BOOST_TEST(has_lo(apply_interface_rules(sample(), rules({}, {}, {}, {"ethernet", "tunnel"}))));
    const auto by_type = apply_interface_rules(sample(), rules({}, {}, {}, {"loopback"}));
    BOOST_TEST(!has_lo(by_type));
    BOOST_TEST(reasons(by_type).at("lo") ==
               "lo (loopback): prohibited by interface.prohibit [loopback]");
    const auto by_name = apply_interface_rules(sample(), rules({}, {}, {}, {"lo"}));
    BOOST_TEST(!has_lo(by_name));
    BOOST_TEST(reasons(by_name).at("lo") == "lo (loopback): prohibited by interface.prohibit [lo]");
    // Avoiding loopback moves it last; it stays usable.
    const auto avoided = apply_interface_rules(sample(), rules({}, {}, {"loopback"}, {}));
    BOOST_TEST(order(avoided).back() == "lo/::1");
}

BOOST_AUTO_TEST_CASE(any_non_empty_list_makes_rules_apply) {
    BOOST_TEST(apply_interface_rules(sample(), rules({}, {}, {"wifi"}, {})).rules_apply);
    BOOST_TEST(apply_interface_rules(sample(), rules({"x"}, {}, {}, {})).rules_apply);
    BOOST_TEST(apply_interface_rules(sample(), rules({}, {"x"}, {}, {})).rules_apply);
    BOOST_TEST(apply_interface_rules(sample(), rules({}, {}, {}, {"x"})).rules_apply);
    BOOST_TEST(!apply_interface_rules(sample(), rules({}, {}, {}, {})).rules_apply);
    BOOST_TEST(apply_interface_rules({}, std::nullopt).usable.empty());
}

BOOST_AUTO_TEST_CASE(interface_of_finds_the_holder) {
    auto all = sample();
    all.push_back(make_iface("eth4", interface_type::ethernet, true, {"fe80::1%10"}, 10));
    all.push_back(make_iface("eth5", interface_type::ethernet, true, {"fe80::1%11"}, 11));
    BOOST_TEST(interface_of(all, ip::make_address("192.0.2.3")) == "eth1");
    BOOST_TEST(interface_of(all, ip::make_address("2001:db8::1")) == "eth0");
    BOOST_TEST(interface_of(all, ip::make_address("::ffff:198.51.100.1")) == "wlan0");
    BOOST_TEST(interface_of(all, ip::make_address("fe80::1")) == "eth4"); // no scope: first
    BOOST_TEST(interface_of(all, ip::make_address("fe80::1%11")) == "eth5");
    BOOST_TEST(interface_of(all, ip::make_address("fe80::1%99")) == "eth4");
    BOOST_TEST(interface_of(all, ip::make_address("192.0.2.99")).empty());
    BOOST_TEST(interface_of(all, ip::make_address("::")).empty());
}

// ---- real interfaces in a private namespace ------------------------------------------------

BOOST_AUTO_TEST_CASE(dummy_and_tun_interfaces_are_gathered_and_classified,
                     *utf::precondition(in_private_netns())) {
    const auto all = gather_interfaces();
    const auto* d0 = find(all, "d0");
    const auto* d1 = find(all, "d1");
    const auto* tun0 = find(all, "tun0");
    BOOST_REQUIRE(d0);
    BOOST_REQUIRE(d1);
    BOOST_REQUIRE(tun0);

    BOOST_TEST(d0->type == interface_type::ethernet);
    BOOST_TEST(d0->up);
    BOOST_TEST(d0->index == ::if_nametoindex("d0"));
    BOOST_TEST(holds(*d0, "10.77.0.1"));
    BOOST_TEST(holds(*d0, "fd77::1"));
    BOOST_TEST(holds(*d0, "fe80::77"));
    for (const auto& a : d0->addresses) {
        if (a.is_v6() && a.to_v6().is_link_local())
            BOOST_TEST(a.to_v6().scope_id() == d0->index);
        else if (a.is_v6())
            BOOST_TEST(a.to_v6().scope_id() == 0u);
    }

    BOOST_TEST(!d1->up); // never brought up, kept although it has no IPv4 address
    BOOST_TEST(!holds(*d1, "10.77.0.1"));

    BOOST_TEST(tun0->type == interface_type::tunnel);
    BOOST_TEST(tun0->up);
    BOOST_TEST(holds(*tun0, "10.78.0.1"));

    BOOST_TEST(classify_interface("d0", IFF_UP) == interface_type::ethernet);
    BOOST_TEST(classify_interface("tun0", IFF_UP) == interface_type::tunnel);
    BOOST_TEST(interface_of(all, ip::make_address("10.78.0.1")) == "tun0");
    BOOST_TEST(interface_of(all, ip::make_address("fd77::1")) == "d0");
}

BOOST_AUTO_TEST_CASE(avoiding_tunnels_ranks_tun0_last, *utf::precondition(in_private_netns())) {
    const auto all = gather_interfaces();
    const auto g = apply_interface_rules(all, rules({}, {}, {"tunnel"}, {}));
    BOOST_REQUIRE(!g.usable.empty());
    BOOST_TEST(g.usable.back().interface == "tun0");
    // All of tun0's addresses (10.78.0.1 and its IPv6 link-local one) come after all others.
    auto first_tun = std::find_if(g.usable.begin(), g.usable.end(),
                                  [](const auto& c) { return c.interface == "tun0"; });
    BOOST_TEST(std::all_of(first_tun, g.usable.end(),
                           [](const auto& c) { return c.interface == "tun0"; }));
    BOOST_TEST(std::any_of(first_tun, g.usable.end(), [](const auto& c) {
        return c.address == ip::make_address("10.78.0.1") && c.type == interface_type::tunnel;
    }));
    BOOST_TEST(g.usable.front().interface != "tun0");
    BOOST_TEST(reasons(g).at("d1") == "d1: down");
    // Without the rule, tun0 (created before d0) is not last: the rule is what moved it.
    const auto plain = apply_interface_rules(all, std::nullopt);
    BOOST_TEST(plain.usable.back().interface != "tun0");
}

// The context's cache: a second look without a change reuses the list; a link or address
// change (queued by the kernel before `ip` returns) makes the next look gather again.
BOOST_AUTO_TEST_CASE(the_cache_gathers_again_only_after_a_change,
                     *utf::precondition(in_private_netns())) {
    detail::interface_cache cache;
    const auto first = cache.snapshot();
    const auto again = cache.snapshot();
    BOOST_TEST(cache.gathers() == 1u);
    BOOST_TEST(first.get() == again.get());
    BOOST_REQUIRE(!find(*first, "d2"));

    BOOST_REQUIRE(run("ip link add d2 type dummy") ||
                  run("ip link add d2 type veth peer name d2p"));
    const auto with_d2 = cache.snapshot();
    BOOST_TEST(cache.gathers() == 2u);
    BOOST_REQUIRE(find(*with_d2, "d2"));
    BOOST_TEST(!holds(*find(*with_d2, "d2"), "10.79.0.1"));

    BOOST_REQUIRE(run("ip addr add 10.79.0.1/24 dev d2"));
    const auto with_address = cache.snapshot();
    BOOST_REQUIRE(find(*with_address, "d2"));
    BOOST_TEST(holds(*find(*with_address, "d2"), "10.79.0.1"));

    BOOST_REQUIRE(run("ip link del d2"));
    const auto without = cache.snapshot();
    BOOST_TEST(!find(*without, "d2"));
    const auto gathered = cache.gathers();
    BOOST_TEST(cache.snapshot().get() == without.get());
    BOOST_TEST(cache.gathers() == gathered);
}
