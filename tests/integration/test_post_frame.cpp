// The post-frame layer (`framer`) over real loopback TCP: interleaving by niceness, expiry
// mid-message, acknowledgements, and the fallback against peers that do not speak it (plain
// Asio sockets playing an HTTP server, an echo server and a raw client).
#define BOOST_TEST_MODULE post - frame layer
#include <utility>

#include "../integration/layer_test_support.hpp"
#include "post_frame_codec.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <boost/test/unit_test.hpp>

#include <thread>

const post::sdk::plugin_descriptor* post_plugin_tcp() noexcept;
const post::sdk::plugin_descriptor* post_plugin_framing() noexcept;

using namespace post;
using namespace post::test;
namespace asio = boost::asio;
namespace pf = post::plugins::framing::post_frame;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<sdk::layer> make_framer(asio::io_context& io, sdk::options opts = {},
                                        sdk::log_sink* log = nullptr) {
    const auto* d = post_plugin_framing();
    BOOST_REQUIRE(d != nullptr);
    for (std::size_t i = 0; i < d->layer_count; ++i) {
        if (std::string_view(d->layers[i].name) != "framer") continue;
        sdk::layer_context ctx{io.get_executor(), std::move(opts), log};
        sdk::flow_error err;
        auto l = d->layers[i].create(ctx, err);
        BOOST_REQUIRE_MESSAGE(l, "create failed: " << err.reason);
        return l;
    }
    BOOST_FAIL("no framer layer");
    return nullptr;
}

/// flow_recorder plus the events only message flows with capabilities have.
struct pf_recorder : flow_recorder {
    std::vector<std::uint64_t> acked;
    std::vector<std::uint64_t> expired;
    void on_acked(std::uint64_t id) noexcept override {
        note("acked");
        acked.push_back(id);
    }
    void on_expired(std::uint64_t id) noexcept override {
        note("expired");
        expired.push_back(id);
    }
};

sdk::send_meta meta_of(std::uint64_t id, int niceness,
                       std::optional<std::chrono::steady_clock::time_point> deadline = {}) {
    sdk::send_meta m;
    m.id = id;
    m.niceness = niceness;
    m.deadline = deadline;
    return m;
}

/// A client [framer, tcp] flow towards `port` on 127.0.0.1.
std::shared_ptr<sdk::flow> open_client(sdk::layer& tcp, sdk::layer& framer, std::uint16_t port,
                                       const std::shared_ptr<pf_recorder>& events) {
    sdk::open_params p;
    p.side = sdk::role::client;
    p.remote = ep("127.0.0.1", port);
    sdk::flow_error err;
    auto lower = tcp.open(nullptr, p, err);
    BOOST_REQUIRE_MESSAGE(lower, err.reason);
    auto f = framer.open(lower, p, err);
    BOOST_REQUIRE_MESSAGE(f, err.reason);
    f->set_events(events);
    f->start();
    return f;
}

/// A tcp listener whose accepted flows are wrapped by `framer` as the responder.
std::shared_ptr<sdk::acceptor> listen_framed(sdk::layer& tcp, sdk::layer& framer,
                                             const std::shared_ptr<acceptor_recorder>& server) {
    server->wrap = [&framer](std::shared_ptr<sdk::flow> lower) {
        sdk::open_params p;
        p.side = sdk::role::server;
        sdk::flow_error err;
        auto f = framer.open(std::move(lower), p, err);
        BOOST_REQUIRE_MESSAGE(f, err.reason);
        return f;
    };
    sdk::flow_error err;
    auto a = tcp.listen(ep("127.0.0.1"), err);
    BOOST_REQUIRE_MESSAGE(a, err.reason);
    a->set_events(server);
    a->start();
    return a;
}

/// Our framer as the responder on loopback, and a hand-driven plain TCP socket as its client,
/// for tests that write the initiator's bytes themselves.
struct framed_server_and_raw_client {
    asio::io_context io;
    std::unique_ptr<sdk::layer> tcp = make_layer(post_plugin_tcp(), io);
    std::unique_ptr<sdk::layer> framer = make_framer(io);
    std::shared_ptr<acceptor_recorder> server = std::make_shared<acceptor_recorder>();
    std::shared_ptr<sdk::acceptor> acc = listen_framed(*tcp, *framer, server);
    asio::ip::tcp::socket raw{io};

