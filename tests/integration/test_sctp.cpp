// The sctp layer (usrsctp, no threads) over real loopback UDP, both ends in this process: echo of
// small and 1 MiB messages with their boundaries, many messages in order, graceful close from
// either side, a peer's ABORT, size limits, lifetimes, and garbage and truncated datagrams to
// the listening port (from a stranger and from the peer's own address) that must change nothing.
// Stage 2, streams of one association: fork and echo on several streams, peer streams through
// on_incoming_flow, stream close by reset both ways and id reuse, exhaustion, the last stream's
// SHUTDOWN, niceness as priority, unordered, lifetimes ending in flight, and a peer restart.
#define BOOST_TEST_MODULE sctp layer
#include <utility>

#include "layer_test_support.hpp"
#include "sctp_stack.hpp"
#include "sctp_stream.hpp"

#include <boost/asio/ip/udp.hpp>
#include <boost/test/unit_test.hpp>

#include <usrsctp.h>

#include <array>
#include <dirent.h>
#include <filesystem>

const post::sdk::plugin_descriptor* post_plugin_udp() noexcept;
const post::sdk::plugin_descriptor* post_plugin_sctp() noexcept;

using namespace post;
using namespace post::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

template <class T> sdk::options with(sdk::options o, const std::string& key, T value) {
    o.set(key, sdk::option_value(std::move(value)));
    return o;
}

std::string create_error(asio::io_context& io, sdk::options opts) {
    sdk::layer_context ctx{io.get_executor(), std::move(opts), nullptr};
    sdk::flow_error err;
    auto l = post_plugin_sctp()->layers[0].create(ctx, err);
    BOOST_TEST(!l);
    return err.reason;
}

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

/// A udp listener whose flows are wrapped by a server sctp layer, and a client layer.
struct sctp_pair {
    asio::io_context io;
    log_capture server_log, client_log;
    std::unique_ptr<sdk::layer> udp = make_layer(post_plugin_udp(), io);
    std::unique_ptr<sdk::layer> server_sctp;
    std::unique_ptr<sdk::layer> client_sctp;
    std::shared_ptr<acceptor_recorder> server = std::make_shared<acceptor_recorder>();
    std::shared_ptr<sdk::acceptor> acc;

    explicit sctp_pair(sdk::options server_opts = {}, sdk::options client_opts = {})
        : server_sctp(make_layer(post_plugin_sctp(), io, std::move(server_opts), &server_log))
        , client_sctp(make_layer(post_plugin_sctp(), io, std::move(client_opts), &client_log)) {
        server->io = &io;
        server->wrap = [this](std::shared_ptr<sdk::flow> lower) {
            sdk::open_params p;
            p.side = sdk::role::server;
            p.remote = lower->info().remote;
            sdk::flow_error err;
            auto f = server_sctp->open(std::move(lower), p, err);
            BOOST_REQUIRE_MESSAGE(f, err.reason);
            return f;
        };
        sdk::flow_error err;
        acc = udp->listen(ep("127.0.0.1"), err);
        BOOST_REQUIRE_MESSAGE(acc, err.reason);
        acc->set_events(server);
        acc->start();
    }
    std::uint16_t port() const { return acc->local_endpoint().port; }
    bool wait(std::function<bool()> f, std::chrono::milliseconds limit = 10s) {
        return run_until(io, std::move(f), limit);
    }
    /// Every message the server receives goes back on the same flow.
    void echo() {
        server->on_message = [this](flow_recorder& r, const sdk::byte_buffer& m) {
            for (auto& a : server->accepted)
                if (a.events.get() == &r) a.flow->send(m, meta(r.messages.size()));
        };
    }
    std::shared_ptr<sdk::flow> connect(const std::shared_ptr<flow_recorder>& events,
                                       std::uint16_t to = 0) {
        sdk::open_params p;
        p.side = sdk::role::client;
        p.remote = ep("127.0.0.1", to ? to : port());
        sdk::flow_error err;
        auto lower = udp->open(nullptr, p, err);
        BOOST_REQUIRE_MESSAGE(lower, err.reason);
        auto f = client_sctp->open(lower, p, err);
        BOOST_REQUIRE_MESSAGE(f, err.reason);
        f->set_events(events);
        f->start();
        return f;
    }
    std::shared_ptr<sdk::flow> connect_ready(const std::shared_ptr<flow_recorder>& events,
                                             std::uint16_t to = 0) {
        auto c = connect(events, to);
        BOOST_REQUIRE(wait([&] { return events->ready || events->closed; }));
        BOOST_REQUIRE_MESSAGE(events->ready, "association failed: " << events->closed->reason);
        BOOST_REQUIRE(wait([&] { return !server->accepted.empty() && first().events->ready; }));
        return c;
    }
    acceptor_recorder::accepted_flow& first() { return server->accepted.front(); }
};

/// A loopback UDP relay for one client: the client talks to port(), the relay forwards to the
/// server from its own socket, so what it injects comes from the client's address as the
/// server sees it. Keeps copies of the client's datagrams. With `forward` false it drops
/// everything both ways (a path that went dead); a new client behind it is, to the server, the
/// same address and port as the old one.
struct udp_relay {
    using udp = asio::ip::udp;
    udp::socket front, back;
    bool forward = true;
    std::optional<udp::endpoint> client;
    std::vector<sdk::byte_buffer> from_client;
    std::array<std::byte, 65536> fbuf{}, bbuf{};
    udp::endpoint sender;

