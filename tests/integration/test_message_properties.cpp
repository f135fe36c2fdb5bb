// Message properties honoured end to end over the real plugins on loopback: niceness, lifetime,
// antecedents, send events and capabilities, on a byte-stream stack ([framer, tcp]) and on a
// datagram stack ([udp]).
#define BOOST_TEST_MODULE message_properties
#include <boost/test/unit_test.hpp>

#include <utility>

#include "loopback_support.hpp"
#include "post_frame_codec.hpp"

#include <post.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using post::test::datagram_policy;
using post::test::port_of;
using post::test::run_until;
using fixture = post::test::loopback_fixture;

namespace {

using post::test::stack_case;
using post::test::tcp_case;
using post::test::udp_case;

/// A listener that records, in arrival order, the text of every message it receives.
struct collector {
    post::listener listener;
    std::vector<std::string> got;
    std::vector<std::size_t> sizes;

    collector(post::context& ctx, const stack_case& sc) {
        listener =
            post::listen(ctx, post::local::parse("127.0.0.1:0"), sc.policy_, {{sc.scheme}, "test"});
        listener.on_carrier([this](post::carrier c) {
            c.on_received([this](post::message m) {
                sizes.push_back(m.size());
                got.emplace_back(m.size() <= 64 ? std::string(m.text()) : std::string("big"));
            });
        });
    }
    std::string url(const stack_case& sc) const {
        return sc.scheme + "://127.0.0.1:" + std::to_string(port_of(listener));
    }
};

post::message text(std::string_view t, int niceness = 0) {
    post::message m(t);
    m.properties().niceness = niceness;
    return m;
}

/// Send events of one carrier, by message id.
struct events {
    std::vector<post::message_id> sent, expired, acked;
    std::map<post::message_id, post::error> failed;

