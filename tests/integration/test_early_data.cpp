// Early data end to end: the kernel hands idempotent messages to a stack that takes early data
// before it is ready, the framer puts its preface and those messages in front, and the tcp
// layer's Fast Open carries them in the SYN. Checked with the kernel's own TFO counters.
//
// Fast Open needs the server side enabled (net.ipv4.tcp_fastopen 2 or 3), and the host allows
// only the client side; a private network namespace has its own setting, so the cases that
// need it run as root in one and are skipped with a message otherwise.
#define BOOST_TEST_MODULE early data
#include <utility>

#include "../support/test_pki.hpp"
#include "loopback_support.hpp"

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace post;
using namespace post::test;
namespace utf = boost::unit_test;

namespace {

/// Why the namespace could not be set up; empty once it is.
std::string netns_problem = "not tried";

bool set_up_private_netns() {
    if (geteuid() != 0) {
        netns_problem = "needs root (a network namespace with net.ipv4.tcp_fastopen=3)";
        return false;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        netns_problem = std::string("unshare(CLONE_NEWNET) failed: ") + std::strerror(errno);
        return false;
    }
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    up = up && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    if (fd >= 0) ::close(fd);
    if (!up) {
        netns_problem = "cannot bring lo up in the new namespace";
        return false;
    }
    std::ofstream("/proc/sys/net/ipv4/tcp_fastopen") << 3;
    int value = 0;
    std::ifstream("/proc/sys/net/ipv4/tcp_fastopen") >> value;
    if (value != 3) {
        netns_problem = "cannot set net.ipv4.tcp_fastopen=3 in the namespace";
        return false;
    }
    netns_problem.clear();
    return true;
}

/// Before any thread exists: unshare changes the namespace of the calling thread only.
struct netns_fixture {
    netns_fixture() { set_up_private_netns(); }
};
BOOST_TEST_GLOBAL_FIXTURE(netns_fixture);

struct in_private_netns {
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        const bool ready = netns_problem.empty();
        boost::test_tools::assertion_result r(ready);
        r.message() << "skipped: " << netns_problem;
        return r;
    }
};

/// A TcpExt counter of this namespace (/proc/net/netstat: a header line, then a value line).
long tcp_ext(const std::string& name) {
    std::ifstream in("/proc/net/netstat");
    std::string keys, values;
    while (std::getline(in, keys) && std::getline(in, values)) {
        if (keys.rfind("TcpExt:", 0) != 0) continue;
        std::istringstream k(keys), v(values);
        std::string key, value;
        while (k >> key && v >> value)
            if (key == name) return std::stol(value);
    }
    return -1;
}

policy fast_open_policy() {
    return policy::parse("version: 1\nname: tfo\nstacks:\n  - [framer, tcp]\n"
                         "protocols:\n  tcp: { fast-open: true }\n",
                         "tfo.yaml");
}

/// A listener that records every message it receives, in order.
struct recording_server {
    listener l;
    std::vector<carrier> carriers;
    std::vector<std::string> got;

    recording_server(context& ctx, const policy& p)
        : l(listen(ctx, local::parse("127.0.0.1:0"), p)) {
        l.on_carrier([this](carrier c) {
            c.on_received([this](message m) { got.emplace_back(m.text()); });
            carriers.push_back(std::move(c));
        });
    }
    std::uint16_t port() const { return port_of(l); }
};

/// Connect, send one message, wait until the server has it, close.
void exchange(loopback_fixture& f, recording_server& server, const policy& p, std::string text,
              bool idempotent, const std::string& scheme = "tcp") {
    const auto before = server.got.size();
    auto c = initiate(
        f.ctx, remote::from_url(scheme + "://127.0.0.1:" + std::to_string(server.port())), p);
    message m(text);
    m.properties().idempotent = idempotent;
    c.send(std::move(m));
    run_until(f.io, [&] { return server.got.size() > before; });
    BOOST_TEST(server.got.back() == text);
    c.close();
    bool closed = false;
    c.on_closed([&] { closed = true; });
    run_until(f.io, [&] { return closed || c.state() == carrier_state::closed; });
}

} // namespace

BOOST_FIXTURE_TEST_CASE(idempotent_first_message_rides_in_the_syn_once_a_cookie_is_known,
                        loopback_fixture, *utf::precondition(in_private_netns())) {
    const auto p = fast_open_policy();
    recording_server server(ctx, p);
    // The first connection learns the server's cookie; its data follows the handshake.
    exchange(*this, server, p, "first", true);
    const long passive = tcp_ext("TCPFastOpenPassive");
    const long active = tcp_ext("TCPFastOpenActive");
    BOOST_REQUIRE(passive >= 0);
    exchange(*this, server, p, "second", true);
    BOOST_TEST(tcp_ext("TCPFastOpenPassive") == passive + 1);
    BOOST_TEST(tcp_ext("TCPFastOpenActive") == active + 1);
    // Delivered once each, in order: data in the SYN is not repeated after the handshake.
    BOOST_TEST(server.got == (std::vector<std::string>{"first", "second"}),
               boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(a_message_that_is_not_idempotent_waits_for_the_handshake, loopback_fixture,
                        *utf::precondition(in_private_netns())) {
    const auto p = fast_open_policy();
    recording_server server(ctx, p);
    exchange(*this, server, p, "cookie", true);
    const long passive = tcp_ext("TCPFastOpenPassive");
    exchange(*this, server, p, "not idempotent", false);
    BOOST_TEST(tcp_ext("TCPFastOpenPassive") == passive);
    BOOST_TEST(server.got.back() == "not idempotent");
}

BOOST_FIXTURE_TEST_CASE(without_fast_open_nothing_rides_in_the_syn, loopback_fixture,
                        *utf::precondition(in_private_netns())) {
    const auto p = policy::parse("version: 1\nname: plain\nstacks:\n  - [framer, tcp]\n", "p.yaml");
    recording_server server(ctx, p);
    exchange(*this, server, p, "one", true);
    const long passive = tcp_ext("TCPFastOpenPassive");
    exchange(*this, server, p, "two", true);
    BOOST_TEST(tcp_ext("TCPFastOpenPassive") == passive);
    BOOST_TEST(server.got.size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(tls_over_fast_open_puts_the_client_hello_in_the_syn, loopback_fixture,
                        *utf::precondition(in_private_netns())) {
    test_pki pki;
    const std::string common = "version: 1\nname: tls-tfo\nstacks:\n  - [framer, tls, tcp]\n";
    const auto server_policy = policy::parse(
        common + "protocols:\n  tcp: { fast-open: true }\n  tls: { cert-file: " + pki.server.cert +
            ", key-file: " + pki.server.key + " }\n",
        "server.yaml");
    const auto client_policy = policy::parse(
        common + "protocols:\n  tcp: { fast-open: true }\n  tls: { ca-file: " + pki.ca + " }\n",
        "client.yaml");
    recording_server server(ctx, server_policy);
    exchange(*this, server, client_policy, "cookie", false, "tls");
    const long passive = tcp_ext("TCPFastOpenPassive");
    // Not idempotent, so the message itself waits for the handshake; the ClientHello does not.
    exchange(*this, server, client_policy, "hello", false, "tls");
    BOOST_TEST(tcp_ext("TCPFastOpenPassive") == passive + 1);
    BOOST_TEST(server.got.back() == "hello");
}
