// The TLS 1.3 side of QUIC, on GnuTLS (ngtcp2's only crypto backend in Debian): credentials per
// layer, one session per connection, and peer verification by the same rules as the tls layer
// (system trust unless ca-file, name or address check, pins), with failures named.
#pragma once

#include "quic_settings.hpp"

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post::plugins::quic {

/// What the peer check needs for one connection, and what it found.
struct verify_state {
    bool check_chain = true;       ///< verify-peer: chain + name/address.
    std::vector<std::string> pins; ///< Normalised base64 digests; empty = no pinning.
    std::string expected_name;     ///< Host name or address text.
    bool expected_is_address = false;
    std::optional<std::string> failure; ///< Set by the check when it refuses the peer.
};

/// Set as the GnuTLS session pointer: ngtcp2's crypto helpers find the connection through
/// `ref` (the first member), our callbacks find the rest.
struct session_link {
    ngtcp2_crypto_conn_ref ref{};
    verify_state* verify = nullptr;
    const std::string* keylog = nullptr; ///< Path, when the keylog option is set.
};

/// Credentials built once per layer, shared by its connections (GnuTLS credentials are
/// read-only once set up).
class quic_tls_context {
public:
    /// Loads ca-file (else the system trust) and, when set, cert-file/key-file. Null and `err`
    /// naming the file on failure.
    static std::shared_ptr<quic_tls_context> create(const quic_settings& s, sdk::flow_error& err);
    ~quic_tls_context();
    quic_tls_context(const quic_tls_context&) = delete;
    quic_tls_context& operator=(const quic_tls_context&) = delete;

    bool can_serve() const noexcept { return server_cred_ != nullptr; }

    /// A session for one connection, configured for QUIC (ngtcp2), ALPN, SNI (clients, host
    /// names only). `link` must outlive the session. Null and `err` on failure.
    gnutls_session_t new_session(sdk::role side, session_link& link, const std::string& sni,
                                 sdk::flow_error& err) const;

private:
    quic_tls_context() = default;
    static int verify_callback(gnutls_session_t session);

    gnutls_certificate_credentials_t client_cred_ = nullptr;
    gnutls_certificate_credentials_t server_cred_ = nullptr;
    std::vector<gnutls_datum_t> alpn_;
    std::vector<std::string> alpn_storage_;
};

/// Base64 SHA-256 of a DER certificate's SubjectPublicKeyInfo (the pin-sha256 format).
std::string spki_pin(const gnutls_datum_t& der_cert);

/// The peer check on a client, run by GnuTLS when the server's certificate arrives: fills
/// `st.failure` and returns false when the peer is refused.
bool check_peer(gnutls_session_t session, verify_state& st);

/// "bad_certificate" etc. for a TLS alert number.
std::string alert_name(unsigned alert);

/// The protocols of `alpn` as text: "post, h3".
std::string alpn_text(const std::vector<std::string>& alpn);

} // namespace post::plugins::quic
