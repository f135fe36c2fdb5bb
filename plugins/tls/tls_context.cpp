#include "tls_context.hpp"

#include "dtls_cookie.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstdio>
#include <map>

namespace post::plugins::tls {
namespace {

/// A handful of entries per process in practice (one per distinct policy and role); the bound
/// only keeps a pathological caller from growing it without limit.
constexpr std::size_t max_cached_contexts = 64;

std::mutex cache_mutex;
std::map<std::string, std::shared_ptr<tls_context>>& cache() {
    static auto* c = new std::map<std::string, std::shared_ptr<tls_context>>;
    return *c;
}

sdk::flow_error refused(const std::string& what) {
    return {std::make_error_code(std::errc::invalid_argument), "tls: " + openssl_error_text(what)};
}

} // namespace

std::string openssl_error_text(const std::string& what) {
    std::string text = what;
    bool first = true;
    while (const unsigned long e = ERR_get_error()) {
        const char* r = ERR_reason_error_string(e);
        text += first ? ": " : "; ";
        text += r ? r : ("error " + std::to_string(ERR_GET_REASON(e)));
        first = false;
    }
    return text;
}

std::shared_ptr<tls_context> tls_context::get(sdk::role side, const tls_settings& s,
                                              sdk::flow_error& err) noexcept {
    try {
        const std::string key = s.canonical(side);
        std::lock_guard lock(cache_mutex);
        auto& c = cache();
        if (auto it = c.find(key); it != c.end()) return it->second;
        auto ctx = std::make_shared<tls_context>(side, s);
        if (!ctx->build(err)) return nullptr;
        if (c.size() >= max_cached_contexts) c.erase(c.begin());
        c.emplace(key, ctx);
        return ctx;
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory),
               std::string("tls: cannot build a context: ") + e.what()};
        return nullptr;
    }
}

tls_context::tls_context(sdk::role side, tls_settings s)
    : side_(side)
    , settings_(std::move(s)) {}

tls_context::~tls_context() {
    if (ctx_) SSL_CTX_free(ctx_);
}

