// Turning OpenSSL's error queue and verify results into a flow_error whose reason says which
// check failed, in words an operator can act on.
#pragma once

#include "tls_verify.hpp"

#include <openssl/ssl.h>

#include <post/sdk.hpp>

#include <string>

namespace post::plugins::tls {

/// What the flow knows when OpenSSL fails: where it was and what it saw.
struct failure_context {
    bool handshake = true; ///< Still in the handshake.
    sdk::role side = sdk::role::client;
    const verify_state* verify = nullptr;
    std::string alpn_offered_by_client; ///< Server side, after a mismatch.
    std::string alpn_ours;              ///< Our list, for messages.
    std::string first_bytes;            ///< The peer's first bytes, hex (garbage detection).
};

/// After an SSL call failed with `ssl_error` (SSL_get_error): drains the error queue.
sdk::flow_error describe_failure(SSL* ssl, int ssl_error, const failure_context& fc);

/// "peer does not speak TLS: first bytes were 48 54 54 50 ... ("HTTP/1.1")".
sdk::flow_error not_tls(const std::string& first_bytes_hex, const std::string& first_bytes_text);

} // namespace post::plugins::tls
