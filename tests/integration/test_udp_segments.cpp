// The udp layer's datagram trains (send_meta::segment_size, cap_segmented_send): one send of N
// datagrams of S bytes (the last shorter) must reach a plain Asio UDP socket as N separate
// datagrams with exact boundaries and contents, from a client flow and from a listener's flow,
// with UDP GSO (option gso: true, the default) and with the sendmmsg fallback (gso: false, the
// path taken when the kernel refuses GSO).
#define BOOST_TEST_MODULE udp segmented sends
#include <utility>

#include "layer_test_support.hpp"

#include <boost/asio/ip/udp.hpp>

#include <boost/test/unit_test.hpp>

const post::sdk::plugin_descriptor* post_plugin_udp() noexcept;

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
using asio::ip::udp;

namespace {

/// A plain Asio socket on 127.0.0.1 that records every datagram it receives.
struct plain_receiver {
    udp::socket socket;
    std::vector<sdk::byte_buffer> datagrams;
    udp::endpoint last_from;
    std::vector<std::byte> buffer = std::vector<std::byte>(65536);
    udp::endpoint from;

    explicit plain_receiver(asio::io_context& io)
        : socket(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        // Room for a whole train even if this test's loop runs late.
        socket.set_option(asio::socket_base::receive_buffer_size(4 << 20));
        receive();
    }
    void receive() {
        socket.async_receive_from(asio::buffer(buffer), from,
                                  [this](const boost::system::error_code& ec, std::size_t n) {
                                      if (ec) return;
                                      datagrams.emplace_back(buffer.begin(), buffer.begin() + n);
                                      last_from = from;
                                      receive();
                                  });
    }
    sdk::endpoint local() const {
        const auto e = socket.local_endpoint();
        return {e.address(), e.port()};
    }
};

sdk::options gso_option(bool on) {
    sdk::options o;
    o.set("gso", on);
    return o;
}

sdk::send_meta train_meta(std::uint64_t id, std::uint16_t segment) {
    auto m = meta(id);
    m.segment_size = segment;
    return m;
}

/// `data` arrived as datagrams of `segment` bytes, the last one shorter, in order.
void check_split(const std::vector<sdk::byte_buffer>& got, const sdk::byte_buffer& data,
                 std::size_t segment) {
    const std::size_t expected = (data.size() + segment - 1) / segment;
    BOOST_REQUIRE_EQUAL(got.size(), expected);
    std::size_t at = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const std::size_t len = std::min(segment, data.size() - at);
        BOOST_REQUIRE_MESSAGE(got[i].size() == len, "datagram " << i << " has " << got[i].size()
                                                                << " bytes, expected " << len);
        BOOST_REQUIRE_MESSAGE(std::equal(got[i].begin(), got[i].end(), data.begin() + at),
                              "datagram " << i << " differs");
        at += len;
    }
    BOOST_TEST(at == data.size());
}

void client_train(bool gso, std::size_t segment, std::size_t count, std::size_t last) {
    asio::io_context io;
    log_capture log;
    auto layer = make_layer(post_plugin_udp(), io, gso_option(gso), &log);
    plain_receiver rx(io);
    auto events = std::make_shared<flow_recorder>();
    sdk::open_params p;
    p.remote = rx.local();
    sdk::flow_error err;
    auto f = layer->open(nullptr, p, err);
    BOOST_REQUIRE_MESSAGE(f, err.reason);
    f->set_events(events);
    BOOST_TEST((f->info().capabilities & sdk::cap_segmented_send) != 0);
    f->start();
    BOOST_REQUIRE(run_until(io, [&] { return events->ready; }));

    const auto data = pattern(segment * (count - 1) + last, unsigned(segment + count));
    f->send(data, train_meta(7, static_cast<std::uint16_t>(segment)));
    // A single datagram after the train: order is kept.
    const auto tail = pattern(33, 1);
    f->send(tail, meta(8));
    BOOST_REQUIRE(run_until(io, [&] { return rx.datagrams.size() >= count + 1; }));
    BOOST_REQUIRE(run_until(io, [&] { return events->sent.size() == 2; }));
    BOOST_TEST(events->sent == (std::vector<std::uint64_t>{7, 8})); // one on_sent per train
    BOOST_TEST(events->send_errors.empty());
    BOOST_TEST((rx.datagrams.back() == tail));
    rx.datagrams.pop_back();
    check_split(rx.datagrams, data, segment);
    BOOST_TEST(f->queued_bytes() == 0u);
    if (gso) BOOST_TEST(!log.contains("GSO refused"));
    f->abort();
}

} // namespace

