// `post bench tls`'s third contender: OpenSSL alone. A client and a server SSL object shake
// hands over a memory BIO pair on the calling thread, with no socket, no event loop and no
// second thread, so the rates are what the handshakes themselves cost OpenSSL on this machine,
// and their resumed / full ratio is what the cryptography alone allows. The socket loops add
// connection set-up, system calls and wake-ups to both kinds of handshake alike, which pulls
// their ratio below this one (two threads can overlap a little of the work, so not by a fixed
// amount).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cmath>
#include <cstdint>

namespace post_tool::bench {

/// Handshakes per second, and how many of them resumed a session.
struct handshake_rate {
    double per_s = NAN;
    std::uint64_t count = 0, resumed = 0;
    /// CPU time per connection (warm-ups included) of the client's and the server's thread, in
    /// microseconds; NaN where not measured (the in-memory loop runs both on one thread).
    double client_cpu_us = NAN, server_cpu_us = NAN;
    double resumed_fraction() const { return count ? double(resumed) / double(count) : NAN; }
};

/// Sequential handshakes between `client` and `server` contexts (configured as the socket
/// loops' are: same version, suite, certificate, trust anchor), for `duration` after `warmup`
/// untimed ones. Each connection runs as the socket loops' clients run theirs: the handshake,
/// then at once the client's close_notify; the server answers the Finished (with its session
/// tickets in TLS 1.3) and the close_notify; the client reads both. The client verifies the
/// server's certificate and address `ip`. With `resume`, each connection offers the session the
/// previous one ended with. Throws when a handshake fails.
handshake_rate memory_handshakes(SSL_CTX* client, SSL_CTX* server, const char* ip,
                                 std::chrono::duration<double> duration, bool resume, int warmup);

} // namespace post_tool::bench
