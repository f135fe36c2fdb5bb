// The tcp, udp and length-prefix layers, created from their (static) plugin descriptors and driven
// over real loopback sockets.
#define BOOST_TEST_MODULE plugin layers
#include <utility>

#include "layer_test_support.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/write.hpp>

#include <boost/test/unit_test.hpp>

#include <array>
#include <functional>

const post::sdk::plugin_descriptor* post_plugin_tcp() noexcept;
const post::sdk::plugin_descriptor* post_plugin_udp() noexcept;
const post::sdk::plugin_descriptor* post_plugin_framing() noexcept;

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

bool has_v6_loopback() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io);
    boost::system::error_code ec;
    a.open(asio::ip::tcp::v6(), ec);
    if (!ec) a.bind({asio::ip::make_address("::1"), 0}, ec);
    return !ec;
}

/// A port on 127.0.0.1 where nothing listens (bound once, then released).
template <class Protocol> std::uint16_t closed_port() {
    asio::io_context io;
    typename Protocol::socket s(io, {asio::ip::make_address("127.0.0.1"), 0});
    return s.local_endpoint().port();
}

std::shared_ptr<sdk::acceptor> listen(sdk::layer& l, const sdk::endpoint& where,
                                      const std::shared_ptr<acceptor_recorder>& events) {
    sdk::flow_error err;
    auto a = l.listen(where, err);
    BOOST_REQUIRE_MESSAGE(a, "listen failed: " << err.reason);
    a->set_events(events);
    a->start();
    return a;
}

std::shared_ptr<sdk::flow> open_client(sdk::layer& l, std::shared_ptr<sdk::flow> lower,
                                       const sdk::endpoint& remote,
                                       const std::shared_ptr<flow_recorder>& events) {
    sdk::open_params p;
    p.remote = remote;
    sdk::flow_error err;
    auto f = l.open(std::move(lower), p, err);
    BOOST_REQUIRE_MESSAGE(f, "open failed: " << err.reason);
    f->set_events(events);
    return f;
}

void tcp_exchange(const char* address) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen(*tcp, ep(address), server);
    BOOST_TEST(acc->local_endpoint().port != 0);

    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*tcp, nullptr, acc->local_endpoint(), client);
    c->start();
    BOOST_REQUIRE(run_until(io, [&] {
        return client->ready && server->accepted.size() == 1 && server->accepted[0].events->ready;
    }));
    auto& s = server->accepted[0];
    BOOST_TEST(c->info().kind == sdk::edge::stream);
    BOOST_TEST(c->info().remote == acc->local_endpoint());
    BOOST_TEST(s.flow->info().remote == c->info().local);

    c->send(bytes("hello"), meta(1));
    s.flow->send(bytes("wor"), meta(7));
    s.flow->send(bytes("ld"), meta(8));
    BOOST_REQUIRE(run_until(io, [&] {
        return text(s.events->stream) == "hello" && text(client->stream) == "world" &&
               client->sent.size() == 1 && s.events->sent.size() == 2;
    }));
    BOOST_TEST(client->sent == std::vector<std::uint64_t>{1});
    BOOST_TEST((s.events->sent == std::vector<std::uint64_t>{7, 8}));
    BOOST_TEST(c->queued_bytes() == 0u);

    c->close();
    BOOST_REQUIRE(run_until(io, [&] { return client->closed && s.events->closed; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.events->closed, s.events->closed->reason);
    BOOST_TEST(client->events_after_close == 0);
    acc->close();
    BOOST_REQUIRE(run_until(io, [&] { return server->closed.has_value(); }));
}

} // namespace

BOOST_AUTO_TEST_SUITE(tcp)

BOOST_AUTO_TEST_CASE(descriptor_declares_the_layer) {
    const auto* d = post_plugin_tcp();
    BOOST_REQUIRE_EQUAL(d->layer_count, 1u);
    BOOST_TEST(std::string(d->layers[0].name) == "tcp");
    BOOST_TEST(d->layers[0].upper == sdk::edge::stream);
    BOOST_TEST(d->layers[0].lower == sdk::edge::none);
    BOOST_TEST(d->layers[0].feature_count == 6u);
    BOOST_TEST(d->abi_major == sdk::abi_major);
}

