// A listener and layers that cannot take the server role: a layer built for ABI 4.2 says so
// (sdk::layer::can_serve) and its stack is left out before binding; one built for 4.1 cannot
// say, so the first peer shows it and the listener stops listening over that stack. The layer
// here is a test's own, registered as a static plugin next to the real tcp, udp and framing
// plugins; quic and tls without a certificate are covered in test_quic_carriers and cli tests.
#define BOOST_TEST_MODULE listener_roles
#include <boost/test/unit_test.hpp>

#include <utility>

#include "loopback_support.hpp"

#include <post.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/system_error.hpp>

#include <iterator>
#include <optional>
#include <vector>

namespace asio = boost::asio;

namespace {

using post::test::port_of;
using post::test::run_until;
using fixture = post::test::loopback_fixture;

constexpr const char* refusal = "client-only: this layer has no server role";

/// A message layer for clients only: it refuses the server role, as quic and tls do without a
/// certificate. (It opens no client flows either: the tests never need one.)
class client_only_layer final : public post::sdk::layer {
public:
    std::shared_ptr<post::sdk::flow> open(std::shared_ptr<post::sdk::flow>,
                                          const post::sdk::open_params&,
                                          post::sdk::flow_error& err) noexcept override {
        err = {std::make_error_code(std::errc::invalid_argument), refusal};
        return nullptr;
    }
    bool can_serve(post::sdk::flow_error& err) const noexcept override {
        err = {std::make_error_code(std::errc::invalid_argument), refusal};
        return false;
    }
};

std::unique_ptr<post::sdk::layer> create(const post::sdk::layer_context&,
                                         post::sdk::flow_error&) noexcept {
    return std::make_unique<client_only_layer>();
}

constexpr post::sdk::layer_descriptor new_layers[] = {
    {"client-only", "refuses the server role, and says so", post::sdk::edge::message,
     post::sdk::edge::message, nullptr, 0, nullptr, 0, &create}};
constexpr post::sdk::layer_descriptor old_layers[] = {
    {"client-only-41", "refuses the server role, built for ABI 4.1", post::sdk::edge::message,
     post::sdk::edge::message, nullptr, 0, nullptr, 0, &create}};

const post::sdk::plugin_descriptor new_plugin{.name = "client-only",
                                              .version = "1",
                                              .license = "MIT",
                                              .description = "test",
                                              .layers = new_layers,
                                              .layer_count = std::size(new_layers)};
// The same layer as a plugin built for ABI 4.1 declares itself: the kernel must not call
// can_serve, which such a plugin's vtable does not have.
const post::sdk::plugin_descriptor old_plugin{.abi_minor = 1,
                                              .name = "client-only-41",
                                              .version = "1",
                                              .license = "MIT",
                                              .description = "test",
                                              .layers = old_layers,
                                              .layer_count = std::size(old_layers)};

struct roles_fixture : fixture {
    roles_fixture() {
        BOOST_REQUIRE(ctx.plugins().add_static(&new_plugin));
        BOOST_REQUIRE(ctx.plugins().add_static(&old_plugin));
    }
};

/// Whether a TCP connection to 127.0.0.1:port is accepted (false: refused).
bool tcp_port_answers(asio::io_context& io, std::uint16_t port) {
    asio::ip::tcp::socket s(io);
    boost::system::error_code ec;
    s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    return !ec;
}

} // namespace

BOOST_FIXTURE_TEST_CASE(a_layer_that_says_it_cannot_serve_leaves_its_stack_out_unbound,
                        roles_fixture) {
    const auto p = post::policy::parse("version: 1\nname: roles\nselection:\n  reliability: "
                                       "no-preference\nstacks:\n  - [client-only, framer, tcp]\n"
                                       "  - [udp]\n",
                                       "roles.yaml");
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), p);
    BOOST_TEST(l.stacks() == (std::vector<std::vector<std::string>>{{"udp"}}));
    BOOST_REQUIRE_EQUAL(l.left_out().size(), 1u);
    BOOST_TEST(l.left_out()[0] == std::string("[client-only, framer, tcp]: ") + refusal);
    // TCP was never bound on the port: nothing answers there.
    BOOST_TEST(!tcp_port_answers(io, port_of(l)));

    // Alone, the stack leaves nothing to listen over: listen fails and says why.
    const auto alone = post::policy::parse(
        "version: 1\nname: alone\nstacks:\n  - [client-only, framer, tcp]\n", "alone.yaml");
    try {
        auto nothing = post::listen(ctx, post::local::parse("127.0.0.1:0"), alone);
        BOOST_FAIL("listened over " << nothing.stacks().size() << " stacks");
    } catch (const boost::system::system_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find(std::string("[client-only, framer, tcp]: ") + refusal) !=
                       std::string::npos,
                   what);
    }
}

BOOST_FIXTURE_TEST_CASE(a_layer_built_for_abi_4_1_is_found_out_at_its_first_peer, roles_fixture) {
    // Such a layer cannot be asked, so the stack binds; its first peer shows it cannot serve.
    // The listener says so once, leaves the stack out and closes its port, so the next client
    // is refused at once instead of waiting for an answer.
    const auto p = post::policy::parse(
        "version: 1\nname: old\nstacks:\n  - [client-only-41, framer, tcp]\n", "old.yaml");
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), p);
    BOOST_TEST(l.left_out().empty());
    const auto port = port_of(l);
    std::vector<post::error> errors;
    l.on_error([&](const post::error& e) { errors.push_back(e); });

    std::optional<post::error> first_failed;
    const auto framed = post::policy::parse(
        "version: 1\nname: framed\nstacks:\n  - [framer, tcp]\n", "framed.yaml");
    auto first = post::initiate(ctx, post::remote::from_host_port("127.0.0.1", port), framed);
    first.on_error([&](const post::error& e) { first_failed = e; });
    run_until(io, [&] { return !errors.empty() && first_failed.has_value(); });
    BOOST_REQUIRE_EQUAL(errors.size(), 1u);
    BOOST_TEST(errors[0].reason == std::string("no longer listening over [client-only-41, framer, "
                                               "tcp]: client-only-41: ") +
                                       refusal,
               errors[0].reason);
    BOOST_REQUIRE_EQUAL(l.left_out().size(), 1u);
    BOOST_TEST(l.left_out()[0].starts_with("[client-only-41, framer, tcp]: "), l.left_out()[0]);
    BOOST_TEST(l.stacks().empty());
    BOOST_TEST(!tcp_port_answers(io, port));

    // A later carrier fails with an error, not a wait for its deadline, and the listener does
    // not report the stack again.
    std::optional<post::error> second_failed;
    auto second = post::initiate(ctx, post::remote::from_host_port("127.0.0.1", port), framed);
    second.on_error([&](const post::error& e) { second_failed = e; });
    run_until(io, [&] { return second_failed.has_value(); });
    BOOST_TEST(second_failed.has_value());
    BOOST_TEST(errors.size() == 1u); // said once
}
