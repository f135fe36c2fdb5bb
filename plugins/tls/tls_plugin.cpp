// The `tls` plugin: layer `tls`, TLS 1.2/1.3 (OpenSSL 3) over a lower stream flow, and layer
// `dtls`, DTLS 1.2 over a lower datagram flow, for the client and the server role. The
// descriptor, the option schemas and the tls layer's factory (dtls_layer.cpp has dtls's).
#include "dtls_layer.hpp"
#include "tls_context.hpp"
#include "tls_flow.hpp"
#include "tls_settings.hpp"

#include <limits>
#include <string_view>

namespace post::plugins::tls {
namespace {

class tls_layer final : public sdk::layer {
public:
    tls_layer(boost::asio::any_io_executor ex, std::shared_ptr<const tls_settings> s,
              std::shared_ptr<tls_context> client_ctx, std::shared_ptr<tls_context> server_ctx,
              sdk::log_sink* log)
        : executor_(std::move(ex))
        , settings_(std::move(s))
        , client_ctx_(std::move(client_ctx))
        , server_ctx_(std::move(server_ctx))
        , log_(log) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!lower) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "tls needs a stream flow below it (it has no sockets of its own)"};
                return nullptr;
            }
            if (const auto kind = lower->info().kind; kind != sdk::edge::stream) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "tls needs a stream flow below it, got a " +
                           std::string(sdk::to_string(kind)) + " flow"};
                return nullptr;
            }
            auto ctx = p.side == sdk::role::client ? client_ctx_ : server_ctx_;
            if (!ctx) {
                err = no_server_certificate("tls");
                return nullptr;
            }
            auto f = std::make_shared<tls_flow>(executor_, std::move(ctx), settings_,
                                                std::move(lower), p, log_);
            if (!f->init(err)) return nullptr;
            f->attach();
            return f;
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

    bool can_serve(sdk::flow_error& err) const noexcept override {
        if (server_ctx_) return true;
        try {
            err = no_server_certificate("tls");
        } catch (...) {
            err.code = std::make_error_code(std::errc::invalid_argument); // no memory for why
        }
        return false;
    }

private:
    boost::asio::any_io_executor executor_;
    std::shared_ptr<const tls_settings> settings_;
    std::shared_ptr<tls_context> client_ctx_;
    std::shared_ptr<tls_context> server_ctx_; ///< Null without cert-file/key-file.
    sdk::log_sink* log_;
};

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        tls_settings s;
        if (!parse_settings(ctx.opts, s, err)) return nullptr;
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "tls: no executor"};
            return nullptr;
        }
        // Built now, so a bad file or cipher list is reported when the policy is used, not at
        // the first connection.
        auto client_ctx = tls_context::get(sdk::role::client, s, err);
        if (!client_ctx) return nullptr;
        std::shared_ptr<tls_context> server_ctx;
        if (!s.cert_file.empty()) {
            server_ctx = tls_context::get(sdk::role::server, s, err);
            if (!server_ctx) return nullptr;
        }
        return std::make_unique<tls_layer>(ctx.executor,
                                           std::make_shared<const tls_settings>(std::move(s)),
                                           std::move(client_ctx), std::move(server_ctx), ctx.log);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

constexpr sdk::feature_entry features[] = {
    {"security", sdk::feature_effect::provides},
};