    udp_relay(asio::io_context& io, std::uint16_t server_port)
        : front(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , back(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        back.connect({asio::ip::make_address("127.0.0.1"), server_port});
        pump_front();
        pump_back();
    }
    std::uint16_t port() const { return front.local_endpoint().port(); }
    void inject(const sdk::byte_buffer& d) { back.send(asio::buffer(d)); }
    void pump_front() {
        front.async_receive_from(asio::buffer(fbuf), sender,
                                 [this](const boost::system::error_code& ec, std::size_t n) {
                                     if (ec) return;
                                     client = sender;
                                     from_client.emplace_back(fbuf.begin(), fbuf.begin() + n);
                                     boost::system::error_code ignored;
                                     if (forward)
                                         back.send(asio::buffer(fbuf.data(), n), 0, ignored);
                                     pump_front();
                                 });
    }
    void pump_back() {
        back.async_receive(asio::buffer(bbuf),
                           [this](const boost::system::error_code& ec, std::size_t n) {
                               if (ec == asio::error::operation_aborted) return;
                               if (!ec && client && forward) {
                                   boost::system::error_code ignored;
                                   front.send_to(asio::buffer(bbuf.data(), n), *client, 0, ignored);
                               }
                               pump_back();
                           });
    }
};

const plugins::sctp::sctp_summary& summary_of(const std::shared_ptr<sdk::flow>& f) {
    auto s = std::dynamic_pointer_cast<plugins::sctp::sctp_stream>(f);
    BOOST_REQUIRE(s);
    return s->summary();
}

std::uint16_t stream_id_of(const std::shared_ptr<sdk::flow>& f) {
    auto s = std::dynamic_pointer_cast<plugins::sctp::sctp_stream>(f);
    BOOST_REQUIRE(s);
    return s->stream_id();
}

/// Records one stream flow's events, and the flows the peer opens (on_incoming_flow): kept in
/// `incoming`, or given to `take` when set.
struct stream_recorder : flow_recorder {
    std::vector<std::shared_ptr<sdk::flow>> incoming;
    std::function<void(std::shared_ptr<sdk::flow>)> take;
    std::vector<std::uint64_t> expired;
    void on_expired(std::uint64_t id) noexcept override {
        note("expired");
        expired.push_back(id);
    }
    void on_incoming_flow(std::shared_ptr<sdk::flow> f) noexcept override {
        note("incoming");
        if (take) return take(std::move(f));
        incoming.push_back(std::move(f));
    }
};

/// A stream flow and its recorder.
struct stream_end {
    std::shared_ptr<sdk::flow> flow;
    std::shared_ptr<stream_recorder> events;
};

/// Sets a recorder on `f` and starts it; on_ready must not come inside start().
stream_end adopt(std::shared_ptr<sdk::flow> f) {
    BOOST_TEST(f != nullptr);
    if (!f) return {};
    auto r = std::make_shared<stream_recorder>();
    f->set_events(r);
    f->start();
    BOOST_TEST(!r->ready); // posted, never inside start()
    return {std::move(f), r};
}

/// Client and server sctp layers over loopback UDP whose flows record incoming streams: the
/// server's accepted flows (stream 0 of each association) are in `accepted`.
struct ms_pair {
    asio::io_context io;
    log_capture server_log, client_log;
    std::unique_ptr<sdk::layer> udp = make_layer(post_plugin_udp(), io);
    std::unique_ptr<sdk::layer> server_sctp;
    std::unique_ptr<sdk::layer> client_sctp;
    std::vector<stream_end> accepted;

    struct acceptor_events : sdk::acceptor_events {
        ms_pair* t = nullptr;
        void on_accepted(std::shared_ptr<sdk::flow> lower) noexcept override {
            sdk::open_params p;
            p.side = sdk::role::server;
            p.remote = lower->info().remote;
            sdk::flow_error err;
            auto f = t->server_sctp->open(std::move(lower), p, err);
            if (!f) return;
            auto r = std::make_shared<stream_recorder>();
            f->set_events(r);
            t->accepted.push_back({f, r});
            f->start();
        }
        void on_closed(const sdk::flow_error&) noexcept override {}
    };
    std::shared_ptr<acceptor_events> server = std::make_shared<acceptor_events>();
    std::shared_ptr<sdk::acceptor> acc;

    explicit ms_pair(sdk::options server_opts = {}, sdk::options client_opts = {})
        : server_sctp(make_layer(post_plugin_sctp(), io, std::move(server_opts), &server_log))
        , client_sctp(make_layer(post_plugin_sctp(), io, std::move(client_opts), &client_log)) {
        server->t = this;
        sdk::flow_error err;
        acc = udp->listen(ep("127.0.0.1"), err);
        BOOST_REQUIRE_MESSAGE(acc, err.reason);
        acc->set_events(server);
        acc->start();
    }
    std::uint16_t port() const { return acc->local_endpoint().port; }
    bool wait(std::function<bool()> f, std::chrono::milliseconds limit = 10s) {
        return run_until(io, std::move(f), limit);
    }
    /// Stream 0 of a new association, up on both sides.
    stream_end connect(std::uint16_t to = 0) {
        sdk::open_params p;
        p.side = sdk::role::client;
        p.remote = ep("127.0.0.1", to ? to : port());
        sdk::flow_error err;
        auto lower = udp->open(nullptr, p, err);
        BOOST_REQUIRE_MESSAGE(lower, err.reason);
        auto f = client_sctp->open(lower, p, err);
        BOOST_REQUIRE_MESSAGE(f, err.reason);
        const auto before = accepted.size();
        auto c = adopt(f);
        BOOST_REQUIRE(wait([&] { return c.events->ready || c.events->closed; }));
        BOOST_REQUIRE_MESSAGE(c.events->ready, "association failed: " << c.events->closed->reason);
        BOOST_REQUIRE(
            wait([&] { return accepted.size() > before && accepted.back().events->ready; }));
        return c;
    }
};

/// Every message a stream flow receives goes back on the same flow.
void echo_on(const stream_end& e) {
    std::weak_ptr<sdk::flow> weak = e.flow;
    e.events->on_message = [weak](flow_recorder& r, const sdk::byte_buffer& m) {
        if (auto f = weak.lock()) f->send(m, meta(r.messages.size()));
    };
}

} // namespace