bool tls_context::build(sdk::flow_error& err) {
    const bool client = side_ == sdk::role::client;
    const auto& s = settings_;
    ERR_clear_error();
    if (s.datagram)
        ctx_ = SSL_CTX_new(client ? DTLS_client_method() : DTLS_server_method());
    else
        ctx_ = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
    if (!ctx_) {
        err = refused("cannot create an SSL_CTX");
        return false;
    }
    SSL_CTX_set_app_data(ctx_, this);
    SSL_CTX_set_min_proto_version(ctx_, s.min_version);
    SSL_CTX_set_max_proto_version(ctx_, s.max_version);
    if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_, s.ciphers.c_str()) != 1) {
        err = refused("ciphers '" + s.ciphers + "' selects no usable TLS 1.2 cipher");
        return false;
    }
    if (!s.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx_, s.ciphersuites.c_str()) != 1) {
        err = refused("ciphersuites '" + s.ciphersuites + "' selects no usable TLS 1.3 suite");
        return false;
    }
    SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION);
    if (!s.session_tickets) SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);

    if (!s.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx_, s.cert_file.c_str()) != 1) {
            err = refused("cannot load cert-file '" + s.cert_file + "'");
            return false;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx_, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            err = refused("cannot load key-file '" + s.key_file + "'");
            return false;
        }
        if (SSL_CTX_check_private_key(ctx_) != 1) {
            err = refused("key-file '" + s.key_file + "' does not match cert-file '" + s.cert_file +
                          "'");
            return false;
        }
    }

    // Who we verify: a client always checks the server unless told not to; a server checks
    // client certificates only when it asks for them.
    const bool asks_for_peer_cert = client || s.client_auth != client_auth_mode::none;
    const bool needs_trust = asks_for_peer_cert && s.verify_peer;
    if (needs_trust) {
        if (!s.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx_, s.ca_file.c_str(), nullptr) != 1) {
                err = refused("cannot load ca-file '" + s.ca_file + "'");
                return false;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
            err = refused("cannot load the system trust store");
            return false;
        }
    }
    if (!client && s.client_auth != client_auth_mode::none && !s.ca_file.empty()) {
        // Tells clients which CAs we accept, so they can pick a certificate.
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str()))
            SSL_CTX_set_client_CA_list(ctx_, names);
        ERR_clear_error();
    }
    int mode = SSL_VERIFY_NONE;
    if (client) {
        if (s.verify_peer || !s.pins.empty()) mode = SSL_VERIFY_PEER;
    } else if (s.client_auth == client_auth_mode::optional) {
        mode = SSL_VERIFY_PEER;
    } else if (s.client_auth == client_auth_mode::require) {
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx_, mode, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx_, &verify_certificate, nullptr);

    for (const auto& a : s.alpn) {
        alpn_wire_ += static_cast<char>(a.size());
        alpn_wire_ += a;
    }
    if (!alpn_wire_.empty()) {
        if (client) {
            // Unlike most of OpenSSL, 0 means success here.
            if (SSL_CTX_set_alpn_protos(ctx_,
                                        reinterpret_cast<const unsigned char*>(alpn_wire_.data()),
                                        static_cast<unsigned>(alpn_wire_.size())) != 0) {
                err = refused("cannot set alpn");
                return false;
            }
        } else {
            SSL_CTX_set_alpn_select_cb(ctx_, &tls_context::select_alpn, this);
        }
    }

    if (client) {
        // Sessions live in the association's session_store, not in OpenSSL's cache.
        SSL_CTX_set_session_cache_mode(ctx_,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx_, &tls_context::new_session);
    } else {
        static const unsigned char sid_context[] = "post-sockets/tls";
        SSL_CTX_set_session_id_context(ctx_, sid_context, sizeof(sid_context) - 1);
        const auto max_early =
            s.early_data_for(side_) ? static_cast<std::uint32_t>(s.max_early_data) : 0u;
        SSL_CTX_set_max_early_data(ctx_, max_early);
        if (max_early > 0) SSL_CTX_set_recv_max_early_data(ctx_, max_early);
    }
    if (!s.keylog.empty()) SSL_CTX_set_keylog_callback(ctx_, &tls_context::keylog_line);
    if (s.datagram && !client) install_cookie_callbacks(ctx_);
    return true;
}

void tls_context::keylog_line(const SSL* ssl, const char* line) {
    auto* self = static_cast<tls_context*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (!self || !line) return;
    // Opened per line, appending: several processes (or rotations by the user) may share the
    // file, and this only runs when someone asked for a key log.
    std::lock_guard lock(self->keylog_mutex_);
    if (std::FILE* f = std::fopen(self->settings_.keylog.c_str(), "a")) {
        std::fputs(line, f);
        std::fputc('\n', f);
        std::fclose(f);
    }
}

int tls_context::select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                             const unsigned char* in, unsigned int inlen, void* arg) {
    auto* self = static_cast<tls_context*>(arg);
    unsigned char* selected = nullptr;
    // Server preference order: the first of our protocols the client offered.
    if (SSL_select_next_proto(
            &selected, outlen, reinterpret_cast<const unsigned char*>(self->alpn_wire_.data()),
            static_cast<unsigned>(self->alpn_wire_.size()), in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    if (auto* conn = tls_connection::from(ssl)) try {
            std::string offered;
            for (unsigned i = 0; i < inlen;) {
                const unsigned len = in[i++];
                if (i + len > inlen) break;
                if (!offered.empty()) offered += ", ";
                offered += "'" + std::string(reinterpret_cast<const char*>(in + i), len) + "'";
                i += len;
            }
            conn->on_alpn_mismatch(offered);
        } catch (...) {
            // Only the message is lost; the handshake still fails with no_application_protocol.
        }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int tls_context::new_session(SSL* ssl, SSL_SESSION* session) {
    if (auto* conn = tls_connection::from(ssl)) conn->on_new_session(session);
    return 0; // we keep no reference: the connection serialised it
}

} // namespace post::plugins::tls