constexpr sdk::option_spec options[] = {
    {"verify-peer", sdk::option_type::boolean,
     "Verify the peer's certificate chain (ca-file, else the system trust store) and, on a "
     "client, that it is valid for the server name or address; false disables authentication "
     "and logs a warning at every connection",
     "true"},
    {"ca-file", sdk::option_type::string,
     "PEM bundle of trusted CAs, used instead of the system trust store (servers: for client "
     "certificates)",
     ""},
    {"pin-sha256", sdk::option_type::string_list,
     "Base64 SHA-256 digests of accepted peer public keys (SubjectPublicKeyInfo); when set, the "
     "peer's key must match one, in addition to the chain check",
     ""},
    {"cert-file", sdk::option_type::string,
     "PEM certificate chain we present (required for the server role; a client certificate "
     "for clients)",
     ""},
    {"key-file", sdk::option_type::string, "PEM private key of cert-file", ""},
    {"client-auth", sdk::option_type::string,
     "Server role: ask for client certificates: none, optional or require", "none"},
    {"server-name", sdk::option_type::string,
     "Name sent as SNI and verified in the server's certificate, instead of the host name the "
     "application asked for",
     ""},
    {"alpn", sdk::option_type::string_list,
     "ALPN protocols: offered by a client; accepted by a server in this order of preference (a "
     "client offering only others fails the handshake)",
     ""},
    {"min-version", sdk::option_type::string, "Lowest TLS version: tls1.2 or tls1.3", "tls1.2"},
    {"max-version", sdk::option_type::string, "Highest TLS version: tls1.2 or tls1.3", "tls1.3"},
    {"ciphers", sdk::option_type::string,
     "TLS 1.2 cipher list (OpenSSL syntax); empty = OpenSSL's defaults", ""},
    {"ciphersuites", sdk::option_type::string,
     "TLS 1.3 cipher suites (colon-separated); empty = OpenSSL's defaults", ""},
    {"session-tickets", sdk::option_type::boolean,
     "Resume sessions with tickets (clients keep them in the association)", "true"},
    {"early-data", sdk::option_type::boolean,
     "TLS 1.3 0-RTT. Client (default true): send idempotent messages as early data when a "
     "stored session allows it. Server (default false): accept early data (replayable by an "
     "attacker: only for idempotent requests)",
     ""},
    {"max-early-data", sdk::option_type::integer,
     "Server: most early data bytes accepted per connection", "16384", 0, 4294967295LL},
    {"keylog", sdk::option_type::string,
     "Append TLS secrets to this file in NSS key log format (for Wireshark); empty = "
     "$SSLKEYLOGFILE when set. Anyone with the file can decrypt the traffic",
     ""},
};

/// A tls option dtls shares, by name (a typo fails to compile: constant evaluation throws).
constexpr sdk::option_spec tls_option(std::string_view name) {
    for (const auto& o : options)
        if (name == o.name) return o;
    throw "no such tls option";
}

constexpr sdk::option_spec dtls_options[] = {
    tls_option("verify-peer"),
    tls_option("ca-file"),
    tls_option("pin-sha256"),
    tls_option("cert-file"),
    tls_option("key-file"),
    tls_option("client-auth"),
    tls_option("server-name"),
    tls_option("alpn"),
    {"ciphers", sdk::option_type::string,
     "DTLS 1.2 cipher list (OpenSSL syntax); empty = OpenSSL's defaults", ""},
    tls_option("keylog"),
    {"max-message-size", sdk::option_type::integer,
     "Largest message a send accepts; 0 = what fits in one DTLS record (16384 bytes) in one "
     "datagram of the layer below, less the record's overhead",
     "0", 0, 16384},
    {"mtu", sdk::option_type::integer,
     "Largest datagram the handshake builds (its messages are split to fit); at most the layer "
     "below's limit",
     "1400", 256, 65527},
    {"handshake-timeout", sdk::option_type::duration,
     "Give up a handshake not complete after this long (lost flights are sent again meanwhile, "
     "after 1s, 2s, 4s ...); also ends accepted flows whose peer never completes one",
     "10s"},
};

const sdk::layer_descriptor layers[] = {
    {
        "tls",
        "TLS 1.2/1.3 (OpenSSL) over a byte stream: encryption, authentication, resumption, 0-RTT",
        sdk::edge::stream,
        sdk::edge::stream,
        features,
        std::size(features),
        options,
        std::size(options),
        &create,
    },
    {
        "dtls",
        "DTLS 1.2 (OpenSSL 3.0 has no DTLS 1.3) over datagrams: encryption, authentication; one "
        "record per message",
        sdk::edge::datagram,
        sdk::edge::datagram,
        features,
        std::size(features),
        dtls_options,
        std::size(dtls_options),
        &create_dtls_layer,
    },
};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "tls";
    d.version = "0.1.0";
    d.license = "same as Post Sockets";
    d.description = "TLS over stream layers and DTLS over datagram layers (OpenSSL 3)";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::tls

POST_PLUGIN(tls, post::plugins::tls::descriptor)