BOOST_AUTO_TEST_CASE(descriptor_message_over_datagram_with_sctp_features) {
    const auto* p = post_plugin_sctp();
    BOOST_REQUIRE(p);
    BOOST_TEST(std::string(p->name) == "sctp");
    BOOST_REQUIRE(p->layer_count == 1u);
    const auto& d = p->layers[0];
    BOOST_TEST(std::string(d.name) == "sctp");
    BOOST_TEST((d.upper == sdk::edge::message && d.lower == sdk::edge::datagram));
    std::vector<std::string> features;
    for (std::size_t i = 0; i < d.feature_count; ++i) {
        BOOST_TEST((d.features[i].effect == sdk::feature_effect::provides));
        features.emplace_back(d.features[i].name);
    }
    for (const char* want :
         {"reliability", "preserve-msg-boundaries", "preserve-order", "congestion-control",
          "per-msg-reliability", "full-checksum-send", "full-checksum-recv"})
        BOOST_TEST((std::find(features.begin(), features.end(), want) != features.end()), want);
    // Stage 2: one association carries many stream flows.
    BOOST_TEST((std::find(features.begin(), features.end(), "multistreaming") != features.end()));
    std::vector<std::string> options;
    for (std::size_t i = 0; i < d.option_count; ++i)
        options.emplace_back(d.options[i].name);
    for (const char* want : {"port", "max-message-size", "streams", "handshake-timeout"})
        BOOST_TEST((std::find(options.begin(), options.end(), want) != options.end()), want);
}

