// 0-RTT state a quic client keeps in the association's session_store (docs/quic.md "0-RTT"):
// the latest TLS 1.3 ticket (a GnuTLS session blob) with the server's transport parameters,
// which RFC 9000 7.4.1 requires for sending 0-RTT. One blob per server name and ALPN offer.
#pragma once

#include <ngtcp2/ngtcp2.h>
#include <post/sdk.hpp>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace post::plugins::quic {

/// What the client needs to resume and, when the ticket allows it, to send 0-RTT.
struct stored_session {
    bool early = false;            ///< The ticket allows early data (max_early_data_size 2^32-1).
    std::uint64_t stored_at = 0;   ///< Unix seconds.
    std::uint32_t lifetime = 0;    ///< Seconds, from the NewSessionTicket.
    std::vector<std::uint8_t> tp;  ///< The server's transport parameters, RFC 9000 wire format.
    std::vector<std::uint8_t> tls; ///< gnutls_session_get_data2.
    ngtcp2_transport_params params{}; ///< `tp` decoded.
};

/// What a NewSessionTicket (RFC 8446 4.6.1) says about itself.
struct ticket_terms {
    std::uint32_t lifetime = 0;
    /// The early_data extension's max_early_data_size; nullopt: no such extension.
    std::optional<std::uint32_t> max_early_data;
};

/// "quic/<server name or address>/<alpn,list>".
std::string session_key(const std::string& name, const std::vector<std::string>& alpn);

/// Parses a NewSessionTicket body (with or without its 4-byte handshake header); nullopt when
/// it is malformed.
std::optional<ticket_terms> parse_ticket(const std::uint8_t* p, std::size_t n);

/// The blob: "PQ", version 1, flags, stored-at, lifetime, transport parameters, TLS session.
sdk::byte_buffer encode_session(const stored_session& s);

/// The stored session under `key` when it can still be used at `now`; else nullopt and `why`
/// says why ("no ticket", "ticket expired", "stored ticket unreadable"), and an unusable blob is
/// erased.
std::optional<stored_session> load_session(sdk::session_store& store, const std::string& key,
                                           std::time_t now, std::string& why);

} // namespace post::plugins::quic
