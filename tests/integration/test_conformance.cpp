// The same checks for every layer of every plugin found in the build (GStreamer-style): its
// schema defaults are valid, it can be created from a policy, and a carrier over the smallest
// stack that contains it exchanges messages both ways and closes cleanly. A new plugin gets
// these tests by being built.
#define BOOST_TEST_MODULE conformance
#include <boost/test/unit_test.hpp>

#include <utility>

#include "../support/test_pki.hpp"
#include "loopback_support.hpp"

#include <post.hpp>

#include <boost/asio/io_context.hpp>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

/// The smallest stack (top first) in which `l` can carry messages, using the base layers.
std::vector<std::string> smallest_stack(const post::layer_info& l) {
    using post::sdk::edge;
    // HTTP/3 runs only directly over QUIC (it needs the whole connection, docs/http.md).
    if (l.name == "h3") return {"h3", "quic", "udp"};
    std::vector<std::string> s{l.name};
    switch (l.lower) {
    case edge::none:
        break;
    case edge::stream:
        s.push_back("tcp");
        break;
    case edge::datagram:
        s.push_back("udp");
        break;
    case edge::message:
        s.insert(s.end(), {"framer", "tcp"});
        break;
    }
    if (l.upper == edge::stream) s.insert(s.begin(), "framer");
    return s;
}

/// Options some layers cannot work without (a certificate for a TLS server), from a test PKI.
std::string required_options(const std::vector<std::string>& stack,
                             const post::test::test_pki& pki) {
    std::string out;
    for (const auto& layer : stack)
        if (layer == "tls" || layer == "dtls" || layer == "quic")
            out += "  " + layer + ": { cert-file: " + pki.server.cert +
                   ", key-file: " + pki.server.key + ", ca-file: " + pki.ca + " }\n";
    return out.empty() ? out : "protocols:\n" + out;
}

std::string yaml_stack(const std::vector<std::string>& s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i)
        out += (i ? ", " : "") + s[i];
    return out + "]";
}

} // namespace

BOOST_AUTO_TEST_CASE(every_layer_declares_a_consistent_schema) {
    asio::io_context io;
    post::context ctx(io, post::test::loopback_options());
    BOOST_REQUIRE(!ctx.plugins().plugins().empty());
    for (const auto& l : ctx.plugins().catalog()) {
        BOOST_TEST_CONTEXT("layer " << l.name) {
            BOOST_TEST(!l.summary.empty());
            BOOST_TEST((l.upper != post::sdk::edge::none));
            // Every default in the schema parses as its own type.
            BOOST_CHECK_NO_THROW(post::layer_options(post::policy::defaults(), l));
            for (const auto& o : l.options) {
                BOOST_TEST(o.description != nullptr);
                BOOST_TEST(o.default_value != nullptr);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(every_layer_carries_messages_in_its_smallest_stack) {
    asio::io_context io;
    post::context ctx(io, post::test::loopback_options());
    post::test::test_pki pki;
    for (const auto& l : ctx.plugins().catalog()) {
        auto stack = smallest_stack(l);
        BOOST_TEST_CONTEXT("stack " << yaml_stack(stack)) {
            auto p =
                post::policy::parse("version: 1\nname: conformance\nstacks:\n  - " +
                                        yaml_stack(stack) + "\n" + required_options(stack, pki),
                                    "conformance.yaml");
            auto listener = post::listen(ctx, post::local::parse("127.0.0.1:0"), p);
            BOOST_REQUIRE(!listener.local_endpoints().empty());
            listener.on_carrier([](post::carrier c) {
                c.on_received([c](post::message m) mutable { c.send(std::move(m)); });
            });
            auto c = post::initiate(
                ctx, post::remote::from_endpoint(listener.local_endpoints().front()), p);
            std::vector<std::string> got;
            std::optional<post::error> failure;
            bool closed = false;
            c.on_ready([&] {
                c.send(post::message(std::string_view("first")));
                c.send(post::message(std::string_view("second")));
            });
            c.on_received([&](post::message m) {
                got.emplace_back(m.text());
                if (got.size() == 2) c.close();
            });
            c.on_error([&](const post::error& e) { failure = e; });
            c.on_closed([&] { closed = true; });
            bool ok = post::test::run_for_condition(io, [&] { return closed || failure; });
            BOOST_TEST(ok);
            BOOST_TEST(!failure, (failure ? failure->to_string() : std::string()));
            BOOST_TEST(got == (std::vector<std::string>{"first", "second"}),
                       boost::test_tools::per_element());
            BOOST_TEST(c.stack() == stack, boost::test_tools::per_element());
            listener.close();
        }
    }
}