BOOST_AUTO_TEST_CASE(configuration_errors_name_the_option) {
    asio::io_context io;
    BOOST_TEST(create_error(io, with({}, "port", std::int64_t{0})).find("port must be") !=
               std::string::npos);
    BOOST_TEST(create_error(io, with({}, "port", std::int64_t{70000})).find("port") !=
               std::string::npos);
    BOOST_TEST(
        create_error(io, with({}, "max-message-size", std::int64_t{0})).find("max-message-size") !=
        std::string::npos);
    BOOST_TEST(create_error(io, with({}, "streams", std::int64_t{0})).find("streams") !=
               std::string::npos);
    BOOST_TEST(create_error(io, with({}, "handshake-timeout", std::chrono::milliseconds(0)))
                   .find("handshake-timeout") != std::string::npos);
    // A lower flow of the wrong kind is refused by name.
    auto sctp = make_layer(post_plugin_sctp(), io);
    sdk::open_params p;
    sdk::flow_error err;
    BOOST_TEST(!sctp->open(nullptr, p, err));
    BOOST_TEST(err.reason.find("datagram flow below") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(echo_keeps_boundaries_small_and_one_mebibyte_without_threads) {
    sctp_pair t;
    t.echo();
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    const auto i = c->info();
    BOOST_TEST((i.kind == sdk::edge::message));
    BOOST_TEST(i.max_message_size == 16u * 1024 * 1024);
    BOOST_TEST((i.capabilities & sdk::cap_ordered) != 0u);
    BOOST_TEST((i.capabilities & sdk::cap_expires_in_flight) != 0u);
    BOOST_TEST(i.remote.port == t.port());
    BOOST_TEST(summary_of(c).outbound_streams == 16u);
    BOOST_TEST(summary_of(c).peer_supports_pr);

    const std::vector<std::size_t> sizes{1, 100, 1200, 5000, 65536, 300000, 1024 * 1024, 7};
    for (std::size_t k = 0; k < sizes.size(); ++k)
        c->send(pattern(sizes[k], static_cast<unsigned>(k)), meta(k + 1));
    BOOST_REQUIRE(
        t.wait([&] { return client->messages.size() == sizes.size() || client->closed; }, 20s));
    for (std::size_t k = 0; k < sizes.size(); ++k)
        BOOST_TEST((client->messages[k] == pattern(sizes[k], static_cast<unsigned>(k))),
                   "message " << k << " of " << sizes[k] << " bytes");
    BOOST_TEST(client->sent.size() == sizes.size());
    BOOST_TEST(c->queued_bytes() == 0u);
    // usrsctp_init_nothreads: with the association up and data moved, this process still has
    // its one thread (usrsctp_init would have started six).
    BOOST_TEST(thread_count() == 1u);
}

BOOST_AUTO_TEST_CASE(many_messages_arrive_in_order) {
    sctp_pair t;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    constexpr std::size_t count = 2000;
    for (std::size_t k = 0; k < count; ++k)
        c->send(bytes("m" + std::to_string(k)), meta(k + 1));
    auto& s = t.first();
    BOOST_REQUIRE(t.wait([&] { return s.events->messages.size() == count || s.events->closed; }));
    for (std::size_t k = 0; k < count; ++k)
        if (text(s.events->messages[k]) != "m" + std::to_string(k))
            BOOST_FAIL("message " << k << " out of order: " << text(s.events->messages[k]));
    BOOST_REQUIRE(t.wait([&] { return client->sent.size() == count; }));
    for (std::size_t k = 0; k < count; ++k)
        BOOST_TEST_REQUIRE(client->sent[k] == k + 1);
}

BOOST_AUTO_TEST_CASE(client_close_is_a_graceful_shutdown_on_both_sides) {
    sctp_pair t;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    c->send(bytes("last words"), meta(1));
    c->close();
    c->send(bytes("too late"), meta(2));
    auto& s = t.first();
    BOOST_REQUIRE(t.wait([&] { return client->closed && s.events->closed; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.events->closed, s.events->closed->reason);
    BOOST_REQUIRE(s.events->messages.size() == 1u);
    BOOST_TEST(text(s.events->messages[0]) == "last words");
    BOOST_TEST(client->sent == std::vector<std::uint64_t>{1});
    BOOST_REQUIRE(client->send_errors.size() == 1u);
    BOOST_TEST(client->send_errors[0].first == 2u);
    BOOST_TEST(client->events_after_close == 0);
    BOOST_TEST(t.client_log.contains("SHUTDOWN sent"));
    BOOST_TEST(t.server_log.contains("shut the association down"));
}

BOOST_AUTO_TEST_CASE(server_close_is_a_graceful_shutdown_on_both_sides) {
    sctp_pair t;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    auto& s = t.first();
    s.flow->send(bytes("bye"), meta(1));
    s.flow->close();
    BOOST_REQUIRE(t.wait([&] { return client->closed && s.events->closed; }));
    BOOST_TEST(!*client->closed, client->closed->reason);
    BOOST_TEST(!*s.events->closed, s.events->closed->reason);
    BOOST_REQUIRE(client->messages.size() == 1u);
    BOOST_TEST(text(client->messages[0]) == "bye");
}

BOOST_AUTO_TEST_CASE(peer_abort_closes_with_an_error_naming_it) {
    sctp_pair t;
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    auto& s = t.first();
    c->abort();
    BOOST_REQUIRE(t.wait([&] { return s.events->closed.has_value(); }));
    BOOST_TEST(static_cast<bool>(*s.events->closed));
    BOOST_TEST(s.events->closed->reason.find("ABORT") != std::string::npos,
               s.events->closed->reason);
    BOOST_TEST((s.events->closed->code == std::make_error_code(std::errc::connection_reset)));
    BOOST_TEST(!client->closed); // abort: no further events
}

BOOST_AUTO_TEST_CASE(size_limits_both_ways) {
    sctp_pair t(with({}, "max-message-size", std::int64_t{1000}),
                with({}, "max-message-size", std::int64_t{4000}));
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);
    c->send(pattern(5000, 1), meta(1)); // over the client's own limit: refused here
    BOOST_REQUIRE(t.wait([&] { return !client->send_errors.empty(); }));
    BOOST_TEST(
        (client->send_errors[0].second.code == std::make_error_code(std::errc::message_size)));
    c->send(sdk::byte_buffer{}, meta(2));
    BOOST_REQUIRE(t.wait([&] { return client->send_errors.size() == 2u; }));
    BOOST_TEST(client->send_errors[1].second.reason.find("empty") != std::string::npos);
    c->send(pattern(1000, 3), meta(3)); // at the server's limit: fine
    auto& s = t.first();
    BOOST_REQUIRE(t.wait([&] { return s.events->messages.size() == 1u; }));
    c->send(pattern(3000, 4), meta(4)); // over the server's limit: it aborts the association
    BOOST_REQUIRE(t.wait([&] { return s.events->closed && client->closed; }));
    BOOST_TEST(s.events->closed->reason.find("max-message-size") != std::string::npos,
               s.events->closed->reason);
    BOOST_TEST(client->closed->reason.find("ABORT") != std::string::npos, client->closed->reason);
}

BOOST_AUTO_TEST_CASE(past_deadline_expires_and_a_lifetime_rides_as_pr_sctp) {
    sctp_pair t;
    auto client = std::make_shared<flow_recorder>();
    std::vector<std::uint64_t> expired;
    struct recorder : flow_recorder {
        std::vector<std::uint64_t>* expired = nullptr;
        void on_expired(std::uint64_t id) noexcept override { expired->push_back(id); }
    };
    auto r = std::make_shared<recorder>();
    r->expired = &expired;
    auto c = t.connect_ready(r);
    auto late = meta(1);
    late.deadline = std::chrono::steady_clock::now() - 1ms;
    c->send(bytes("stale"), late);
    auto timed = meta(2);
    timed.deadline = std::chrono::steady_clock::now() + 5s;
    c->send(bytes("fresh"), timed);
    auto& s = t.first();
    // A message with a lifetime is on_sent once the peer has acknowledged it.
    BOOST_REQUIRE(t.wait(
        [&] { return s.events->messages.size() == 1u && !expired.empty() && !r->sent.empty(); }));
    BOOST_TEST(text(s.events->messages[0]) == "fresh");
    BOOST_TEST(expired == std::vector<std::uint64_t>{1});
    BOOST_TEST(r->sent == std::vector<std::uint64_t>{2});
    BOOST_TEST(c->queued_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(garbage_from_a_stranger_changes_nothing_and_its_flow_times_out) {
    sctp_pair t(with({}, "handshake-timeout", std::chrono::milliseconds(300)));
    t.echo();
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client);

    asio::ip::udp::socket raw(t.io, {asio::ip::make_address("127.0.0.1"), 0});
    const asio::ip::udp::endpoint to(asio::ip::make_address("127.0.0.1"), t.port());
    sdk::byte_buffer common_header(12, std::byte{0});
    common_header[1] = std::byte{0x13}; // ports 5000 -> 5000
    common_header[0] = std::byte{0x88};
    common_header[3] = std::byte{0x13};
    common_header[2] = std::byte{0x88};
    for (const auto& d : {bytes("GET / HTTP/1.1\r\n\r\n"), sdk::byte_buffer(1, std::byte{1}),
                          common_header, pattern(1400, 9), sdk::byte_buffer{}})
        raw.send_to(asio::buffer(d), to);
    BOOST_REQUIRE(t.wait([&] { return t.server->accepted.size() == 2u; }));
    auto& stranger = t.server->accepted[1];
    BOOST_REQUIRE(t.wait([&] { return stranger.events->closed.has_value(); }));
    BOOST_TEST((stranger.events->closed->code == std::make_error_code(std::errc::timed_out)));
    BOOST_TEST(!stranger.events->ready);

    // The established association and the listener carry on.
    c->send(bytes("still here"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return client->messages.size() == 1u || client->closed; }));
    BOOST_TEST(text(client->messages[0]) == "still here");
    auto second = std::make_shared<flow_recorder>();
    auto c2 = t.connect(second);
    BOOST_REQUIRE(t.wait([&] { return second->ready || second->closed; }));
    BOOST_TEST(second->ready);
    BOOST_TEST(!t.server->closed);
}

BOOST_AUTO_TEST_CASE(damaged_and_truncated_packets_from_the_peer_address_are_dropped) {
    sctp_pair t;
    t.echo();
    auto u = make_layer(post_plugin_udp(), t.io);
    udp_relay relay(t.io, t.port());
    auto client = std::make_shared<flow_recorder>();
    auto c = t.connect_ready(client, relay.port());
    c->send(pattern(3000, 1), meta(1));
    BOOST_REQUIRE(t.wait([&] { return client->messages.size() == 1u; }));
    BOOST_REQUIRE(!relay.from_client.empty());
    sctpstat before{};
    usrsctp_get_stat(&before);
    std::size_t flips = 0;
    // Every packet the client sent so far, truncated at several points and with a flipped bit:
    // the CRC32c fails (or the packet is too short) and usrsctp drops each one.
    std::size_t injected = 0;
    for (const auto& p : relay.from_client) {
        for (std::size_t cut :
             {std::size_t{1}, std::size_t{11}, std::size_t{12}, p.size() / 2, p.size() - 1}) {
            if (cut >= p.size()) continue;
            relay.inject(sdk::byte_buffer(p.begin(), p.begin() + static_cast<long>(cut)));
            ++injected;
        }
        auto flipped = p;
        flipped[flipped.size() - 1] ^= std::byte{0x40};
        relay.inject(flipped);
        ++injected;
        ++flips;
    }
    BOOST_TEST(injected > 10u);
    // Each packet with a flipped bit fails the CRC32c check (usrsctp counts it, then drops it).
    BOOST_REQUIRE(t.wait([&] {
        sctpstat now{};
        usrsctp_get_stat(&now);
        return now.sctps_badsum >= before.sctps_badsum + flips;
    }));
    c->send(pattern(2000, 2), meta(2));
    BOOST_REQUIRE(t.wait([&] { return client->messages.size() == 2u || client->closed; }));
    BOOST_TEST((client->messages[1] == pattern(2000, 2)));
    BOOST_TEST(!client->closed);
    BOOST_TEST(!t.first().events->closed);
    BOOST_TEST(t.first().events->messages.size() == 2u);
}

BOOST_AUTO_TEST_CASE(nothing_listening_ends_the_attempt_after_the_handshake_timeout) {
    asio::io_context io;
    auto udp = make_layer(post_plugin_udp(), io);
    auto sctp = make_layer(post_plugin_sctp(), io,
                           with({}, "handshake-timeout", std::chrono::milliseconds(300)));
    asio::ip::udp::socket silent(io, {asio::ip::make_address("127.0.0.1"), 0});
    sdk::open_params p;
    p.remote = ep("127.0.0.1", silent.local_endpoint().port());
    sdk::flow_error err;
    auto f = sctp->open(udp->open(nullptr, p, err), p, err);
    BOOST_REQUIRE(f);
    auto events = std::make_shared<flow_recorder>();
    f->set_events(events);
    f->start();
    BOOST_REQUIRE(run_until(io, [&] { return events->closed.has_value(); }));
    BOOST_TEST((events->closed->code == std::make_error_code(std::errc::timed_out)));
    BOOST_TEST(events->closed->reason.find("no answer to INIT") != std::string::npos,
               events->closed->reason);
}

// ---- stage 2: streams ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(forked_streams_echo_concurrently_on_one_association) {
    ms_pair t;
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    echo_on(s0);
    std::vector<stream_end> server_streams;
    s0.events->take = [&](std::shared_ptr<sdk::flow> f) {
        auto e = adopt(std::move(f));
        echo_on(e);
        server_streams.push_back(e);
    };
    // Fork on stream 0 and on a forked stream: the client's ids are even.
    auto c2 = adopt(c0.flow->fork());
    auto c4 = adopt(c2.flow->fork());
    BOOST_TEST(stream_id_of(c0.flow) == 0u);
    BOOST_TEST(stream_id_of(c2.flow) == 2u);
    BOOST_TEST(stream_id_of(c4.flow) == 4u);
    BOOST_REQUIRE(t.wait([&] { return c2.events->ready && c4.events->ready; }));

    std::vector<stream_end*> cs{&c0, &c2, &c4};
    const std::vector<std::size_t> sizes{1, 700, 3000, 70000, 5, 200000, 42};
    for (std::size_t k = 0; k < sizes.size(); ++k)
        for (std::size_t i = 0; i < cs.size(); ++i)
            cs[i]->flow->send(pattern(sizes[k], static_cast<unsigned>(i * 100 + k)), meta(k + 1));
    BOOST_REQUIRE(t.wait(
        [&] {
            for (auto* c : cs)
                if (c->events->messages.size() < sizes.size() && !c->events->closed) return false;
            return true;
        },
        20s));
    for (std::size_t i = 0; i < cs.size(); ++i) {
        BOOST_TEST_REQUIRE(cs[i]->events->messages.size() == sizes.size());
        for (std::size_t k = 0; k < sizes.size(); ++k)
            BOOST_TEST((cs[i]->events->messages[k] ==
                        pattern(sizes[k], static_cast<unsigned>(i * 100 + k))),
                       "stream " << stream_id_of(cs[i]->flow) << " message " << k);
        BOOST_TEST(cs[i]->events->sent.size() == sizes.size());
        BOOST_TEST(!cs[i]->events->closed);
    }
    // One association: no second accept, two peer-initiated streams on the server.
    BOOST_TEST(t.accepted.size() == 1u);
    BOOST_REQUIRE(server_streams.size() == 2u);
    BOOST_TEST(stream_id_of(server_streams[0].flow) == 2u);
    BOOST_TEST(stream_id_of(server_streams[1].flow) == 4u);
    BOOST_TEST(summary_of(s0.flow).incoming_streams == 2u);
    BOOST_TEST(summary_of(c0.flow).incoming_streams == 0u);
}

BOOST_AUTO_TEST_CASE(peer_initiated_streams_arrive_through_on_incoming_flow) {
    ms_pair t;
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    // The server's ids are odd.
    auto s1 = adopt(s0.flow->fork());
    BOOST_TEST(stream_id_of(s1.flow) == 1u);
    BOOST_REQUIRE(t.wait([&] { return s1.events->ready; }));
    for (int k = 0; k < 3; ++k)
        s1.flow->send(bytes("early " + std::to_string(k)), meta(k + 1));
    BOOST_REQUIRE(t.wait([&] { return c0.events->incoming.size() == 1u; }));
    auto in = c0.events->incoming[0];
    BOOST_TEST(stream_id_of(in) == 1u);
    // Not started yet: what arrives waits, and comes after on_ready.
    BOOST_REQUIRE(t.wait([&] { return s1.events->sent.size() == 3u; }));
    auto r = std::make_shared<stream_recorder>();
    in->set_events(r);
    in->start();
    BOOST_TEST(!r->ready);
    BOOST_REQUIRE(t.wait([&] { return r->messages.size() == 3u || r->closed; }));
    BOOST_REQUIRE(!r->order.empty());
    BOOST_TEST(r->order.front() == "ready");
    for (int k = 0; k < 3; ++k)
        BOOST_TEST(text(r->messages[static_cast<std::size_t>(k)]) == "early " + std::to_string(k));
    // Replies go out on the same stream id.
    in->send(bytes("reply"), meta(9));
    BOOST_REQUIRE(t.wait([&] { return s1.events->messages.size() == 1u; }));
    BOOST_TEST(text(s1.events->messages[0]) == "reply");

    // Refused (aborted before start): later messages on that id are dropped and logged once;
    // the peer's stream is reset, so it closes there.
    c0.events->take = [](std::shared_ptr<sdk::flow> f) { f->abort(); };
    auto s3 = adopt(s0.flow->fork());
    BOOST_TEST(stream_id_of(s3.flow) == 3u);
    BOOST_REQUIRE(t.wait([&] { return s3.events->ready; }));
    for (int k = 0; k < 3; ++k)
        s3.flow->send(bytes("refused " + std::to_string(k)), meta(k + 1));
    BOOST_REQUIRE(t.wait([&] { return s3.events->closed.has_value(); }));
    BOOST_TEST(!*s3.events->closed, s3.events->closed->reason);
    BOOST_TEST(summary_of(c0.flow).messages_dropped == 2u);
    std::size_t drop_lines = 0;
    for (const auto& l : t.client_log.lines)
        if (l.find("on stream 3 are dropped") != std::string::npos) ++drop_lines;
    BOOST_TEST(drop_lines == 1u);
    // Closed instead of started: on_closed (clean) without on_ready; the peer's stream closes.
    auto declined = std::make_shared<stream_recorder>();
    std::shared_ptr<sdk::flow> kept;
    c0.events->take = [&](std::shared_ptr<sdk::flow> f) {
        kept = f;
        f->set_events(declined);
        f->close();
    };
    auto s5 = adopt(s0.flow->fork());
    BOOST_TEST(stream_id_of(s5.flow) == 3u); // the refused stream's id, free again
    BOOST_REQUIRE(t.wait([&] { return s5.events->ready; }));
    s5.flow->send(bytes("declined"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return declined->closed && s5.events->closed; }));
    BOOST_TEST(!*declined->closed, declined->closed->reason);
    BOOST_TEST(!declined->ready);
    BOOST_TEST(declined->messages.empty());
    BOOST_TEST(!*s5.events->closed, s5.events->closed->reason);
    // Everything else carries on.
    c0.flow->send(bytes("still here"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return s0.events->messages.size() == 1u; }));
    BOOST_TEST(!c0.events->closed);
    BOOST_TEST(!s1.events->closed);
    BOOST_TEST(!r->closed);
}

