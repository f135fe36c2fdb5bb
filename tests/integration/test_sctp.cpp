// The sctp layer (usrsctp, no threads) over real loopback UDP, both ends in this process: echo of
// small and 1 MiB messages with their boundaries, many messages in order, graceful close from
// either side, a peer's ABORT, size limits, lifetimes, and garbage and truncated datagrams to
// the listening port (from a stranger and from the peer's own address) that must change nothing.
#define BOOST_TEST_MODULE sctp layer
#include <utility>

#include "layer_test_support.hpp"
#include "sctp_flow.hpp"
#include "sctp_stack.hpp"

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
/// server sees it. Keeps copies of the client's datagrams.
struct udp_relay {
    using udp = asio::ip::udp;
    udp::socket front, back;
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
                                     back.send(asio::buffer(fbuf.data(), n), 0, ignored);
                                     pump_front();
                                 });
    }
    void pump_back() {
        back.async_receive(asio::buffer(bbuf),
                           [this](const boost::system::error_code& ec, std::size_t n) {
                               if (ec == asio::error::operation_aborted) return;
                               if (!ec && client) {
                                   boost::system::error_code ignored;
                                   front.send_to(asio::buffer(bbuf.data(), n), *client, 0, ignored);
                               }
                               pump_back();
                           });
    }
};

const plugins::sctp::sctp_summary& summary_of(const std::shared_ptr<sdk::flow>& f) {
    auto s = std::dynamic_pointer_cast<plugins::sctp::sctp_flow>(f);
    BOOST_REQUIRE(s);
    return s->summary();
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
    // One carrier per association in this stage: not multistreaming yet.
    BOOST_TEST((std::find(features.begin(), features.end(), "multistreaming") == features.end()));
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
    BOOST_REQUIRE(t.wait([&] { return s.events->messages.size() == 1u && !expired.empty(); }));
    BOOST_TEST(text(s.events->messages[0]) == "fresh");
    BOOST_TEST(expired == std::vector<std::uint64_t>{1});
    BOOST_TEST(r->sent == std::vector<std::uint64_t>{2});
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
