// Peer certificate checks (chain, name or address, pinned keys) and how a failure is told.
#pragma once

#include "tls_settings.hpp"

#include <openssl/ssl.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace post::plugins::tls {

/// One connection's verification inputs and, after a failure, what failed. Reached from
/// OpenSSL's callbacks through the SSL object (tls_connection::verification()).
struct verify_state {
    bool check_chain = true;       ///< verify-peer: chain + name/address.
    std::vector<std::string> pins; ///< Normalised base64 digests; empty = no pinning.
    std::string expected_name;     ///< Host name or address text, for messages.
    bool expected_is_address = false;

    // Filled by the callback when a check fails.
    bool failed = false;
    int error = 0; ///< X509_V_ERR_*
    int depth = -1;
    std::string subject;
    bool pin_mismatch = false;
    std::string peer_pin; ///< The leaf's digest, when pinning was checked.
};

/// SSL_CTX_set_cert_verify_callback target: runs the chain check when asked, then the pins.
int verify_certificate(X509_STORE_CTX* store, void* arg);

/// Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (the pin-sha256 format).
std::string spki_pin(X509* cert);

/// "certificate verify failed: ..." / "pinned key mismatch: ..." for a recorded failure; when
/// nothing was recorded (the check ran elsewhere), from SSL_get_verify_result.
std::string describe_verify_failure(const verify_state& st, const SSL* ssl);

/// Set the expected host name or IP address on the connection's verify parameters.
bool expect_peer_identity(SSL* ssl, verify_state& st, const std::string& name, bool is_address);

/// A client's side of identity, for tls and dtls alike: the name to check (`server-name`, else
/// the host name asked for, else the peer's address), SNI for host names only (RFC 6066), and
/// the checks, or a warning through `warn` when verify-peer is off. Returns the name, or nothing
/// with `err` filled (its reason starts with `layer`).
std::optional<std::string> set_up_client_identity(SSL* ssl, verify_state& st, const tls_settings& s,
                                                  const sdk::open_params& p, std::string_view layer,
                                                  const std::function<void(std::string)>& warn,
                                                  sdk::flow_error& err);

} // namespace post::plugins::tls
