// DTLS cookie exchange (RFC 6347 §4.2.1) for servers driven through memory BIOs: the cookie is
// an HMAC over the peer's address under a per-process secret, so a server answers a ClientHello
// from an address it has not heard back from with a HelloVerifyRequest only, and keeps no
// handshake state for spoofed senders beyond the flow the datagram layer already made.
#pragma once

#include <openssl/ssl.h>

#include <string>

namespace post::plugins::tls {

/// Implemented by connections whose SSL objects run cookie exchange; reached through the SSL
/// object's tls_connection (the same app data the verification callbacks use).
class dtls_cookie_peer {
public:
    /// The peer's transport address as the cookie binds it ("address|port").
    virtual std::string cookie_peer() const noexcept = 0;

protected:
    ~dtls_cookie_peer() = default;
};

/// SSL_CTX_set_cookie_generate_cb / SSL_CTX_set_cookie_verify_cb with the HMAC above.
void install_cookie_callbacks(SSL_CTX* ctx) noexcept;

} // namespace post::plugins::tls