    framed_server_and_raw_client() {
        raw.connect({asio::ip::make_address("127.0.0.1"), acc->local_endpoint().port});
    }
};

/// A plain Asio TCP peer: accepts one connection (or connects), reads into `got` on demand.
struct raw_peer {
    asio::ip::tcp::acceptor acceptor;
    asio::ip::tcp::socket socket;
    bool connected = false;
    bool eof = false;
    sdk::byte_buffer got;
    std::array<std::byte, 65536> buf{};

    explicit raw_peer(asio::io_context& io, int receive_buffer = 0)
        : acceptor(io)
        , socket(io) {
        acceptor.open(asio::ip::tcp::v4());
        if (receive_buffer) // inherited by the accepted socket: the peer stalls a sender early
            acceptor.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
        acceptor.bind({asio::ip::make_address("127.0.0.1"), 0});
        acceptor.listen();
        acceptor.async_accept(socket, [this](const boost::system::error_code& ec) {
            BOOST_REQUIRE(!ec);
            connected = true;
        });
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    void write(const sdk::byte_buffer& b) { asio::write(socket, asio::buffer(b)); }
    void read_all() {
        socket.async_read_some(
            asio::buffer(buf), [this](const boost::system::error_code& ec, std::size_t n) {
                if (ec) {
                    eof = true;
                    return;
                }
                got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
                read_all();
            });
    }
    /// Echo everything back.
    void echo() {
        socket.async_read_some(asio::buffer(buf),
                               [this](const boost::system::error_code& ec, std::size_t n) {
                                   if (ec) return;
                                   asio::write(socket, asio::buffer(buf.data(), n));
                                   echo();
                               });
    }
};

/// A real TCP flow that reports a fixed smoothed RTT: loopback's is microseconds, and this
/// machine has no netem to make a slow path. Everything else goes to the TCP flow itself.
class slow_path_flow final : public sdk::flow {
public:
    slow_path_flow(std::shared_ptr<sdk::flow> inner, std::chrono::microseconds rtt)
        : inner_(std::move(inner))
        , rtt_(rtt) {}
    void set_events(std::weak_ptr<sdk::flow_events> e) noexcept override {
        inner_->set_events(std::move(e));
    }
    void start() noexcept override { inner_->start(); }
    void send(sdk::byte_buffer d, const sdk::send_meta& m) noexcept override {
        inner_->send(std::move(d), m);
    }
    void close() noexcept override { inner_->close(); }
    void abort() noexcept override { inner_->abort(); }
    sdk::flow_info info() const noexcept override { return inner_->info(); }
    std::size_t queued_bytes() const noexcept override { return inner_->queued_bytes(); }
    std::chrono::microseconds smoothed_rtt() const noexcept override { return rtt_; }

private:
    std::shared_ptr<sdk::flow> inner_;
    std::chrono::microseconds rtt_;
};

sdk::byte_buffer preface(const std::array<std::byte, pf::preface_size>& p) {
    return sdk::byte_buffer(p.begin(), p.end());
}

/// Decodes what a raw peer received from a framer client (after checking its preface).
std::vector<pf::decoded> decode_from_client(const sdk::byte_buffer& got, std::string& error) {
    std::vector<pf::decoded> out;
    if (got.size() < pf::preface_size ||
        !std::equal(pf::initiator_preface.begin(), pf::initiator_preface.end(), got.begin())) {
        error = "no initiator preface";
        return out;
    }
    pf::decoder d({});
    if (!d.feed(std::span<const std::byte>(got).subspan(pf::preface_size), pf::clock::now(), out))
        error = d.error();
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(messages_and_acks_flow_both_ways) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framer(io);
    auto server = std::make_shared<acceptor_recorder>();
    std::uint64_t echo_id = 100;
    server->on_message = [&](flow_recorder&, const sdk::byte_buffer& m) {
        server->accepted.back().flow->send(m, meta(echo_id++));
    };
    auto acc = listen_framed(*tcp, *framer, server);
    auto client = std::make_shared<pf_recorder>();
    auto c = open_client(*tcp, *framer, acc->local_endpoint().port, client);

    const auto caps = c->info().capabilities;
    BOOST_TEST((c->info().kind == sdk::edge::message));
    BOOST_TEST((caps & sdk::cap_acked));
    BOOST_TEST((caps & sdk::cap_interleaves));
    BOOST_TEST((caps & sdk::cap_expires_in_flight));
    BOOST_TEST((caps & sdk::cap_ordered));
    BOOST_TEST(!(caps & sdk::cap_partial));

    const std::vector<std::size_t> sizes{0, 1, 64, 100000, 3 * 1000 * 1000, 5};
    std::vector<sdk::byte_buffer> sent;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        sent.push_back(pattern(sizes[i], static_cast<unsigned>(i)));
        c->send(sent.back(), meta(i + 1));
    }
    BOOST_REQUIRE(run_until(io, [&] {
        return client->messages.size() == sizes.size() && client->acked.size() == sizes.size();
    }));
    auto& s = *server->accepted.at(0).events;
    BOOST_REQUIRE_EQUAL(s.messages.size(), sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        BOOST_TEST((s.messages[i] == sent[i]), "server message " << i);
        BOOST_TEST((client->messages[i] == sent[i]), "echoed message " << i);
    }
    BOOST_TEST((client->sent == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
    BOOST_TEST((client->acked == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
    // Each acked comes after its sent.
    int sent_seen = 0;
    for (const auto& e : client->order) {
        if (e == "sent") ++sent_seen;
        if (e == "acked") BOOST_TEST(sent_seen > 0);
    }
    BOOST_TEST(c->queued_bytes() == 0u);

    c->close();
    BOOST_REQUIRE(run_until(io, [&] { return client->closed && s.closed; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.closed, s.closed->reason);
}

BOOST_AUTO_TEST_CASE(urgent_message_overtakes_a_large_one_in_progress) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framer(io);
    sdk::options server_opts;
    server_opts.set("partial-delivery", std::int64_t{1024 * 1024}); // to see the big one start
    auto server_framer = make_framer(io, server_opts);
    auto server = std::make_shared<acceptor_recorder>();
    auto acc = listen_framed(*tcp, *server_framer, server);
    auto client = std::make_shared<pf_recorder>();
    auto c = open_client(*tcp, *framer, acc->local_endpoint().port, client);

    const auto big = pattern(8 * 1024 * 1024, 1);
    c->send(big, meta_of(1, 9));
    // Wait until the receiver has the first part of the big message: it is in progress.
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && !server->accepted[0].events->messages.empty();
    }));
    const auto urgent = pattern(64, 2);
    c->send(urgent, meta_of(2, 0));
    auto& s = *server->accepted[0].events;
    BOOST_REQUIRE(run_until(io, [&] {
        return !s.metas.empty() && s.metas.back().partial && s.metas.back().end_of_message &&
               client->acked.size() == 2;
    }));
    // Parts of unit 1, the urgent message whole, more parts of unit 1, its end last.
    std::size_t urgent_at = s.messages.size();
    sdk::byte_buffer joined;
    for (std::size_t i = 0; i < s.messages.size(); ++i) {
        if (!s.metas[i].partial) {
            BOOST_TEST((s.messages[i] == urgent));
            urgent_at = i;
        } else {
            BOOST_TEST(s.metas[i].unit == s.metas[0].unit);
            joined.insert(joined.end(), s.messages[i].begin(), s.messages[i].end());
        }
    }
    BOOST_TEST(urgent_at > 0u);
    BOOST_TEST(urgent_at < s.messages.size() - 1, "the urgent message arrived after the large one");
    BOOST_TEST((joined == big));
    BOOST_TEST((client->sent == std::vector<std::uint64_t>{2, 1}));
    BOOST_TEST((client->acked == std::vector<std::uint64_t>{2, 1}));
}

BOOST_AUTO_TEST_CASE(expiry_mid_message_aborts_it_and_the_receiver_never_sees_it) {
    asio::io_context io;
    sdk::options tcp_opts;
    tcp_opts.set("notsent-lowat", std::int64_t{16384});
    auto tcp = make_layer(post_plugin_tcp(), io, tcp_opts);
    auto framer = make_framer(io);
    raw_peer peer(io, 64 * 1024); // a post-frame responder that stops reading
    auto client = std::make_shared<pf_recorder>();
    auto c = open_client(*tcp, *framer, peer.port(), client);
    BOOST_REQUIRE(run_until(io, [&] { return peer.connected && client->ready; }));
    peer.write(preface(pf::responder_preface));

    // Long enough that the first chunks are surely written even in a slow (sanitizer) build on
    // a loaded machine: a message of which nothing left needs no abort frame.
    const auto deadline = std::chrono::steady_clock::now() + 1000ms;
    c->send(pattern(8 * 1024 * 1024, 3), meta_of(1, 9, deadline));
    BOOST_REQUIRE(run_until(io, [&] { return !client->expired.empty(); }));
    BOOST_TEST((std::chrono::steady_clock::now() >= deadline));
    BOOST_TEST((client->expired == std::vector<std::uint64_t>{1}));
    BOOST_TEST(client->sent.empty());
    BOOST_TEST(client->send_errors.empty());

    // The peer reads again; the flow goes on with the next message.
    peer.read_all();
    c->send(bytes("after"), meta_of(2, 0));
    std::vector<pf::decoded> frames;
    std::string error;
    BOOST_REQUIRE(run_until(io, [&] {
        if (peer.got.size() < pf::preface_size) return false;
        frames = decode_from_client(peer.got, error);
        return !error.empty() ||
               (!frames.empty() && frames.back().what == pf::decoded::kind::message);
    }));
    BOOST_REQUIRE_MESSAGE(error.empty(), error);
    BOOST_REQUIRE_EQUAL(frames.size(), 2u);
    BOOST_TEST((frames[0].what == pf::decoded::kind::abort && frames[0].id == 1u));
    BOOST_TEST(text(frames[1].data) == "after");
    BOOST_TEST(frames[1].id == 2u);
    BOOST_TEST(!client->closed.has_value());
}

BOOST_FIXTURE_TEST_CASE(message_completing_after_its_lifetime_is_discarded_and_acked_expired,
                        framed_server_and_raw_client) {
    // A hand-made initiator: message 1 with a lifetime of 1 ms, its second half late.
    auto wire = preface(pf::initiator_preface);
    const auto m = pattern(10, 4);
    pf::append_data(wire, 1, true, false, true, 10, 1, std::span<const std::byte>(m).subspan(0, 5));
    asio::write(raw, asio::buffer(wire));
    BOOST_REQUIRE(run_until(io, [&] { return !server->accepted.empty(); }));
    // Let the server read the first half, then let the lifetime pass.
    BOOST_REQUIRE(run_until(
                      io, [] { return false; }, 50ms) == false);
    sdk::byte_buffer rest;
    pf::append_data(rest, 1, false, true, false, 10, 0, std::span<const std::byte>(m).subspan(5));
    pf::append_data(rest, 2, true, true, true, 2, 0, bytes("ok"));
    asio::write(raw, asio::buffer(rest));
    auto& s = *server->accepted[0].events;
    BOOST_REQUIRE(run_until(io, [&] { return !s.messages.empty(); }));
    BOOST_REQUIRE_EQUAL(s.messages.size(), 1u);
    BOOST_TEST(text(s.messages[0]) == "ok");
    // The responder's preface, ACK(1, expired), ACK(2).
    sdk::byte_buffer expect = preface(pf::responder_preface);
    pf::append_ack(expect, 1, true);
    pf::append_ack(expect, 2, false);
    sdk::byte_buffer got(expect.size());
    bool read_done = false;
    asio::async_read(raw, asio::buffer(got), [&](const boost::system::error_code& ec, std::size_t) {
        BOOST_TEST(!ec);
        read_done = true;
    });
    BOOST_REQUIRE(run_until(io, [&] { return read_done; }));
    BOOST_TEST((got == expect));
}

BOOST_AUTO_TEST_CASE(fallback_error_names_the_first_bytes) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framer(io);
    raw_peer peer(io);
    auto client = std::make_shared<pf_recorder>();
    auto c = open_client(*tcp, *framer, peer.port(), client);
    BOOST_REQUIRE(run_until(io, [&] { return peer.connected; }));
    peer.write(bytes("HTTP/1.1 400 Bad Request\r\n\r\n"));
    BOOST_REQUIRE(run_until(io, [&] { return client->closed.has_value(); }));
    BOOST_TEST(client->closed->code == std::errc::protocol_error);
    BOOST_TEST(client->closed->reason ==
                   "peer does not speak post-frame: first bytes were 48 54 54 50 2f 31 2e 31 ...",
               client->closed->reason);
    BOOST_TEST(client->messages.empty());
}

BOOST_AUTO_TEST_CASE(an_echo_peer_is_not_mistaken_for_a_responder) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framer(io);
    raw_peer peer(io);
    auto client = std::make_shared<pf_recorder>();
    auto c = open_client(*tcp, *framer, peer.port(), client);
    BOOST_REQUIRE(run_until(io, [&] { return peer.connected; }));
    peer.echo();
    c->send(bytes("hello"), meta(1));
    BOOST_REQUIRE(run_until(io, [&] { return client->closed.has_value(); }));
    BOOST_TEST(client->closed->code == std::errc::protocol_error);
    BOOST_TEST(client->closed->reason.find("first bytes were 50 4f 53 54 46 52 4d 01") !=
                   std::string::npos,
               client->closed->reason);
    BOOST_TEST(client->messages.empty());
}