BOOST_AUTO_TEST_CASE(exchange_over_ipv4) {
    tcp_exchange("127.0.0.1");
}

BOOST_AUTO_TEST_CASE(exchange_over_ipv6) {
    if (!has_v6_loopback()) {
        BOOST_TEST_MESSAGE("skipped: ::1 is not available on this host");
        return;
    }
    tcp_exchange("::1");
}

BOOST_AUTO_TEST_CASE(connect_to_closed_port_reports_the_reason) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    const auto port = closed_port<asio::ip::tcp>();
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*tcp, nullptr, ep("127.0.0.1", port), client);
    c->start();
    BOOST_REQUIRE(run_until(io, [&] { return client->closed.has_value(); }));
    BOOST_TEST(!client->ready);
    BOOST_TEST(client->closed->code == std::errc::connection_refused);
    const std::string expected = "connect to 127.0.0.1:" + std::to_string(port) + " failed: ";
    BOOST_TEST(client->closed->reason.starts_with(expected), client->closed->reason);
    BOOST_TEST(client->closed->reason.find("refused") != std::string::npos, client->closed->reason);
}

BOOST_AUTO_TEST_CASE(close_delivers_queued_data_before_the_clean_close) {
    asio::io_context io;
    sdk::options opts;
    opts.set("notsent-lowat", std::int64_t{16384});
    opts.set("keep-alive", std::chrono::milliseconds{15000});
    auto tcp = make_layer(post_plugin_tcp(), io, opts);
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen(*tcp, ep("127.0.0.1"), server);
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*tcp, nullptr, acc->local_endpoint(), client);
    c->start();

    // Queue 2 MB and close at once, before the connection is reported established (the first
    // chunk may have left already: the handshake is over on loopback by now).
    sdk::byte_buffer expected;
    constexpr int chunks = 200;
    for (int i = 0; i < chunks; ++i) {
        auto b = pattern(10000, i);
        expected.insert(expected.end(), b.begin(), b.end());
        c->send(std::move(b), meta(static_cast<std::uint64_t>(i)));
    }
    BOOST_TEST(c->queued_bytes() >= expected.size() - 10000);
    c->close();
    c->send(bytes("late"), meta(999)); // after close(): refused, not sent

    BOOST_REQUIRE(run_until(io, [&] {
        return client->closed && server->accepted.size() == 1 && server->accepted[0].events->closed;
    }));
    auto& s = *server->accepted[0].events;
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.closed, s.closed->reason);
    BOOST_TEST(s.stream.size() == expected.size());
    BOOST_TEST((s.stream == expected));
    BOOST_TEST(client->sent.size() == std::size_t(chunks));
    BOOST_TEST(client->order.back() == "closed");
    BOOST_REQUIRE_EQUAL(client->send_errors.size(), 1u);
    BOOST_TEST(client->send_errors[0].first == 999u);
}

// The upper side closes from inside on_received (as a TLS layer answering close_notify does):
// whatever the peer sent is still delivered and the flow ends cleanly, whether the peer's FIN is
// already there (seen at once), comes later, or follows more data than one read takes.
enum class peer_end { fin_already_there, fin_later, fin_after_much_data };

