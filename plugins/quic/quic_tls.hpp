// The TLS 1.3 side of QUIC, on GnuTLS (ngtcp2's only crypto backend in Debian): credentials per
// layer, one session per connection, and peer verification by the same rules as the tls layer
// (system trust unless ca-file, name or address check, pins), with failures named.
#pragma once

#include "quic_settings.hpp"

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <map>
#include <memory>
#include <mutex>
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
    /// Client with session-tickets: the last NewSessionTicket. Its terms are read from the
    /// CRYPTO stream before GnuTLS parses it; `pending` is set by the hook once GnuTLS has it
    /// (recorded only: the connection stores the ticket in its next service pass).
    struct ticket_seen {
        bool pending = false;
        bool malformed = true;
        std::uint32_t lifetime = 0;
        std::optional<std::uint32_t> max_early_data;
    } ticket;
};

/// The server's anti-replay memory of 0-RTT ClientHellos (RFC 8446 8): bounded, so a flood of
/// ClientHellos costs early data (refused when full), never unbounded memory.
class anti_replay_db {
public:
    static constexpr std::size_t max_entries = 65536;
    /// False when `key` is known and unexpired, or the db is full: no early data then.
    bool add(const std::string& key, std::time_t expires, std::time_t now);
    std::size_t size() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::time_t> seen_;
    std::multimap<std::time_t, std::string> by_expiry_; ///< The same entries, oldest first.
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
    /// Server: issues tickets (session-tickets) and, with early-data, accepts 0-RTT.
    bool issues_tickets() const noexcept { return server_tickets_; }
    bool accepts_early_data() const noexcept { return server_early_; }

    /// A session for one connection, configured for QUIC (ngtcp2), ALPN, SNI (clients, host
    /// names only). `link` must outlive the session. Null and `err` on failure.
    /// `early`: a client offering a stored ticket with early data (GNUTLS_ENABLE_EARLY_DATA);
    /// servers take theirs from the settings (early-data, session-tickets). `alpn`, when set,
    /// replaces the alpn option (an application protocol on the connection: HTTP/3's h3).
    gnutls_session_t new_session(sdk::role side, session_link& link, const std::string& sni,
                                 bool early, sdk::flow_error& err,
                                 const std::vector<std::string>* alpn = nullptr) const;

    /// Server: the anti-replay db of this layer instance (tests look at it).
    anti_replay_db& replay_db() const noexcept { return *replay_db_; }

private:
    quic_tls_context() = default;
    static int verify_callback(gnutls_session_t session);
    static int replay_add(void* ptr, std::time_t expires, const gnutls_datum_t* key,
                          const gnutls_datum_t* data);
    static int ticket_hook(gnutls_session_t session, unsigned htype, unsigned when,
                           unsigned incoming, const gnutls_datum_t* msg);

    gnutls_certificate_credentials_t client_cred_ = nullptr;
    gnutls_certificate_credentials_t server_cred_ = nullptr;
    std::vector<gnutls_datum_t> alpn_;
    std::vector<std::string> alpn_storage_;
    bool server_tickets_ = false;
    bool server_early_ = false;
    bool client_tickets_ = false;
    gnutls_datum_t ticket_key_{}; ///< Server: per layer instance, so per listener and process.
    gnutls_anti_replay_t anti_replay_ = nullptr;
    std::unique_ptr<anti_replay_db> replay_db_ = std::make_unique<anti_replay_db>();
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