BOOST_AUTO_TEST_CASE(closing_a_stream_resets_it_both_ways_and_frees_its_id) {
    ms_pair t(with({}, "streams", std::int64_t{4}), with({}, "streams", std::int64_t{4}));
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    std::vector<stream_end> ss;
    s0.events->take = [&](std::shared_ptr<sdk::flow> f) { ss.push_back(adopt(std::move(f))); };
    BOOST_TEST(summary_of(c0.flow).outbound_streams == 4u);
    auto c2 = adopt(c0.flow->fork());
    BOOST_TEST(stream_id_of(c2.flow) == 2u);
    // Ids 0 and 2 are the client's only even ids below 4.
    BOOST_TEST(!c0.flow->fork());
    c2.flow->send(bytes("on two"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return ss.size() == 1u && ss[0].events->messages.size() == 1u; }));
    c2.flow->close();
    BOOST_REQUIRE(t.wait([&] { return c2.events->closed && ss[0].events->closed; }));
    BOOST_TEST(!*c2.events->closed, c2.events->closed->reason);
    BOOST_TEST(!*ss[0].events->closed, ss[0].events->closed->reason);
    BOOST_TEST(c2.events->sent == std::vector<std::uint64_t>{1});
    BOOST_TEST(summary_of(s0.flow).streams_reset_in == 1u); // the client's reset
    BOOST_TEST(summary_of(c0.flow).streams_reset_in == 1u); // the server's answer
    BOOST_TEST(!t.client_log.contains("SHUTDOWN sent"));
    // Id 2 is free again: reused, and the server sees a new stream on it.
    auto again = adopt(c0.flow->fork());
    BOOST_TEST(stream_id_of(again.flow) == 2u);
    BOOST_REQUIRE(t.wait([&] { return again.events->ready; }));
    again.flow->send(bytes("two again"), meta(2));
    BOOST_REQUIRE(t.wait([&] { return ss.size() == 2u && ss[1].events->messages.size() == 1u; }));
    BOOST_TEST(stream_id_of(ss[1].flow) == 2u);
    BOOST_TEST(text(ss[1].events->messages[0]) == "two again");
    // Stream 0 is untouched, both ways.
    c0.flow->send(bytes("zero"), meta(3));
    s0.flow->send(bytes("zero back"), meta(3));
    BOOST_REQUIRE(t.wait(
        [&] { return s0.events->messages.size() == 1u && c0.events->messages.size() == 1u; }));
    BOOST_TEST(!c0.events->closed);
    BOOST_TEST(!s0.events->closed);
    // The server's odd ids below 4: 1 and 3, then none.
    auto s1 = s0.flow->fork();
    auto s3 = s0.flow->fork();
    BOOST_REQUIRE(s1);
    BOOST_REQUIRE(s3);
    BOOST_TEST(stream_id_of(s1) == 1u);
    BOOST_TEST(stream_id_of(s3) == 3u);
    BOOST_TEST(!s0.flow->fork());
}