void close_from_the_receive_handler(peer_end how) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto server = std::make_shared<acceptor_recorder>();
    server->io = &io;
    server->defer_start = true; // the flow reads nothing until the peer's bytes are written
    server->on_message = [&](flow_recorder&, const sdk::byte_buffer&) {
        server->accepted.front().flow->close(); // once is enough; again is harmless
    };
    auto acc = listen(*tcp, ep("127.0.0.1"), server);
    asio::ip::tcp::socket raw(io);
    raw.connect({asio::ip::make_address("127.0.0.1"), acc->local_endpoint().port});
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted.size() == 1; }));

    boost::system::error_code ec;
    sdk::byte_buffer payload;
    if (how == peer_end::fin_after_much_data) {
        // More than one read's worth (the layer reads 256 KiB at a time), written as the flow
        // reads, then the FIN.
        payload = pattern(1500000, 3);
        asio::async_write(raw, asio::buffer(payload.data(), payload.size()),
                          [&](const boost::system::error_code& e, std::size_t) {
                              BOOST_TEST(!e, e.message());
                              raw.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
                          });
    } else {
        // Small enough for the socket buffers: all of it (and the FIN) is there before the
        // flow's first read.
        payload = pattern(20000, 4);
        asio::write(raw, asio::buffer(payload.data(), payload.size()));
        if (how == peer_end::fin_already_there) raw.shutdown(asio::ip::tcp::socket::shutdown_send);
    }
    // Our FIN reaches the raw peer: it reads to the end (and then finishes, if it had not).
    std::array<char, 4096> sink{};
    bool peer_saw_eof = false;
    std::function<void()> drain = [&] {
        raw.async_read_some(asio::buffer(sink),
                            [&](const boost::system::error_code& e, std::size_t) {
                                if (e == asio::error::eof) {
                                    peer_saw_eof = true;
                                    if (how == peer_end::fin_later)
                                        raw.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
                                    return;
                                }
                                if (!e) drain();
                            });
    };
    drain();
    auto& s = *server->accepted[0].events;
    BOOST_REQUIRE(run_until(io, [&] { return s.closed.has_value() && peer_saw_eof; }));
    BOOST_TEST(!*s.closed, s.closed->reason);
    BOOST_TEST(s.stream.size() == payload.size());
    BOOST_TEST((s.stream == payload));
    BOOST_TEST(s.events_after_close == 0);
}

BOOST_AUTO_TEST_CASE(close_from_the_receive_handler_with_the_peers_fin_there) {
    close_from_the_receive_handler(peer_end::fin_already_there);
}

BOOST_AUTO_TEST_CASE(close_from_the_receive_handler_before_the_peer_finishes) {
    close_from_the_receive_handler(peer_end::fin_later);
}

BOOST_AUTO_TEST_CASE(close_from_the_receive_handler_with_more_data_coming) {
    close_from_the_receive_handler(peer_end::fin_after_much_data);
}