BOOST_AUTO_TEST_CASE(client_train_with_gso) {
    client_train(true, 1200, 10, 700);
}

BOOST_AUTO_TEST_CASE(client_train_with_sendmmsg_fallback) {
    client_train(false, 1200, 10, 700);
}

// More datagrams than one GSO call (64) or one sendmmsg call (64) takes.
BOOST_AUTO_TEST_CASE(long_train_is_split_across_calls) {
    client_train(true, 200, 150, 1);
    client_train(false, 200, 150, 1);
}

// A last datagram of full size, and a train that fits in one datagram (sent as one).
BOOST_AUTO_TEST_CASE(edge_sizes) {
    client_train(true, 1000, 3, 1000);
    client_train(true, 1000, 1, 400);
}

BOOST_AUTO_TEST_CASE(segment_larger_than_the_limit_is_refused) {
    asio::io_context io;
    sdk::options o;
    o.set("max-message-size", std::int64_t{1000});
    auto layer = make_layer(post_plugin_udp(), io, o);
    plain_receiver rx(io);
    auto events = std::make_shared<flow_recorder>();
    sdk::open_params p;
    p.remote = rx.local();
    sdk::flow_error err;
    auto f = layer->open(nullptr, p, err);
    BOOST_REQUIRE(f);
    f->set_events(events);
    f->start();
    BOOST_REQUIRE(run_until(io, [&] { return events->ready; }));
    f->send(pattern(3000, 2), train_meta(1, 1001));
    BOOST_REQUIRE(run_until(io, [&] { return events->send_errors.size() == 1; }));
    BOOST_TEST(events->send_errors[0].first == 1u);
    BOOST_TEST(events->send_errors[0].second.code == std::make_error_code(std::errc::message_size));
    BOOST_TEST(rx.datagrams.empty());
}

void server_train(bool gso) {
    asio::io_context io;
    auto layer = make_layer(post_plugin_udp(), io, gso_option(gso));
    auto server = std::make_shared<acceptor_recorder>();
    sdk::flow_error err;
    auto acc = layer->listen(ep("127.0.0.1"), err);
    BOOST_REQUIRE_MESSAGE(acc, err.reason);
    acc->set_events(server);
    acc->start();

    plain_receiver peer(io);
    const auto where = acc->local_endpoint();
    peer.socket.send_to(asio::buffer("hello", 5), udp::endpoint(where.address, where.port));
    BOOST_REQUIRE(run_until(io, [&] {
        return server->accepted.size() == 1 && server->accepted[0].events->messages.size() == 1;
    }));
    auto& s = server->accepted[0];
    BOOST_TEST((s.flow->info().capabilities & sdk::cap_segmented_send) != 0);

    const auto data = pattern(1350 * 20 + 17, 5);
    s.flow->send(data, train_meta(3, 1350));
    BOOST_REQUIRE(run_until(io, [&] { return peer.datagrams.size() >= 21; }));
    BOOST_REQUIRE(run_until(io, [&] { return s.events->sent.size() == 1; }));
    BOOST_TEST(s.events->sent[0] == 3u);
    BOOST_TEST(peer.last_from.port() == where.port);
    check_split(peer.datagrams, data, 1350);
    s.flow->abort();
    acc->close();
}

BOOST_AUTO_TEST_CASE(server_train_with_gso) {
    server_train(true);
}

BOOST_AUTO_TEST_CASE(server_train_with_sendmmsg_fallback) {
    server_train(false);
}
