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

/// "tls/<server name or address>/<alpn,list>": a session only fits the same name and offer
/// (OpenSSL refuses early data when the ALPN differs).
std::string session_key(const std::string& name, const std::vector<std::string>& alpn);

/// The stored session under `key` when it can still be resumed; else null and `why` says why
/// ("no ticket", "ticket expired", ...), and an unusable blob is erased.
session_ptr load_session(sdk::session_store& store, const std::string& key, std::string& why);

sdk::byte_buffer serialize_session(SSL_SESSION* s);

} // namespace post::plugins::tls