// release(): the upper layer has ended the conversation itself (a TLS layer, once close_notify
// went both ways), so the flow sends what is queued and closes without waiting for the peer's
// FIN. The raw peer here reads everything up to our FIN and never sends its own: the flow still
// ends cleanly at once, not after the close grace period that close() waits for the FIN.
void release_without_the_peers_fin(bool from_receive_handler) {
    asio::io_context io;
    log_capture log;
    auto tcp = make_layer(post_plugin_tcp(), io, {}, &log);
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket raw(io);
    bool accepted = false;
    acceptor.async_accept(raw, [&](const boost::system::error_code& e) { accepted = !e; });
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*tcp, nullptr, ep("127.0.0.1", acceptor.local_endpoint().port()), client);
    BOOST_TEST((c->info().capabilities & sdk::cap_release) != 0);
    c->start();
    BOOST_REQUIRE(run_until(io, [&] { return client->ready && accepted; }));

    // More than one write's worth, so the close waits for the queue.
    const auto payload = pattern(3000000, 6);
    if (from_receive_handler) {
        client->on_message = [&](flow_recorder&, const sdk::byte_buffer&) {
            if (!client->sent.empty() || c->queued_bytes() > 0) return;
            c->send(payload, meta(1));
            c->release();
        };
        asio::write(raw, asio::buffer("bye", 3));
    } else {
        c->send(payload, meta(1));
        c->release();
    }
    sdk::byte_buffer got;
    std::array<char, 65536> sink{};
    bool peer_saw_eof = false;
    std::function<void()> drain = [&] {
        raw.async_read_some(asio::buffer(sink),
                            [&](const boost::system::error_code& e, std::size_t n) {
                                if (e == asio::error::eof) {
                                    peer_saw_eof = true;
                                    return;
                                }
                                if (e) return;
                                const auto* b = reinterpret_cast<const std::byte*>(sink.data());
                                got.insert(got.end(), b, b + n);
                                drain();
                            });
    };
    drain();
    BOOST_REQUIRE(run_until(io, [&] { return client->closed && peer_saw_eof; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(got.size() == payload.size());
    BOOST_TEST((got == payload));
    BOOST_TEST(client->sent == std::vector<std::uint64_t>{1});
    BOOST_TEST(client->send_errors.empty());
    BOOST_TEST(client->events_after_close == 0);
    // Ended by the release, not by the grace period after a half-close.
    BOOST_TEST(!log.contains("close grace"),
               "log: " << (log.lines.empty() ? "" : log.lines.back()));
    BOOST_TEST(raw.is_open()); // the peer never finished
}

BOOST_AUTO_TEST_CASE(release_closes_without_waiting_for_the_peers_fin) {
    release_without_the_peers_fin(false);
}

BOOST_AUTO_TEST_CASE(release_from_the_receive_handler_closes_after_the_queue) {
    release_without_the_peers_fin(true);
}

// Data queued while the connect is pending leaves as soon as the handshake is over, without
// waiting for the reactor to report the connect: the peer has it before the client's executor
// ran at all. It is reported sent after on_ready, as data that rode in a SYN is.
BOOST_AUTO_TEST_CASE(data_sent_while_connecting_leaves_once_the_handshake_is_done) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*tcp, nullptr, ep("127.0.0.1", acceptor.local_endpoint().port()), client);
    c->start(); // the SYN leaves here
    // accept() returns once the handshake is complete: the client's socket is established, but
    // its connect completion has not run (io has not run at all).
    asio::ip::tcp::socket raw = acceptor.accept();
    c->send(pattern(1000, 3), meta(1));
    raw.non_blocking(true);
    std::array<std::byte, 2000> buf{};
    boost::system::error_code ec;
    const std::size_t n = raw.read_some(asio::buffer(buf), ec);
    BOOST_TEST(!ec, ec.message());
    BOOST_TEST(n == 1000u);
    BOOST_TEST(!client->ready);

    BOOST_REQUIRE(run_until(io, [&] { return !client->sent.empty(); }));
    BOOST_TEST((client->order == std::vector<std::string>{"ready", "sent"}),
               boost::test_tools::per_element());
    BOOST_TEST(c->queued_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(peer_reset_is_an_error) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen(*tcp, ep("127.0.0.1"), server);
    asio::ip::tcp::socket raw(io);
    raw.connect({asio::ip::make_address("127.0.0.1"), acc->local_endpoint().port});
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted.size() == 1; }));
    raw.set_option(asio::socket_base::linger(true, 0));
    raw.close(); // RST
    auto& s = *server->accepted[0].events;
    BOOST_REQUIRE(run_until(io, [&] { return s.closed.has_value(); }));
    BOOST_TEST(static_cast<bool>(*s.closed));
    BOOST_TEST(s.closed->code == std::errc::connection_reset, s.closed->reason);
    BOOST_TEST(s.closed->reason.find("read from 127.0.0.1:") == 0u, s.closed->reason);
}

BOOST_AUTO_TEST_CASE(ipv6_any_listener_leaves_ipv4_port_free) {
    if (!has_v6_loopback()) {
        BOOST_TEST_MESSAGE("skipped: IPv6 is not available on this host");
        return;
    }
    asio::io_context io;
    sdk::options opts;
    opts.set("reuse-address", false);
    auto tcp = make_layer(post_plugin_tcp(), io, opts);
    auto events = std::make_shared<acceptor_recorder>();
    auto v6 = listen(*tcp, ep("::"), events);
    auto v4 = listen(*tcp, ep("0.0.0.0", v6->local_endpoint().port), events);
    BOOST_TEST(v4->local_endpoint().port == v6->local_endpoint().port);
}

