// What the DTLS tests share on top of the TLS tests' helpers (test PKI, child process, s_server):
// the dtls layer picked by name from the tls plugin, [dtls, udp] clients and listeners, and a
// loopback UDP relay that can drop the server's datagrams and inject datagrams as the client.
#pragma once

#include <utility>

#include "dtls_flow.hpp"
#include "test_tls_support.hpp"

#include <boost/asio/ip/udp.hpp>

#include <array>
#include <optional>

const post::sdk::plugin_descriptor* post_plugin_udp() noexcept;

namespace post::test {

inline const sdk::layer_descriptor& dtls_descriptor() {
    const auto* d = post_plugin_tls();
    BOOST_REQUIRE(d != nullptr);
    for (std::size_t i = 0; i < d->layer_count; ++i)
        if (std::string_view(d->layers[i].name) == "dtls") return d->layers[i];
    BOOST_FAIL("the tls plugin has no dtls layer");
    return d->layers[0];
}

inline std::unique_ptr<sdk::layer> make_dtls(asio::io_context& io, sdk::options opts,
                                             sdk::log_sink* log = nullptr) {
    sdk::layer_context ctx{io.get_executor(), std::move(opts), log};
    sdk::flow_error err;
    auto l = dtls_descriptor().create(ctx, err);
    BOOST_REQUIRE_MESSAGE(l, "create failed: " << err.reason);
    return l;
}

/// dtls layer creation that is expected to fail; returns the reason.
inline std::string dtls_create_error(asio::io_context& io, sdk::options opts) {
    sdk::layer_context ctx{io.get_executor(), std::move(opts), nullptr};
    sdk::flow_error err;
    auto l = dtls_descriptor().create(ctx, err);
    BOOST_TEST(!l);
    return err.reason;
}

template <class T> sdk::options with(sdk::options o, const std::string& key, T value) {
    o.set(key, sdk::option_value(std::move(value)));
    return o;
}

/// A client [dtls, udp] flow to 127.0.0.1:port, started.
inline std::shared_ptr<sdk::flow> open_dtls_client(sdk::layer& udp, sdk::layer& dtls,
                                                   std::uint16_t port,
                                                   const std::shared_ptr<flow_recorder>& events,
                                                   std::string host = "localhost") {
    sdk::open_params p;
    p.side = sdk::role::client;
    p.remote = ep("127.0.0.1", port);
    p.host_name = std::move(host);
    sdk::flow_error err;
    auto lower = udp.open(nullptr, p, err);
    BOOST_REQUIRE_MESSAGE(lower, err.reason);
    auto f = dtls.open(lower, p, err);
    BOOST_REQUIRE_MESSAGE(f, err.reason);
    f->set_events(events);
    f->start();
    return f;
}

/// A udp listener on 127.0.0.1 whose accepted flows are wrapped by `dtls` as servers.
inline std::shared_ptr<sdk::acceptor>
listen_dtls(sdk::layer& udp, sdk::layer& dtls, const std::shared_ptr<acceptor_recorder>& server) {
    server->wrap = [&dtls](std::shared_ptr<sdk::flow> lower) {
        sdk::open_params p;
        p.side = sdk::role::server;
        p.remote = lower->info().remote;
        sdk::flow_error err;
        auto f = dtls.open(std::move(lower), p, err);
        BOOST_REQUIRE_MESSAGE(f, err.reason);
        return f;
    };
    sdk::flow_error err;
    auto a = udp.listen(ep("127.0.0.1"), err);
    BOOST_REQUIRE_MESSAGE(a, err.reason);
    a->set_events(server);
    a->start();
    return a;
}

inline const plugins::tls::dtls_summary& dtls_summary_of(const std::shared_ptr<sdk::flow>& f) {
    auto d = std::dynamic_pointer_cast<plugins::tls::dtls_flow>(f);
    BOOST_REQUIRE(d);
    return d->summary();
}

/// A loopback UDP relay for one client: the client sends to port(), the relay forwards to the
/// server from its own socket and sends the server's answers back. It can drop the server's
/// next datagrams, keeps copies of the client's, and injects datagrams as if from the client.
struct udp_relay {
    using udp = asio::ip::udp;
    udp::socket front; ///< Faces the client.
    udp::socket back;  ///< Connected to the server.
    std::optional<udp::endpoint> client;
    int drop_from_server = 0; ///< Drop this many of the server's next datagrams.
    int dropped = 0;
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
        back.async_receive(
            asio::buffer(bbuf), [this](const boost::system::error_code& ec, std::size_t n) {
                if (ec == asio::error::operation_aborted) return;
                if (!ec && client) {
                    if (drop_from_server > 0) {
                        --drop_from_server;
                        ++dropped;
                    } else {
                        boost::system::error_code ignored;
                        front.send_to(asio::buffer(bbuf.data(), n), *client, 0, ignored);
                    }
                }
                pump_back();
            });
    }
};

} // namespace post::test
