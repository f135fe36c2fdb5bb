// What the kernel-level loopback tests share: a context that loads exactly the plugins of this
// build, a bounded event loop, and the common policies and probes.
#pragma once

#include <utility>

#include <post.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

namespace post::test {

/// Plugins from this build only: no environment, no other folder.
inline context_options loopback_options() {
    context_options o;
    o.use_environment = false;
    o.plugin_path = {POST_PLUGIN_DIR};
    return o;
}

/// A policy that admits datagram stacks (the default requires reliability).
inline policy datagram_policy() {
    return policy::parse("version: 1\nname: dgram\nselection:\n  reliability: prohibit\n",
                         "dgram.yaml");
}

/// One stack family for tests that run the same case over TCP and UDP: the URL scheme (also the
/// listener's stack constraint) and the policy that admits it.
struct stack_case {
    std::string scheme;
    policy policy_;
};
inline stack_case tcp_case() {
    return {"tcp", policy::defaults()};
}
inline stack_case udp_case() {
    return {"udp", datagram_policy()};
}

/// Run `io` until `done()` or `limit` passes; true when done. Never hangs a test.
template <class Pred>
bool run_for_condition(boost::asio::io_context& io, Pred done,
                       std::chrono::steady_clock::duration limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds(20));
        if (io.stopped()) io.restart();
    }
    return done();
}

/// As run_for_condition, failing the test on a timeout.
template <class Pred> void run_until(boost::asio::io_context& io, Pred done) {
    BOOST_REQUIRE_MESSAGE(run_for_condition(io, done), "timed out waiting for the carrier");
}

inline bool have_ipv6_loopback() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io);
    boost::system::error_code ec;
    a.open(boost::asio::ip::tcp::v6(), ec);
    if (!ec) a.bind({boost::asio::ip::make_address("::1"), 0}, ec);
    return !ec;
}

/// The port a listener got for one address family (0 when it has none).
inline std::uint16_t port_of(const listener& l, bool v6 = false) {
    for (const auto& e : l.local_endpoints())
        if (e.address.is_v6() == v6) return e.port;
    return 0;
}

struct loopback_fixture {
    boost::asio::io_context io;
    context ctx{io, loopback_options()};
};

} // namespace post::test