BOOST_AUTO_TEST_CASE(dropping_the_acceptor_stops_listening) {
    asio::io_context io;
    sdk::options opts;
    opts.set("reuse-address", false);
    auto tcp = make_layer(post_plugin_tcp(), io, opts);
    auto events = std::make_shared<acceptor_recorder>();
    auto a = listen(*tcp, ep("127.0.0.1"), events);
    const auto where = a->local_endpoint();
    io.poll(); // the accept is pending now
    a.reset();
    sdk::flow_error err;
    auto again = tcp->listen(where, err);
    BOOST_TEST(again != nullptr, err.reason);
}

BOOST_AUTO_TEST_CASE(listen_failure_reports_the_endpoint) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    sdk::flow_error err;
    auto a = tcp->listen(ep("192.0.2.1", 1), err); // TEST-NET-1: not a local address
    BOOST_TEST(!a);
    BOOST_TEST(err.reason.find("listen on 192.0.2.1:1 failed") == 0u, err.reason);
}

BOOST_AUTO_TEST_SUITE_END()

/// The framing plugin provides two layers: pick one by name.
std::unique_ptr<sdk::layer> make_framing_layer(asio::io_context& io, const char* name,
                                               sdk::options opts = {}) {
    const auto* d = post_plugin_framing();
    BOOST_REQUIRE(d != nullptr);
    for (std::size_t i = 0; i < d->layer_count; ++i) {
        if (std::string_view(d->layers[i].name) != name) continue;
        sdk::layer_context ctx{io.get_executor(), std::move(opts), nullptr};
        sdk::flow_error err;
        auto l = d->layers[i].create(ctx, err);
        BOOST_REQUIRE_MESSAGE(l, "create failed: " << err.reason);
        return l;
    }
    BOOST_FAIL("no layer " << name);
    return nullptr;
}

BOOST_AUTO_TEST_SUITE(length_prefix_over_tcp)

BOOST_AUTO_TEST_CASE(messages_arrive_intact_and_in_order) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framing_layer(io, "length-prefix");
    auto server = std::make_shared<acceptor_recorder>();
    server->wrap = [&](std::shared_ptr<sdk::flow> lower) {
        sdk::flow_error err;
        auto f = framer->open(std::move(lower), {}, err);
        BOOST_REQUIRE_MESSAGE(f, err.reason);
        return f;
    };
    std::uint64_t echo_id = 100;
    server->on_message = [&](flow_recorder&, const sdk::byte_buffer& m) {
        server->accepted.back().flow->send(m, meta(echo_id++)); // echo
    };
    auto acc = listen(*tcp, ep("127.0.0.1"), server);

    auto client = std::make_shared<flow_recorder>();
    auto lower =
        open_client(*tcp, nullptr, acc->local_endpoint(), std::make_shared<flow_recorder>());
    auto c = open_client(*framer, lower, acc->local_endpoint(), client);
    BOOST_TEST(c->info().kind == sdk::edge::message);
    BOOST_TEST(c->info().max_message_size == 16777216u);
    c->start();

    const std::vector<std::size_t> sizes{0, 1, 100000, 5 * 1000 * 1000, 0, 3};
    std::vector<sdk::byte_buffer> sent;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        sent.push_back(pattern(sizes[i], static_cast<unsigned>(i)));
        c->send(sent.back(), meta(i + 1));
    }
    BOOST_REQUIRE(run_until(io, [&] { return client->messages.size() == sizes.size(); }));
    auto& s = *server->accepted.at(0).events;
    BOOST_REQUIRE_EQUAL(s.messages.size(), sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        BOOST_TEST((s.messages[i] == sent[i]), "server message " << i);
        BOOST_TEST((client->messages[i] == sent[i]), "echoed message " << i);
    }
    BOOST_TEST((client->sent == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));

    c->close();
    BOOST_REQUIRE(run_until(io, [&] { return client->closed && s.closed; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.closed, s.closed->reason);
}

BOOST_AUTO_TEST_CASE(oversized_send_is_refused_and_the_flow_goes_on) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    sdk::options opts;
    opts.set("max-message-size", std::int64_t{1000});
    auto framer = make_framing_layer(io, "length-prefix", opts);
    auto server = std::make_shared<acceptor_recorder>();
    server->wrap = [&](std::shared_ptr<sdk::flow> lower) {
        sdk::flow_error err;
        return framer->open(std::move(lower), {}, err);
    };
    auto acc = listen(*tcp, ep("127.0.0.1"), server);
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*framer, open_client(*tcp, nullptr, acc->local_endpoint(), nullptr),
                         acc->local_endpoint(), client);
    c->start();
    c->send(pattern(1001, 1), meta(1));
    c->send(pattern(1000, 2), meta(2));
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && server->accepted[0].events->messages.size() == 1;
    }));
    BOOST_REQUIRE_EQUAL(client->send_errors.size(), 1u);
    BOOST_TEST(client->send_errors[0].first == 1u);
    BOOST_TEST(client->send_errors[0].second.code == std::errc::message_size);
    BOOST_TEST(client->send_errors[0].second.reason ==
               "message of 1001 bytes exceeds max-message-size 1000");
    BOOST_TEST((server->accepted[0].events->messages[0] == pattern(1000, 2)));
}