BOOST_AUTO_TEST_CASE(two_streams_leave_the_client_no_fork) {
    ms_pair t(with({}, "streams", std::int64_t{2}), with({}, "streams", std::int64_t{2}));
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    BOOST_TEST(summary_of(c0.flow).outbound_streams == 2u);
    // Ids 0 and 1: the client's only even id is 0, in use; the kernel opens a new association.
    BOOST_TEST(!c0.flow->fork());
    BOOST_TEST(t.client_log.contains("no free even stream id below 2"));
    auto s1 = s0.flow->fork();
    BOOST_REQUIRE(s1);
    BOOST_TEST(stream_id_of(s1) == 1u);
    BOOST_TEST(!s0.flow->fork());
}

BOOST_AUTO_TEST_CASE(abort_and_close_of_one_stream_keep_the_association_the_last_shuts_it_down) {
    ms_pair t;
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    std::map<std::uint16_t, stream_end> ss;
    s0.events->take = [&](std::shared_ptr<sdk::flow> f) {
        auto e = adopt(std::move(f));
        if (e.flow) ss[stream_id_of(e.flow)] = e;
    };
    auto c2 = adopt(c0.flow->fork());
    auto c4 = adopt(c0.flow->fork());
    BOOST_REQUIRE(t.wait([&] { return c2.events->ready && c4.events->ready; }));
    c2.flow->send(bytes("a"), meta(1));
    c4.flow->send(bytes("b"), meta(1));
    BOOST_REQUIRE(t.wait([&] {
        return ss.size() == 2u && ss[2].events->messages.size() == 1u &&
               ss[4].events->messages.size() == 1u;
    }));
    // abort() on one of several: reset, no further events here; the peer sees it closed.
    c4.flow->abort();
    BOOST_REQUIRE(t.wait([&] { return ss[4].events->closed.has_value(); }));
    BOOST_TEST(!*ss[4].events->closed, ss[4].events->closed->reason);
    BOOST_TEST(c4.events->order.size() == 2u); // ready, sent: nothing after abort
    // close() on one of several: reset both ways, clean on both sides.
    c2.flow->close();
    BOOST_REQUIRE(t.wait([&] { return c2.events->closed && ss[2].events->closed; }));
    BOOST_TEST(!*c2.events->closed);
    BOOST_TEST(!*ss[2].events->closed);
    BOOST_TEST(!t.client_log.contains("SHUTDOWN sent"));
    BOOST_TEST(!s0.events->closed);
    // close() on the last open stream: SHUTDOWN, as a one-stream association.
    c0.flow->send(bytes("last"), meta(5));
    c0.flow->close();
    BOOST_REQUIRE(t.wait([&] { return c0.events->closed && s0.events->closed; }));
    BOOST_TEST(!*c0.events->closed, c0.events->closed->reason);
    BOOST_TEST(!*s0.events->closed, s0.events->closed->reason);
    BOOST_REQUIRE(s0.events->messages.size() == 1u);
    BOOST_TEST(text(s0.events->messages[0]) == "last");
    BOOST_TEST(t.client_log.contains("SHUTDOWN sent"));
    BOOST_TEST(t.server_log.contains("shut the association down"));
}