BOOST_AUTO_TEST_CASE(initiator_preface_goes_out_unasked_but_not_from_one_that_closes_at_once) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framer(io);
    // Staying open without sending: the preface leaves anyway, so a responder can talk first.
    raw_peer talker(io);
    auto waiting = std::make_shared<pf_recorder>();
    auto w = open_client(*tcp, *framer, talker.port(), waiting);
    BOOST_REQUIRE(run_until(io, [&] { return talker.connected; }));
    talker.read_all();
    BOOST_REQUIRE(run_until(io, [&] { return talker.got.size() >= pf::preface_size; }));
    BOOST_TEST((talker.got == preface(pf::initiator_preface)));
    // Closing in the turn it became ready, having framed nothing: nothing to negotiate, and the
    // peer sees a clean end without a single byte.
    struct close_on_ready : pf_recorder {
        std::weak_ptr<sdk::flow> flow;
        void on_ready() noexcept override {
            pf_recorder::on_ready();
            if (auto f = flow.lock()) f->close();
        }
    };
    raw_peer quiet(io);
    auto closing = std::make_shared<close_on_ready>();
    auto c = open_client(*tcp, *framer, quiet.port(), closing);
    closing->flow = c;
    BOOST_REQUIRE(run_until(io, [&] { return quiet.connected; }));
    quiet.read_all();
    BOOST_REQUIRE(run_until(io, [&] { return quiet.eof; }));
    BOOST_TEST(quiet.got.empty());
    BOOST_REQUIRE(run_until(io, [&] { return closing->closed.has_value(); }));
    BOOST_TEST(!*closing->closed, closing->closed->reason);
    w->abort();
}

