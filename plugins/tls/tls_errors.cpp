#include "tls_errors.hpp"

#include <openssl/err.h>

namespace post::plugins::tls {
namespace {

sdk::flow_error make(std::errc code, std::string reason) {
    return {std::make_error_code(code), std::move(reason)};
}

} // namespace

sdk::flow_error not_tls(const std::string& hex, const std::string& text) {
    return make(std::errc::protocol_error, "peer does not speak TLS: first bytes were " + hex +
                                               (text.empty() ? "" : " (\"" + text + "\")"));
}

sdk::flow_error describe_failure(SSL* ssl, int ssl_error, const failure_context& fc) {
    // The first queued error is the cause; later ones are OpenSSL unwinding.
    unsigned long first = 0;
    std::string all;
    while (const unsigned long e = ERR_get_error()) {
        if (!first) first = e;
        const char* r = ERR_reason_error_string(e);
        if (!all.empty()) all += "; ";
        all += r ? r : "error " + std::to_string(ERR_GET_REASON(e));
    }
    const std::string stage = fc.handshake ? "handshake failed: " : "TLS error: ";
    if (!first) {
        if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
            return make(std::errc::connection_aborted, stage + "the connection ended unexpectedly");
        return make(std::errc::protocol_error,
                    stage + "OpenSSL error " + std::to_string(ssl_error) + " without a reason");
    }
    const int reason = ERR_GET_REASON(first);
    const bool ssl_lib = ERR_GET_LIB(first) == ERR_LIB_SSL;
    if (ssl_lib) {
        switch (reason) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            if (fc.verify)
                return make(std::errc::permission_denied, describe_verify_failure(*fc.verify, ssl));
            break;
        case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
        case SSL_R_DECRYPTION_FAILED:
            return make(std::errc::bad_message, "TLS record corrupted: bad record mac");
        case SSL_R_NO_APPLICATION_PROTOCOL:
            return make(std::errc::protocol_error,
                        stage + "no shared ALPN protocol (the client offered " +
                            (fc.alpn_offered_by_client.empty() ? std::string("none")
                                                               : fc.alpn_offered_by_client) +
                            "; we accept " + fc.alpn_ours + ")");
        case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
            return make(std::errc::protocol_error,
                        stage + "no shared ALPN protocol (the server accepts none of " +
                            fc.alpn_ours + ")");
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            return make(std::errc::permission_denied,
                        stage + "the client sent no certificate (client-auth: require)");
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            return make(std::errc::permission_denied,
                        stage + "the server requires a client certificate (set cert-file and "
                                "key-file)");
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_UNKNOWN_PROTOCOL:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
        case SSL_R_RECORD_LENGTH_MISMATCH:
            if (fc.handshake && !fc.first_bytes.empty()) return not_tls(fc.first_bytes, {});
            break;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
            return make(std::errc::protocol_not_supported,
                        stage + "no TLS version both sides accept (" + all + ")");
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_CIPHERS_AVAILABLE:
            return make(std::errc::protocol_not_supported,
                        stage + "no shared cipher (" + all + ")");
        default:
            break;
        }
        // Alerts from the peer: say it was the peer that refused.
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
            const bool bad_cert = reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
                                  reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
                                  reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
                                  reason == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
                                  reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR;
            return make(bad_cert ? std::errc::permission_denied : std::errc::protocol_error,
                        stage + "the peer sent an alert: " + all);
        }
    }
    return make(std::errc::protocol_error, stage + all);
}

} // namespace post::plugins::tls