/// A raw TCP peer writes `wire` into a framer server flow, then (optionally) half-closes.
flow_recorder garbage_into_framer(const sdk::byte_buffer& wire, bool shutdown_after) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framing_layer(io, "length-prefix");
    auto server = std::make_shared<acceptor_recorder>();
    server->wrap = [&](std::shared_ptr<sdk::flow> lower) {
        sdk::flow_error err;
        return framer->open(std::move(lower), {}, err);
    };
    auto acc = listen(*tcp, ep("127.0.0.1"), server);
    asio::ip::tcp::socket raw(io);
    raw.connect({asio::ip::make_address("127.0.0.1"), acc->local_endpoint().port});
    asio::write(raw, asio::buffer(wire));
    if (shutdown_after) raw.shutdown(asio::ip::tcp::socket::shutdown_send);
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && server->accepted[0].events->closed.has_value();
    }));
    return *server->accepted[0].events;
}

BOOST_AUTO_TEST_CASE(oversized_length_from_peer_is_a_protocol_error) {
    auto wire = bytes("\xFF\xFF\xFF\xFF junk that must never be delivered");
    auto rec = garbage_into_framer(wire, false);
    BOOST_TEST(rec.messages.empty());
    BOOST_TEST(static_cast<bool>(*rec.closed));
    BOOST_TEST(rec.closed->code == std::errc::protocol_error);
    BOOST_TEST(
        rec.closed->reason.find("frame of 4294967295 bytes exceeds max-message-size 16777216") !=
            std::string::npos,
        rec.closed->reason);
}

BOOST_AUTO_TEST_CASE(stream_ending_inside_a_frame_is_a_protocol_error) {
    auto wire = bytes(std::string("\0\0\0\2ok\0\0\0\x10"
                                  "abc",
                                  13));
    auto rec = garbage_into_framer(wire, true);
    BOOST_REQUIRE_EQUAL(rec.messages.size(), 1u);
    BOOST_TEST(text(rec.messages[0]) == "ok");
    BOOST_TEST(rec.closed->code == std::errc::protocol_error);
    BOOST_TEST(rec.closed->reason.find("ended inside a frame") != std::string::npos,
               rec.closed->reason);
}