BOOST_AUTO_TEST_CASE(fallback_raw_carries_unframed_bytes) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    sdk::options opts;
    opts.set("fallback", std::string("raw"));
    log_capture log;
    auto framer = make_framer(io, opts, &log);
    raw_peer peer(io);
    auto client = std::make_shared<pf_recorder>();
    auto c = open_client(*tcp, *framer, peer.port(), client);
    c->send(bytes("ping"), meta(1)); // held until the peer's first bytes decide
    BOOST_REQUIRE(run_until(io, [&] { return peer.connected; }));
    peer.read_all();
    peer.write(bytes("220 hello\r\n"));
    BOOST_REQUIRE(run_until(io, [&] {
        return text(client->stream) == "220 hello\r\n" && client->sent.size() == 1 &&
               peer.got.size() >= 12;
    }));
    auto expect = preface(pf::initiator_preface);
    auto ping = bytes("ping");
    expect.insert(expect.end(), ping.begin(), ping.end());
    BOOST_TEST((peer.got == expect));
    BOOST_TEST(c->info().capabilities == sdk::cap_ordered);
    BOOST_TEST(log.contains("falling back to a raw byte stream"));
    BOOST_TEST(!client->closed.has_value());
}

BOOST_FIXTURE_TEST_CASE(responder_refuses_a_client_that_does_not_speak_it,
                        framed_server_and_raw_client) {
    asio::write(raw, asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && server->accepted[0].events->closed.has_value();
    }));
    const auto& closed = *server->accepted[0].events->closed;
    BOOST_TEST(closed.code == std::errc::protocol_error);
    BOOST_TEST(closed.reason == "peer does not speak post-frame: first bytes were 47 45 54 20 2f "
                                "20 48 54 ...",
               closed.reason);
}

