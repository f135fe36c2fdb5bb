// The `quic` plugin: layer `quic`, QUIC v1 (ngtcp2 0.12, TLS 1.3 by GnuTLS) over a lower
// datagram flow, client and server. Streams are flows: open() gives a connection's first
// stream (unidirectional when open_params asks for send_only), fork() another, peer streams
// arrive through on_incoming_flow. The descriptor and the layer's factory.
#include "h3_layer.hpp"
#include "quic_connection.hpp"
#include "quic_settings.hpp"
#include "quic_stream.hpp"
#include "quic_tls.hpp"

#include <iterator>

namespace post::plugins::quic {
namespace {

class quic_layer final : public sdk::layer {
public:
    quic_layer(boost::asio::any_io_executor ex, std::shared_ptr<const quic_settings> s,
               std::shared_ptr<const quic_tls_context> tls)
        : executor_(std::move(ex))
        , settings_(std::move(s))
        , tls_(std::move(tls)) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!lower) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "quic needs a datagram flow below it (it has no sockets of its own)"};
                return nullptr;
            }
            if (const auto kind = lower->info().kind; kind != sdk::edge::datagram) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "quic needs a datagram flow below it, got a " +
                           std::string(sdk::to_string(kind)) + " flow"};
                return nullptr;
            }
            if (p.side == sdk::role::server && !can_serve(err)) return nullptr;
            return quic_connection::open(executor_, settings_, tls_, std::move(lower), p);
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

    bool can_serve(sdk::flow_error& err) const noexcept override {
        if (tls_->can_serve()) return true;
        err.code = std::make_error_code(std::errc::invalid_argument);
        try {
            err.reason = "quic: the server role needs a certificate: set the cert-file and "
                         "key-file options";
        } catch (...) {
            // No memory for why; the code still says it.
        }
        return false;
    }

private:
    boost::asio::any_io_executor executor_;
    std::shared_ptr<const quic_settings> settings_;
    std::shared_ptr<const quic_tls_context> tls_;
};

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        auto s = std::make_shared<quic_settings>();
        if (!parse_settings(ctx.opts, *s, err)) return nullptr;
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "quic: no executor"};
            return nullptr;
        }
        s->log = ctx.log;
        // Built now, so a bad file is reported when the policy is used, not at the first
        // connection.
        auto tls = quic_tls_context::create(*s, err);
        if (!tls) return nullptr;
        return std::make_unique<quic_layer>(ctx.executor, std::move(s), std::move(tls));
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

// Multistreaming: fork() opens a stream of the same connection, peer streams arrive through
// on_incoming_flow. Every packet is protected by an AEAD (integrity both ways) and TLS 1.3
// authenticates the server. 0-RTT: a client with a ticket that allows it sends idempotent
// messages of its first stream before the handshake completes (docs/quic.md "0-RTT").
constexpr sdk::feature_entry features[] = {
    {"reliability", sdk::feature_effect::provides},
    {"preserve-msg-boundaries", sdk::feature_effect::provides},
    {"preserve-order", sdk::feature_effect::provides},
    {"congestion-control", sdk::feature_effect::provides},
    {"multistreaming", sdk::feature_effect::provides},
    {"full-checksum-send", sdk::feature_effect::provides},
    {"full-checksum-recv", sdk::feature_effect::provides},
    {"security", sdk::feature_effect::provides},
    {"zero-rtt-msg", sdk::feature_effect::provides},
};

// HTTP/3 requests and responses as messages (docs/http.md), as the http1 layer has them.
constexpr sdk::feature_entry h3_features[] = {
    {"preserve-msg-boundaries", sdk::feature_effect::provides},
};

const sdk::layer_descriptor layers[] = {
    {
        "quic",
        "QUIC v1 (ngtcp2, TLS 1.3 by GnuTLS) over datagrams: reliable, ordered, encrypted "
        "messages with congestion control; multistreaming (one flow per stream, bidirectional or "
        "unidirectional)",
        sdk::edge::message,
        sdk::edge::datagram,
        features,
        std::size(features),
        option_schema().data(),
        option_schema().size(),
        &create,
    },
    {
        "h3",
        "HTTP/3 (nghttp3) requests and responses as messages; only directly over quic: "
        "[h3, quic, udp]",
        sdk::edge::message,
        sdk::edge::message,
        h3_features,
        std::size(h3_features),
        h3_option_schema().data(),
        h3_option_schema().size(),
        &create_h3,
    },
};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "quic";
    d.version = "0.1.0";
    d.license = "same as Post Sockets";
    d.description = "QUIC over datagram layers (ngtcp2 with GnuTLS), and HTTP/3 over it (nghttp3)";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::quic

POST_PLUGIN(quic, post::plugins::quic::descriptor)