BOOST_AUTO_TEST_CASE(framer_needs_a_lower_flow) {
    asio::io_context io;
    auto framer = make_framing_layer(io, "length-prefix");
    sdk::flow_error err;
    BOOST_TEST(!framer->open(nullptr, {}, err));
    BOOST_TEST(err.code == std::errc::invalid_argument);
    BOOST_TEST(!framer->listen(ep("127.0.0.1"), err));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(udp)

namespace {

void udp_exchange(const char* address) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    auto server = std::make_shared<acceptor_recorder>();
    server->io = &io;
    server->defer_start = true; // the first datagram must wait for start()
    server->on_message = [&](flow_recorder& rec, const sdk::byte_buffer& m) {
        for (auto& a : server->accepted)
            if (a.events.get() == &rec) a.flow->send(bytes("reply to " + text(m)), meta(50));
    };
    auto acc = listen(*udp, ep(address), server);

    auto r1 = std::make_shared<flow_recorder>();
    auto r2 = std::make_shared<flow_recorder>();
    auto c1 = open_client(*udp, nullptr, acc->local_endpoint(), r1);
    auto c2 = open_client(*udp, nullptr, acc->local_endpoint(), r2);
    c1->start();
    c2->start();
    c1->send(bytes("one"), meta(1)); // queued until the socket is open
    BOOST_REQUIRE(run_until(io, [&] { return r1->ready && r2->ready; }));
    c2->send(bytes("two"), meta(2));
    BOOST_REQUIRE(
        run_until(io, [&] { return r1->messages.size() == 1 && r2->messages.size() == 1; }));

    BOOST_TEST(text(r1->messages[0]) == "reply to one");
    BOOST_TEST(text(r2->messages[0]) == "reply to two");
    BOOST_TEST((r1->metas[0].from == acc->local_endpoint()));
    BOOST_REQUIRE_EQUAL(server->accepted.size(), 2u);
    for (auto& a : server->accepted) {
        BOOST_REQUIRE_EQUAL(a.events->messages.size(), 1u);
        BOOST_TEST(a.events->received_before_start == 0);
        BOOST_TEST(a.events->order.front() == "ready");
        BOOST_REQUIRE(a.events->metas[0].from.has_value());
        const auto from = *a.events->metas[0].from;
        const auto& client = text(a.events->messages[0]) == "one" ? c1 : c2;
        BOOST_TEST(from == client->info().local);
        BOOST_TEST(a.flow->info().remote == client->info().local);
        BOOST_TEST(a.flow->info().kind == sdk::edge::datagram);
    }
    BOOST_TEST(r1->sent == std::vector<std::uint64_t>{1});

    // Closing the acceptor keeps the flows it created working.
    acc->close();
    BOOST_REQUIRE(run_until(io, [&] { return server->closed.has_value(); }));
    c1->send(bytes("again"), meta(3));
    BOOST_REQUIRE(run_until(io, [&] { return r1->messages.size() == 2; }));
    BOOST_TEST(text(r1->messages[1]) == "reply to again");

    c1->close();
    BOOST_REQUIRE(run_until(io, [&] { return r1->closed.has_value(); }));
    BOOST_TEST(!*r1->closed);
}

} // namespace

BOOST_AUTO_TEST_CASE(exchange_over_ipv4) {
    udp_exchange("127.0.0.1");
}

BOOST_AUTO_TEST_CASE(exchange_over_ipv6) {
    if (!has_v6_loopback()) {
        BOOST_TEST_MESSAGE("skipped: ::1 is not available on this host");
        return;
    }
    udp_exchange("::1");
}

BOOST_AUTO_TEST_CASE(oversized_message_is_refused_and_the_flow_goes_on) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen(*udp, ep("127.0.0.1"), server);
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*udp, nullptr, acc->local_endpoint(), client);
    BOOST_TEST(c->info().max_message_size == 65507u);
    c->start();
    c->send(pattern(65508, 1), meta(5));
    c->send(pattern(65507, 2), meta(6));
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && !server->accepted[0].events->messages.empty();
    }));
    BOOST_REQUIRE_EQUAL(client->send_errors.size(), 1u);
    BOOST_TEST(client->send_errors[0].first == 5u);
    BOOST_TEST(client->send_errors[0].second.code == std::errc::message_size);
    BOOST_TEST(client->send_errors[0].second.reason ==
               "message of 65508 bytes exceeds the path's maximum datagram size of 65507 bytes");
    BOOST_TEST((server->accepted[0].events->messages[0] == pattern(65507, 2)));
    BOOST_TEST(client->sent == std::vector<std::uint64_t>{6});
    BOOST_TEST(!client->closed.has_value());
}

