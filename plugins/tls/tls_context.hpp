// SSL_CTX construction from the layer's options, shared process-wide: loading the system trust
// store costs milliseconds, and a server's session ticket keys (and its anti-replay cache for
// early data) live in its SSL_CTX, so they must outlive single connections.
#pragma once

#include "tls_settings.hpp"
#include "tls_verify.hpp"

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

namespace post::plugins::tls {

/// What OpenSSL's per-connection callbacks reach through the SSL object (SSL_set_app_data).
class tls_connection {
public:
    virtual verify_state& verification() noexcept = 0;
    /// A client got a new session (TLS 1.3: a ticket after the handshake). Must not throw.
    virtual void on_new_session(SSL_SESSION* session) noexcept = 0;
    /// A server's ALPN list shares nothing with what the client offered (wire format).
    virtual void on_alpn_mismatch(std::string offered) noexcept = 0;

    static tls_connection* from(const SSL* ssl) noexcept {
        return static_cast<tls_connection*>(SSL_get_app_data(ssl));
    }

protected:
    ~tls_connection() = default;
};

class tls_context {
public:
    /// The context for `side` and these settings, built once per process and then shared.
    /// nullptr with `err` when a file, cipher list or option combination is refused.
    static std::shared_ptr<tls_context> get(sdk::role side, const tls_settings& s,
                                            sdk::flow_error& err) noexcept;

    tls_context(sdk::role side, tls_settings s);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    SSL_CTX* native() const noexcept { return ctx_; }
    sdk::role side() const noexcept { return side_; }
    const tls_settings& settings() const noexcept { return settings_; }

private:
    bool build(sdk::flow_error& err);
    static void keylog_line(const SSL* ssl, const char* line);
    static int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void* arg);
    static int new_session(SSL* ssl, SSL_SESSION* session);

    sdk::role side_;
    tls_settings settings_;
    SSL_CTX* ctx_ = nullptr;
    std::string alpn_wire_; ///< Length-prefixed protocol names, as ALPN sends them.
    std::mutex keylog_mutex_;
};

/// "what: <OpenSSL's reason>", draining the error queue.
std::string openssl_error_text(const std::string& what);

} // namespace post::plugins::tls