BOOST_FIXTURE_TEST_CASE(malformed_frames_after_the_preface_close_with_the_reason,
                        framed_server_and_raw_client) {
    auto wire = preface(pf::initiator_preface);
    pf::append_data(wire, 1, true, true, false, 2, 0, bytes("ok"));
    pf::append_data(wire, 7, false, true, false, 0, 0, bytes("zz"));
    asio::write(raw, asio::buffer(wire));
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && server->accepted[0].events->closed.has_value();
    }));
    const auto& rec = *server->accepted[0].events;
    BOOST_REQUIRE_EQUAL(rec.messages.size(), 1u);
    BOOST_TEST(text(rec.messages[0]) == "ok");
    BOOST_TEST(rec.closed->code == std::errc::protocol_error);
    BOOST_TEST(rec.closed->reason == "post-frame: DATA for message 7 which has not started");
}

BOOST_FIXTURE_TEST_CASE(stream_ending_mid_message_is_a_protocol_error,
                        framed_server_and_raw_client) {
    auto wire = preface(pf::initiator_preface);
    pf::append_data(wire, 1, true, false, false, 10, 0, bytes("abc"));
    asio::write(raw, asio::buffer(wire));
    raw.shutdown(asio::ip::tcp::socket::shutdown_send);
    BOOST_REQUIRE(run_until(io, [&] {
        return !server->accepted.empty() && server->accepted[0].events->closed.has_value();
    }));
    const auto& rec = *server->accepted[0].events;
    BOOST_TEST(rec.messages.empty());
    BOOST_TEST(rec.closed->code == std::errc::protocol_error);
    BOOST_TEST(rec.closed->reason ==
               "post-frame: the stream ended with message 1 incomplete (3 of 10 bytes)");
}