BOOST_AUTO_TEST_CASE(niceness_is_stream_priority) {
    ms_pair t;
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    std::vector<std::uint16_t> arrivals;
    std::vector<stream_end> ss;
    s0.events->take = [&](std::shared_ptr<sdk::flow> f) {
        auto e = adopt(std::move(f));
        if (!e.flow) return;
        const auto id = stream_id_of(e.flow);
        e.events->on_message = [&arrivals, id](flow_recorder&, const sdk::byte_buffer&) {
            arrivals.push_back(id);
        };
        ss.push_back(e);
    };
    auto a = adopt(c0.flow->fork()); // 2: bulk, niceness 9
    auto c = adopt(c0.flow->fork()); // 4: bulk, niceness 1
    auto b = adopt(c0.flow->fork()); // 6: one urgent message, niceness 0
    BOOST_REQUIRE(t.wait([&] { return a.events->ready && c.events->ready && b.events->ready; }));
    constexpr std::size_t backlog = 32, big = 64 * 1024;
    for (std::size_t k = 0; k < backlog; ++k) {
        auto m = meta(k + 1);
        m.niceness = 9;
        a.flow->send(pattern(big, static_cast<unsigned>(k)), m);
    }
    for (std::size_t k = 0; k < backlog; ++k) {
        auto m = meta(k + 1);
        m.niceness = 1;
        c.flow->send(pattern(big, static_cast<unsigned>(100 + k)), m);
    }
    auto m = meta(1);
    m.niceness = 0;
    b.flow->send(bytes("urgent"), m);
    BOOST_REQUIRE(t.wait([&] { return arrivals.size() == 2 * backlog + 1; }, 30s));
    // Served by priority, not in the order handed over (A's backlog first) nor round robin
    // (A and C interleaved): at most the message in progress goes before the urgent one, and
    // C's backlog goes before A's.
    const auto urgent = std::find(arrivals.begin(), arrivals.end(), 6) - arrivals.begin();
    BOOST_TEST(urgent <= 2, "urgent message arrived at position " << urgent);
    const auto last_c = std::find(arrivals.rbegin(), arrivals.rend(), 4).base() - arrivals.begin();
    const auto a_before_last_c = std::count(arrivals.begin(), arrivals.begin() + last_c, 2);
    BOOST_TEST(a_before_last_c <= 2, a_before_last_c << " of A's messages before C's last");
}

