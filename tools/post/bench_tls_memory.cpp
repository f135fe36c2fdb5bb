#include "bench_tls_memory.hpp"

#include <fmt/core.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace post_tool::bench {
namespace {

struct ssl_deleter {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
    void operator()(SSL_SESSION* s) const noexcept { SSL_SESSION_free(s); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;
using session_ptr = std::unique_ptr<SSL_SESSION, ssl_deleter>;

[[noreturn]] void fail(const char* step) {
    const unsigned long e = ERR_get_error();
    char reason[256] = "no OpenSSL error";
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    throw std::runtime_error(
        fmt::format("post bench tls: an in-memory handshake failed ({}: {})", step, reason));
}

/// 1 when done; 0 when `ssl` waits for its peer; throws on an error.
int step(SSL* ssl, int rc, const char* what) {
    if (rc == 1) return 1;
    const int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    fail(what);
}

/// One connection (see memory_handshakes). Returns whether the client resumed.
bool one_connection(SSL_CTX* client_ctx, SSL_CTX* server_ctx, const char* ip, SSL_SESSION* offer,
                    session_ptr& latest) {
    ssl_ptr c(SSL_new(client_ctx)), s(SSL_new(server_ctx));
    if (!c || !s) fail("SSL_new");
    BIO *cb = nullptr, *sb = nullptr;
    if (BIO_new_bio_pair(&cb, 0, &sb, 0) != 1) fail("BIO_new_bio_pair");
    SSL_set_bio(c.get(), cb, cb); // each SSL owns its end
    SSL_set_bio(s.get(), sb, sb);
    SSL_set_connect_state(c.get());
    SSL_set_accept_state(s.get());
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.get()), ip);
    if (offer && SSL_set_session(c.get(), offer) != 1) fail("SSL_set_session");

    // The client's handshake ends before the server's (it writes the last flight), and it
    // closes at once, as the socket loops' clients do. Three rounds suffice for either version;
    // the bound makes a stuck exchange an error rather than a hang.
    int client_done = 0, server_done = 0;
    for (int i = 0; i < 8 && !(client_done && server_done); ++i) {
        if (!client_done) {
            client_done = step(c.get(), SSL_do_handshake(c.get()), "client");
            if (client_done && SSL_shutdown(c.get()) < 0) fail("client close_notify");
        }
        if (!server_done) server_done = step(s.get(), SSL_do_handshake(s.get()), "server");
    }
    if (!(client_done && server_done)) fail("no progress");

    // The server answers the close_notify with its own, then the client reads what is left:
    // TLS 1.3 session tickets, then the close_notify.
    if (SSL_shutdown(s.get()) < 0 || SSL_shutdown(s.get()) != 1) fail("server close_notify");
    char byte;
    const int n = SSL_read(c.get(), &byte, 1);
    if (n > 0) fail("unexpected application data");
    if (SSL_get_error(c.get(), n) != SSL_ERROR_ZERO_RETURN) fail("client reading the close");
    if (SSL_shutdown(c.get()) != 1) fail("client close");

    const bool resumed = SSL_session_reused(c.get()) == 1;
    if (session_ptr now{SSL_get1_session(c.get())}; now && SSL_SESSION_is_resumable(now.get()))
        latest = std::move(now);
    return resumed;
}

} // namespace

handshake_rate memory_handshakes(SSL_CTX* client, SSL_CTX* server, const char* ip,
                                 std::chrono::duration<double> duration, bool resume, int warmup) {
    using clock = std::chrono::steady_clock;
    session_ptr latest;
    for (int i = 0; i < warmup; ++i)
        one_connection(client, server, ip, resume ? latest.get() : nullptr, latest);
    handshake_rate r;
    const auto start = clock::now();
    const auto deadline = start + std::chrono::duration_cast<clock::duration>(duration);
    while (clock::now() < deadline) {
        if (one_connection(client, server, ip, resume ? latest.get() : nullptr, latest))
            ++r.resumed;
        ++r.count;
    }
    r.per_s = double(r.count) / std::chrono::duration<double>(clock::now() - start).count();
    return r;
}

} // namespace post_tool::bench