BOOST_AUTO_TEST_CASE(configured_max_message_size_applies) {
    asio::io_context io;
    sdk::options opts;
    opts.set("max-message-size", std::int64_t{1200});
    auto udp = make_layer(post_plugin_udp(), io, opts);
    auto c = open_client(*udp, nullptr, ep("127.0.0.1", 9), std::make_shared<flow_recorder>());
    BOOST_TEST(c->info().max_message_size == 1200u);
}

BOOST_AUTO_TEST_CASE(icmp_port_unreachable_closes_with_a_reason) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    const auto port = closed_port<asio::ip::udp>();
    auto client = std::make_shared<flow_recorder>();
    auto c = open_client(*udp, nullptr, ep("127.0.0.1", port), client);
    c->start();
    c->send(bytes("anyone?"), meta(1));
    BOOST_REQUIRE(run_until(io, [&] { return client->closed.has_value(); }));
    BOOST_TEST(client->ready);
    BOOST_TEST(client->closed->code == std::errc::connection_refused, client->closed->reason);
    BOOST_TEST(client->closed->reason.find("udp peer 127.0.0.1:" + std::to_string(port) +
                                           " is unreachable") == 0u,
               client->closed->reason);
}

BOOST_AUTO_TEST_CASE(max_peers_bounds_the_flows_of_an_acceptor) {
    asio::io_context io;
    log_capture log;
    sdk::options opts;
    opts.set("max-peers", std::int64_t{1});
    auto udp = make_layer(post_plugin_udp(), io, opts, &log);
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen(*udp, ep("127.0.0.1"), server);
    auto r1 = std::make_shared<flow_recorder>();
    auto r2 = std::make_shared<flow_recorder>();
    auto c1 = open_client(*udp, nullptr, acc->local_endpoint(), r1);
    auto c2 = open_client(*udp, nullptr, acc->local_endpoint(), r2);
    c1->start();
    c2->start();
    c1->send(bytes("a"), meta(1));
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted.size() == 1 && r2->ready; }));
    c2->send(bytes("b"), meta(2));
    BOOST_REQUIRE(run_until(io, [&] { return r2->sent.size() == 1; }));
    c1->send(bytes("c"), meta(3)); // sent after "b": arrives after it on loopback
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted[0].events->messages.size() == 2; }));
    BOOST_TEST(server->accepted.size() == 1u);
    BOOST_TEST(log.contains("max-peers (1) reached"));

    // Once the first peer's flow is gone, a new remote is accepted again.
    server->accepted[0].flow->close();
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted[0].events->closed.has_value(); }));
    c2->send(bytes("d"), meta(4));
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted.size() == 2; }));
    BOOST_REQUIRE(run_until(io, [&] { return server->accepted[1].events->messages.size() == 1; }));
    BOOST_TEST(text(server->accepted[1].events->messages[0]) == "d");
}

BOOST_AUTO_TEST_CASE(dropping_the_acceptor_stops_listening) {
    asio::io_context io;
    sdk::options opts;
    opts.set("reuse-address", false);
    auto udp = make_layer(post_plugin_udp(), io, opts);
    auto events = std::make_shared<acceptor_recorder>();
    auto a = listen(*udp, ep("127.0.0.1"), events);
    const auto where = a->local_endpoint();
    io.poll();
    a.reset();
    io.poll(); // the cancelled receive releases the socket
    sdk::flow_error err;
    auto again = udp->listen(where, err);
    BOOST_TEST(again != nullptr, err.reason);
}

BOOST_AUTO_TEST_SUITE_END()
