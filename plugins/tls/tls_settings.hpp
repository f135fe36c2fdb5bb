// The tls layer's options, parsed and checked once when the layer is created.
#pragma once

#include <post/sdk.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace post::plugins::tls {

inline constexpr std::string_view layer_name = "tls";

enum class client_auth_mode : std::uint8_t { none, optional, require };

struct tls_settings {
    bool verify_peer = true;
    std::string ca_file;
    std::vector<std::string> pins; ///< Base64 SHA-256 of SubjectPublicKeyInfo, normalised.
    std::string cert_file;
    std::string key_file;
    client_auth_mode client_auth = client_auth_mode::none;
    std::string server_name;
    std::vector<std::string> alpn;
    int min_version = 0x0303; ///< TLS1_2_VERSION
    int max_version = 0x0304; ///< TLS1_3_VERSION
    std::string ciphers;
    std::string ciphersuites;
    bool session_tickets = true;
    std::optional<bool> early_data; ///< Unset: true for clients, false for servers.
    std::int64_t max_early_data = 16384;
    std::string keylog; ///< Effective path: the option, else $SSLKEYLOGFILE, else empty.
    /// The dtls layer's contexts: DTLS 1.2 methods and, for servers, cookie exchange.
    bool datagram = false;

    bool early_data_for(sdk::role side) const {
        return early_data.value_or(side == sdk::role::client);
    }
    /// A stable text of everything that shapes an SSL_CTX for `side`: the context cache key.
    std::string canonical(sdk::role side) const;
};

/// Reads and checks the options; false with `err` naming the option on a bad value.
bool parse_settings(const sdk::options& opts, tls_settings& out, sdk::flow_error& err);

std::string_view version_name(int version) noexcept;

/// Why a `layer` ("tls", "dtls") created without cert-file cannot take the server role: for
/// open() on an accepted flow and for can_serve().
sdk::flow_error no_server_certificate(std::string_view layer);

} // namespace post::plugins::tls