    void watch(post::carrier& c) {
        c.on_sent([this](post::message_id id) { sent.push_back(id); });
        c.on_expired([this](post::message_id id) { expired.push_back(id); });
        c.on_acked([this](post::message_id id) { acked.push_back(id); });
        c.on_send_error(
            [this](post::message_id id, const post::error& e) { failed.emplace(id, e); });
        c.on_error([](const post::error& e) { BOOST_FAIL("carrier error: " << e.to_string()); });
    }
};

void niceness_orders_messages(const stack_case& sc) {
    fixture f;
    collector col(f.ctx, sc);
    auto c = post::initiate(f.ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    // Sent while establishing: they wait in the scheduler and go out most urgent first.
    c.send(text("n5", 5));
    c.send(text("a0", 0));
    c.send(text("n9", 9));
    c.send(text("b0", 0));
    c.send(text("n5b", 5));
    run_until(f.io, [&] { return col.got.size() == 5; });
    BOOST_TEST(col.got == (std::vector<std::string>{"a0", "b0", "n5", "n5b", "n9"}),
               boost::test_tools::per_element());
}

void zero_lifetime_expires_before_sending(const stack_case& sc) {
    fixture f;
    collector col(f.ctx, sc);
    auto c = post::initiate(f.ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    events ev;
    ev.watch(c);
    run_until(f.io, [&] { return c.state() == post::carrier_state::active; });
    auto late = text("late");
    late.properties().lifetime = 0ms;
    boost::system::error_code late_code;
    c.async_send(std::move(late),
                 [&](boost::system::error_code ec, post::message_id) { late_code = ec; });
    const auto marker = c.send(text("marker"));
    run_until(f.io, [&] { return col.got.size() == 1 && !ev.expired.empty(); });
    BOOST_TEST(col.got == (std::vector<std::string>{"marker"}), boost::test_tools::per_element());
    BOOST_TEST(ev.expired == (std::vector<post::message_id>{marker - 1}),
               boost::test_tools::per_element());
    BOOST_TEST((late_code == post::make_error_code(post::errc::expired)));
    run_until(f.io, [&] { return !ev.sent.empty(); });
    BOOST_TEST(ev.sent == (std::vector<post::message_id>{marker}),
               boost::test_tools::per_element());
}

void antecedents(const stack_case& sc) {
    fixture f;
    collector col(f.ctx, sc);
    auto c = post::initiate(f.ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    events ev;
    ev.watch(c);
    // Success: B is more urgent than A but must follow it; C is unrelated and goes first.
    const auto a = c.send(text("A", 9));
    auto b = text("B", 0);
    b.properties().antecedents = {a};
    c.send(std::move(b));
    c.send(text("C", 0));
    run_until(f.io, [&] { return col.got.size() == 3; });
    BOOST_TEST(col.got == (std::vector<std::string>{"C", "A", "B"}),
               boost::test_tools::per_element());

    // Failure: A2 expires, so B2 fails naming it, and C2 (after B2) fails in turn.
    auto a2 = text("A2");
    a2.properties().lifetime = 0ms;
    const auto a2_id = c.send(std::move(a2));
    auto b2 = text("B2");
    b2.properties().antecedents = {a2_id};
    const auto b2_id = c.send(std::move(b2));
    auto c2 = text("C2");
    c2.properties().antecedents = {b2_id};
    const auto c2_id = c.send(std::move(c2));
    // Rejected at send time: unknown, self (the next id), and a received message's id space.
    auto unknown = text("U");
    unknown.properties().antecedents = {987654};
    const auto unknown_id = c.send(std::move(unknown));
    const auto marker = c.send(text("marker"));
    run_until(f.io, [&] { return ev.failed.size() == 3 && col.got.size() == 4; });
    BOOST_TEST(ev.expired == (std::vector<post::message_id>{a2_id}),
               boost::test_tools::per_element());
    BOOST_REQUIRE(ev.failed.contains(b2_id));
    BOOST_TEST((ev.failed[b2_id].code == post::make_error_code(post::errc::antecedent_failed)));
    BOOST_TEST(ev.failed[b2_id].reason.find("antecedent message " + std::to_string(a2_id) +
                                            " expired") != std::string::npos,
               ev.failed[b2_id].reason);
    BOOST_REQUIRE(ev.failed.contains(c2_id));
    BOOST_TEST((ev.failed[c2_id].code == post::make_error_code(post::errc::antecedent_failed)));
    BOOST_REQUIRE(ev.failed.contains(unknown_id));
    BOOST_TEST((ev.failed[unknown_id].code == post::make_error_code(post::errc::invalid_argument)));
    BOOST_TEST(col.got.back() == "marker");
    BOOST_TEST(marker > unknown_id);
}

void capabilities(const stack_case& sc, bool ordered) {
    fixture f;
    collector col(f.ctx, sc);
    auto c = post::initiate(f.ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    const auto before = c.capabilities();
    BOOST_TEST(before.sent);
    BOOST_TEST(!before.ordered);
    run_until(f.io, [&] { return c.state() == post::carrier_state::active; });
    const auto caps = c.capabilities();
    BOOST_TEST(caps.sent);
    BOOST_TEST(caps.ordered == ordered);
}

} // namespace

BOOST_AUTO_TEST_CASE(tcp_niceness_orders_messages) {
    niceness_orders_messages(tcp_case());
}
BOOST_AUTO_TEST_CASE(udp_niceness_orders_messages) {
    niceness_orders_messages(udp_case());
}

BOOST_AUTO_TEST_CASE(tcp_zero_lifetime_expires_before_sending) {
    zero_lifetime_expires_before_sending(tcp_case());
}
BOOST_AUTO_TEST_CASE(udp_zero_lifetime_expires_before_sending) {
    zero_lifetime_expires_before_sending(udp_case());
}

BOOST_AUTO_TEST_CASE(tcp_antecedents) {
    antecedents(tcp_case());
}
BOOST_AUTO_TEST_CASE(udp_antecedents) {
    antecedents(udp_case());
}

BOOST_AUTO_TEST_CASE(tcp_capabilities) {
    capabilities(tcp_case(), true);
}
BOOST_AUTO_TEST_CASE(udp_capabilities) {
    capabilities(udp_case(), false);
}

// A message with a short lifetime queued behind 16 MiB of more urgent data never gets out:
// it expires while waiting (in the kernel, or in an interleaving framer) and the receiver
// never sees it; what follows it still arrives.
BOOST_FIXTURE_TEST_CASE(tcp_lifetime_expires_behind_bulk, fixture) {
    const auto sc = tcp_case();
    collector col(ctx, sc);
    auto c = post::initiate(ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    events ev;
    ev.watch(c);
    run_until(io, [&] { return c.state() == post::carrier_state::active; });
    for (int i = 0; i < 4; ++i)
        c.send(post::message(std::vector<std::byte>(4u << 20, std::byte{0x5a})));
    auto late = text("late", 9);
    late.properties().lifetime = 2ms;
    const auto late_id = c.send(std::move(late));
    c.send(text("marker", 9));
    run_until(io, [&] { return col.got.size() == 5; });
    BOOST_TEST(col.got == (std::vector<std::string>{"big", "big", "big", "big", "marker"}),
               boost::test_tools::per_element());
    BOOST_TEST(ev.expired == (std::vector<post::message_id>{late_id}),
               boost::test_tools::per_element());
    for (std::size_t i = 0; i < 4; ++i)
        BOOST_TEST(col.sizes[i] == (4u << 20)); // atomic: each whole, never a part
}

// A message that the peer had whole only after its lifetime is reported `sent` (the stack took
// it), then `expired` (the peer's ACK carries EXPIRED), and never `acked`. The peer is a plain
// TCP socket speaking post-frame by hand, so the ACK's flag does not depend on timing.
BOOST_FIXTURE_TEST_CASE(expired_after_sent_when_the_peer_had_it_too_late, fixture) {
    namespace pf = post::plugins::framing::post_frame;
    using boost::asio::ip::tcp;
    tcp::acceptor acceptor(io, {boost::asio::ip::address_v4::loopback(), 0});
    tcp::socket peer(io);
    bool accepted = false;
    acceptor.async_accept(peer, [&](boost::system::error_code ec) { accepted = !ec; });
    auto c =
        post::initiate(ctx,
                       post::remote::from_url("tcp://127.0.0.1:" +
                                              std::to_string(acceptor.local_endpoint().port())),
                       tcp_case().policy_);
    events ev;
    ev.watch(c);
    auto m = text("hello");
    m.properties().lifetime = 10s;
    const auto id = c.send(std::move(m));
    run_until(io, [&] { return accepted; });
    boost::asio::write(peer, boost::asio::buffer(pf::responder_preface));
    // The initiator's preface, then DATA(1, FIRST|LAST|ACK-REQUESTED) with its extension.
    std::vector<std::byte> got(pf::preface_size + pf::header_size + pf::first_extension_size + 5);
    bool read = false;
    boost::asio::async_read(peer, boost::asio::buffer(got),
                            [&](boost::system::error_code ec, std::size_t) { read = !ec; });
    run_until(io, [&] { return read && ev.sent.size() == 1; });
    BOOST_TEST(std::equal(pf::initiator_preface.begin(), pf::initiator_preface.end(), got.begin()));
    std::vector<std::byte> ack;
    pf::append_ack(ack, 1, true);
    boost::asio::write(peer, boost::asio::buffer(ack));
    run_until(io, [&] { return ev.expired.size() == 1; });
    BOOST_TEST(ev.sent == (std::vector<post::message_id>{id}), boost::test_tools::per_element());
    BOOST_TEST(ev.expired == (std::vector<post::message_id>{id}), boost::test_tools::per_element());
    BOOST_TEST(ev.acked.empty());
    BOOST_TEST(ev.failed.empty());
}

BOOST_FIXTURE_TEST_CASE(negative_niceness_is_rejected, fixture) {
    const auto sc = tcp_case();
    collector col(ctx, sc);
    auto c = post::initiate(ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    events ev;
    ev.watch(c);
    const auto id = c.send(text("x", -1));
    run_until(io, [&] { return ev.failed.contains(id); });
    BOOST_TEST((ev.failed[id].code == post::make_error_code(post::errc::invalid_argument)));
}

// close() after many queued messages: every one is delivered before the carrier closes.
BOOST_FIXTURE_TEST_CASE(graceful_close_sends_everything_queued, fixture) {
    const auto sc = tcp_case();
    collector col(ctx, sc);
    auto c = post::initiate(ctx, post::remote::from_url(col.url(sc)), sc.policy_);
    events ev;
    ev.watch(c);
    bool closed = false;
    c.on_closed([&] { closed = true; });
    for (int i = 0; i < 40; ++i)
        c.send(post::message(std::vector<std::byte>(64u << 10, std::byte{1})));
    c.close();
    run_until(io, [&] { return closed && col.got.size() == 40; });
    BOOST_TEST(ev.sent.size() == 40u);
    BOOST_TEST(ev.failed.empty());
}

// Partial delivery is an opt-in of the receiving side (framer option partial-delivery): a large
// message arrives as parts that share one id, in order, the last marked end_of_message; a small
// one still arrives whole.
BOOST_FIXTURE_TEST_CASE(partial_delivery_of_a_large_message, fixture) {
    auto p = post::policy::parse("version: 1\nname: partial\nprotocols:\n"
                                 "  framer: { partial-delivery: 65536 }\n",
                                 "partial.yaml");
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), p, {{"tcp"}, "test"});
    std::vector<post::message> got;
    post::send_capabilities server_caps;
    l.on_carrier([&](post::carrier c) {
        server_caps = c.capabilities();
        c.on_received([&](post::message m) { got.push_back(std::move(m)); });
    });
    auto c = post::initiate(
        ctx, post::remote::from_url("tcp://127.0.0.1:" + std::to_string(port_of(l))), p);
    std::vector<std::byte> big(1u << 20);
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = std::byte(i * 7 % 251);
    c.send(post::message(big));
    c.send(post::message(std::string_view("small")));
    run_until(io, [&] { return !got.empty() && got.back().text() == "small"; });
    BOOST_TEST(server_caps.partial_delivery);
    BOOST_REQUIRE(got.size() > 2u); // at least two parts and the small message
    std::vector<std::byte> joined;
    const auto id = got.front().id();
    for (std::size_t i = 0; i + 1 < got.size(); ++i) {
        BOOST_TEST(got[i].partial());
        BOOST_TEST(got[i].id() == id);
        BOOST_TEST(got[i].end_of_message() == (i + 2 == got.size()));
        joined.insert(joined.end(), got[i].data().begin(), got[i].data().end());
    }
    BOOST_TEST((joined == big));
    BOOST_TEST(!got.back().partial());
    BOOST_TEST(got.back().id() != id);
}