BOOST_AUTO_TEST_CASE(unordered_messages_carry_the_flag_to_usrsctp) {
    ms_pair t;
    auto c0 = t.connect();
    auto s0 = t.accepted.front();
    auto loose = meta(1);
    loose.properties["ordered"] = "false";
    c0.flow->send(bytes("loose"), loose);
    c0.flow->send(bytes("strict"), meta(2));
    BOOST_REQUIRE(t.wait([&] { return s0.events->messages.size() == 2u; }));
    std::vector<std::string> got{text(s0.events->messages[0]), text(s0.events->messages[1])};
    std::sort(got.begin(), got.end());
    BOOST_TEST((got == std::vector<std::string>{"loose", "strict"}));
    // The peer's usrsctp saw SCTP_UNORDERED on exactly one of them (rcv_flags).
    BOOST_TEST(summary_of(s0.flow).unordered_received == 1u);
}

BOOST_AUTO_TEST_CASE(a_lifetime_runs_out_in_flight_on_a_dead_path) {
    ms_pair t;
    udp_relay relay(t.io, t.port());
    auto c0 = t.connect(relay.port());
    auto s0 = t.accepted.front();
    BOOST_TEST((c0.flow->info().capabilities & sdk::cap_expires_in_flight) != 0u);
    // On a working path, a message with a lifetime is on_sent once the peer acknowledged it.
    auto timed = meta(1);
    timed.deadline = std::chrono::steady_clock::now() + 10s;
    c0.flow->send(bytes("acked"), timed);
    BOOST_REQUIRE(t.wait([&] { return !c0.events->sent.empty(); }));
    BOOST_TEST(s0.events->messages.size() == 1u);
    // The path goes dead: the message leaves, is never acknowledged, and PR-SCTP abandons it
    // at its first retransmission after 200 ms.
    relay.forward = false;
    auto doomed = meta(2);
    doomed.deadline = std::chrono::steady_clock::now() + 200ms;
    c0.flow->send(bytes("doomed"), doomed);
    BOOST_REQUIRE(t.wait([&] { return !c0.events->expired.empty() || c0.events->closed; }));
    BOOST_TEST(c0.events->expired == std::vector<std::uint64_t>{2});
    BOOST_TEST(c0.events->send_errors.empty());
    BOOST_TEST(summary_of(c0.flow).messages_abandoned >= 1u);
    // The path comes back: the peer skips it (FORWARD-TSN) and gets only what follows.
    relay.forward = true;
    c0.flow->send(bytes("after"), meta(3));
    BOOST_REQUIRE(t.wait([&] { return s0.events->messages.size() >= 2u || s0.events->closed; }));
    BOOST_REQUIRE(t.wait([&] { return c0.events->sent.size() >= 2u; }));
    BOOST_TEST(s0.events->messages.size() == 2u);
    BOOST_TEST(text(s0.events->messages[1]) == "after");
    BOOST_TEST((c0.events->sent == std::vector<std::uint64_t>{1, 3}));
    BOOST_TEST(c0.flow->queued_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_restart_hands_over_the_new_association_then_ends_the_old) {
    ms_pair t;
    udp_relay relay(t.io, t.port());
    auto c1 = t.connect(relay.port());
    auto s0 = t.accepted.front();
    c1.flow->send(bytes("before"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return s0.events->messages.size() == 1u; }));
    // The client vanishes: its ABORT is lost on a dead path, the server does not know.
    relay.forward = false;
    c1.flow->abort();
    c1 = {};
    t.io.poll();
    relay.forward = true;
    // A new client from the same UDP address and port (the relay) and the same SCTP port: the
    // server's usrsctp sees a new INIT for the association it has, and restarts it.
    sdk::open_params p;
    p.side = sdk::role::client;
    p.remote = ep("127.0.0.1", relay.port());
    sdk::flow_error err;
    auto lower = t.udp->open(nullptr, p, err);
    BOOST_REQUIRE_MESSAGE(lower, err.reason);
    auto c2 = adopt(t.client_sctp->open(lower, p, err));
    BOOST_REQUIRE(c2.flow);
    BOOST_REQUIRE(t.wait([&] { return c2.events->ready || c2.events->closed; }));
    BOOST_REQUIRE(c2.events->ready);
    BOOST_REQUIRE(t.wait([&] { return s0.events->incoming.size() == 1u && s0.events->closed; }));
    // The new association's stream 0 came first, then the old flow ended with the restart.
    const auto& order = s0.events->order;
    const auto incoming_at = std::find(order.begin(), order.end(), "incoming");
    const auto closed_at = std::find(order.begin(), order.end(), "closed");
    BOOST_TEST((incoming_at < closed_at));
    BOOST_TEST((s0.events->closed->code == std::make_error_code(std::errc::connection_reset)));
    BOOST_TEST(s0.events->closed->reason.find("restarted") != std::string::npos,
               s0.events->closed->reason);
    BOOST_TEST(t.server_log.contains("restarted the association"));
    auto fresh = adopt(s0.events->incoming[0]);
    BOOST_TEST(stream_id_of(fresh.flow) == 0u);
    BOOST_TEST(summary_of(fresh.flow).restarts == 1u);
    echo_on(fresh);
    c2.flow->send(bytes("after restart"), meta(1));
    BOOST_REQUIRE(t.wait([&] { return c2.events->messages.size() == 1u || c2.events->closed; }));
    BOOST_TEST(text(c2.events->messages[0]) == "after restart");
    BOOST_TEST(t.accepted.size() == 1u); // the same lower flow and association, restarted
}