// The lifetime on the wire is what is left minus a round trip of transit (the peer counts it
// from arrival), and a message that cannot arrive in time even over half a round trip is
// dropped before anything of it is sent.
BOOST_AUTO_TEST_CASE(lifetime_on_the_wire_leaves_room_for_the_transit) {
    asio::io_context io;
    auto tcp = make_layer(post_plugin_tcp(), io);
    auto framer = make_framer(io);
    raw_peer peer(io);
    auto client = std::make_shared<pf_recorder>();
    sdk::open_params p;
    p.side = sdk::role::client;
    p.remote = ep("127.0.0.1", peer.port());
    sdk::flow_error err;
    auto tcp_flow = tcp->open(nullptr, p, err);
    BOOST_REQUIRE_MESSAGE(tcp_flow, err.reason);
    BOOST_TEST(tcp_flow->smoothed_rtt().count() == 0); // no connection yet
    auto c = framer->open(std::make_shared<slow_path_flow>(tcp_flow, 40ms), p, err);
    BOOST_REQUIRE_MESSAGE(c, err.reason);
    c->set_events(client);
    c->start();
    BOOST_REQUIRE(run_until(io, [&] { return peer.connected && client->ready; }));
    BOOST_TEST(tcp_flow->smoothed_rtt().count() > 0); // the kernel's estimate, loopback
    peer.write(preface(pf::responder_preface));
    peer.read_all();

    const auto now = std::chrono::steady_clock::now();
    c->send(bytes("in time"), meta_of(1, 0, now + 200ms));
    c->send(bytes("hopeless"), meta_of(2, 0, now + 15ms)); // 15 ms < half of 40 ms
    c->send(bytes("no lifetime"), meta_of(3, 0));
    std::vector<pf::decoded> frames;
    std::string error;
    BOOST_REQUIRE(run_until(io, [&] {
        if (peer.got.size() < pf::preface_size) return false;
        frames = decode_from_client(peer.got, error);
        return !error.empty() || frames.size() >= 2;
    }));
    const auto decoded_at = pf::clock::now();
    BOOST_REQUIRE_MESSAGE(error.empty(), error);
    BOOST_REQUIRE_EQUAL(frames.size(), 2u);
    BOOST_TEST(text(frames[0].data) == "in time");
    BOOST_REQUIRE(frames[0].deadline.has_value());
    // 200 ms minus 40 ms of transit, minus what passed before it was framed.
    BOOST_TEST((*frames[0].deadline <= decoded_at + 160ms));
    BOOST_TEST((*frames[0].deadline > decoded_at + 100ms));
    BOOST_TEST(text(frames[1].data) == "no lifetime");
    BOOST_TEST(!frames[1].deadline.has_value());
    BOOST_TEST((client->expired == std::vector<std::uint64_t>{2}));
}
