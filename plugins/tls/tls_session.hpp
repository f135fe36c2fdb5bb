// Client sessions kept in the association's session_store, so the next connection to the same
// server (and name, and ALPN offer) can resume, and with TLS 1.3 send early data.
#pragma once

#include <openssl/ssl.h>

#include <post/sdk.hpp>

#include <memory>
#include <string>
#include <vector>

namespace post::plugins::tls {

struct session_deleter {
    void operator()(SSL_SESSION* s) const noexcept { SSL_SESSION_free(s); }
};
using session_ptr = std::unique_ptr<SSL_SESSION, session_deleter>;

/// A session as the association keeps it (SDK 4.4 session_object): the live SSL_SESSION,
/// shared by the carriers that resume with it, serialised only if the association is saved.
class session_object final : public sdk::session_object {
public:
    explicit session_object(SSL_SESSION* s) noexcept
        : session_(s) {
        SSL_SESSION_up_ref(s);
    }
    /// A new reference to the session.
    session_ptr get() const noexcept {
        SSL_SESSION_up_ref(session_.get());
        return session_ptr(session_.get());
    }
    sdk::byte_buffer serialize() const noexcept override;

private:
    session_ptr session_;
};

/// "tls/<server name or address>/<alpn,list>": a session only fits the same name and offer
/// (OpenSSL refuses early data when the ALPN differs).
std::string session_key(const std::string& name, const std::vector<std::string>& alpn);

/// The stored session under `key` when it can still be resumed; else null and `why` says why
/// ("no ticket", "ticket expired", ...), and an unusable one is erased.
session_ptr load_session(sdk::session_store& store, const std::string& key, std::string& why);

} // namespace post::plugins::tls
