#include "dtls_cookie.hpp"

#include "tls_context.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <mutex>

namespace post::plugins::tls {
namespace {

constexpr std::size_t cookie_size = 32; // HMAC-SHA256; DTLS allows up to 255 bytes

/// Random once per process: cookies need only survive one client's round trip, and a secret
/// that never leaves memory cannot be forged from outside.
const std::array<unsigned char, 32>* cookie_secret() noexcept {
    static std::array<unsigned char, 32> secret{};
    static bool ok = false;
    static std::once_flag once;
    try {
        std::call_once(once, [] { ok = RAND_bytes(secret.data(), secret.size()) == 1; });
    } catch (...) {
        return nullptr;
    }
    return ok ? &secret : nullptr;
}

bool compute_cookie(SSL* ssl, unsigned char* out, std::size_t& len) noexcept {
    const auto* secret = cookie_secret();
    auto* conn = tls_connection::from(ssl);
    const auto* peer = dynamic_cast<const dtls_cookie_peer*>(conn);
    if (!secret || !peer) return false;
    try {
        const std::string who = peer->cookie_peer();
        return EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret->data(),
                         secret->size(), reinterpret_cast<const unsigned char*>(who.data()),
                         who.size(), out, cookie_size, &len) != nullptr &&
               len == cookie_size;
    } catch (...) {
        return false;
    }
}

int generate_cookie(SSL* ssl, unsigned char* cookie, unsigned int* cookie_len) {
    std::size_t len = 0;
    if (!compute_cookie(ssl, cookie, len)) return 0;
    *cookie_len = static_cast<unsigned int>(len);
    return 1;
}

int verify_cookie(SSL* ssl, const unsigned char* cookie, unsigned int cookie_len) {
    unsigned char expected[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (!compute_cookie(ssl, expected, len) || cookie_len != len) return 0;
    return CRYPTO_memcmp(expected, cookie, len) == 0 ? 1 : 0;
}

} // namespace

void install_cookie_callbacks(SSL_CTX* ctx) noexcept {
    SSL_CTX_set_cookie_generate_cb(ctx, &generate_cookie);
    SSL_CTX_set_cookie_verify_cb(ctx, &verify_cookie);
}

} // namespace post::plugins::tls
