#include "quic_tls.hpp"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <boost/asio/ip/address.hpp>

#include <cstdio>
#include <ctime>

namespace post::plugins::quic {

namespace {

/// TLS 1.3 only (QUIC requires it), no middlebox compatibility mode (RFC 9001 8.4), and the
/// AEADs QUIC defines (no CCM-8).
constexpr const char* priority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "+AES-128-CCM:%DISABLE_TLS13_COMPAT_MODE";

sdk::flow_error tls_error(const std::string& what, int rv) {
    return {std::make_error_code(std::errc::invalid_argument),
            "quic: " + what + ": " + gnutls_strerror(rv)};
}

std::string dn_of(gnutls_x509_crt_t crt) {
    gnutls_datum_t dn{};
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) < 0) return "?";
    std::string s(reinterpret_cast<const char*>(dn.data), dn.size);
    gnutls_free(dn.data);
    return s;
}

std::string status_text(unsigned status) {
    gnutls_datum_t out{};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0)
        return "status " + std::to_string(status);
    std::string s(reinterpret_cast<const char*>(out.data), out.size);
    gnutls_free(out.data);
    return s;
}

/// Appends one NSS key log line to the file named by the keylog option.
int keylog_line(gnutls_session_t session, const char* label, const gnutls_datum_t* secret) {
    auto* link = static_cast<session_link*>(gnutls_session_get_ptr(session));
    if (!link || !link->keylog || !secret) return 0;
    gnutls_datum_t random_client{}, random_server{};
    gnutls_session_get_random(session, &random_client, &random_server);
    std::FILE* f = std::fopen(link->keylog->c_str(), "a");
    if (!f) return 0;
    std::fprintf(f, "%s ", label);
    for (unsigned i = 0; i < random_client.size; ++i)
        std::fprintf(f, "%02x", random_client.data[i]);
    std::fputc(' ', f);
    for (unsigned i = 0; i < secret->size; ++i)
        std::fprintf(f, "%02x", secret->data[i]);
    std::fputc('\n', f);
    std::fclose(f);
    return 0;
}

} // namespace

std::string alpn_text(const std::vector<std::string>& alpn) {
    std::string s;
    for (const auto& a : alpn)
        s += (s.empty() ? "" : ", ") + a;
    return s;
}

std::string alert_name(unsigned alert) {
    const char* n = gnutls_alert_get_strname(static_cast<gnutls_alert_description_t>(alert));
    return n ? std::string(n) : "alert " + std::to_string(alert);
}

quic_tls_context::~quic_tls_context() {
    if (client_cred_) gnutls_certificate_free_credentials(client_cred_);
    if (server_cred_) gnutls_certificate_free_credentials(server_cred_);
    if (anti_replay_) gnutls_anti_replay_deinit(anti_replay_);
    if (ticket_key_.data) {
        gnutls_memset(ticket_key_.data, 0, ticket_key_.size);
        gnutls_free(ticket_key_.data);
    }
}

bool anti_replay_db::add(const std::string& key, std::time_t expires, std::time_t now) {
    std::lock_guard lock(mutex_);
    while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
        seen_.erase(by_expiry_.begin()->second);
        by_expiry_.erase(by_expiry_.begin());
    }
    if (seen_.count(key) || seen_.size() >= max_entries) return false;
    seen_.emplace(key, expires);
    try {
        by_expiry_.emplace(expires, key);
    } catch (...) {
        seen_.erase(key);
        throw;
    }
    return true;
}

std::size_t anti_replay_db::size() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
}

int quic_tls_context::replay_add(void* ptr, std::time_t expires, const gnutls_datum_t* key,
                                 const gnutls_datum_t*) {
    try {
        auto* db = static_cast<anti_replay_db*>(ptr);
        if (!db || !key) return GNUTLS_E_DB_ENTRY_EXISTS;
        std::string k(reinterpret_cast<const char*>(key->data), key->size);
        return db->add(k, expires, std::time(nullptr)) ? 0 : GNUTLS_E_DB_ENTRY_EXISTS;
    } catch (...) {
        return GNUTLS_E_DB_ENTRY_EXISTS; // out of memory: no early data, the handshake goes on
    }
}

int quic_tls_context::ticket_hook(gnutls_session_t session, unsigned htype, unsigned when,
                                  unsigned incoming, const gnutls_datum_t*) {
    // The message itself is not given whole here (post-handshake messages reach the hook
    // after parsing): its terms come from the connection's CRYPTO stream (ticket_seen).
    if (htype != GNUTLS_HANDSHAKE_NEW_SESSION_TICKET || when != GNUTLS_HOOK_POST || !incoming)
        return 0;
    if (auto* link = static_cast<session_link*>(gnutls_session_get_ptr(session)))
        link->ticket.pending = true; // processed: gnutls_session_get_data2 holds it now
    return 0;
}

std::shared_ptr<quic_tls_context> quic_tls_context::create(const quic_settings& s,
                                                           sdk::flow_error& err) {
    std::shared_ptr<quic_tls_context> c(new quic_tls_context());
    if (int rv = gnutls_certificate_allocate_credentials(&c->client_cred_); rv < 0) {
        err = tls_error("cannot allocate credentials", rv);
        return nullptr;
    }
    if (!s.ca_file.empty()) {
        const int n = gnutls_certificate_set_x509_trust_file(c->client_cred_, s.ca_file.c_str(),
                                                             GNUTLS_X509_FMT_PEM);
        if (n <= 0) {
            err = n < 0
                      ? tls_error("cannot read ca-file " + s.ca_file, n)
                      : sdk::flow_error{std::make_error_code(std::errc::invalid_argument),
                                        "quic: ca-file " + s.ca_file + " holds no PEM certificate"};
            return nullptr;
        }
    } else if (int rv = gnutls_certificate_set_x509_system_trust(c->client_cred_); rv < 0) {
        err = tls_error("cannot load the system trust store", rv);
        return nullptr;
    }
    gnutls_certificate_set_verify_function(c->client_cred_, &quic_tls_context::verify_callback);
    if (!s.cert_file.empty()) {
        if (int rv = gnutls_certificate_allocate_credentials(&c->server_cred_); rv < 0) {
            err = tls_error("cannot allocate credentials", rv);
            return nullptr;
        }
        if (int rv = gnutls_certificate_set_x509_key_file(c->server_cred_, s.cert_file.c_str(),
                                                          s.key_file.c_str(), GNUTLS_X509_FMT_PEM);
            rv < 0) {
            err = tls_error("cannot load cert-file " + s.cert_file + " with key-file " + s.key_file,
                            rv);
            return nullptr;
        }
    }
    c->client_tickets_ = s.session_tickets;
    if (c->server_cred_ && s.session_tickets) {
        if (int rv = gnutls_session_ticket_key_generate(&c->ticket_key_); rv < 0) {
            err = tls_error("cannot generate a session ticket key", rv);
            return nullptr;
        }
        c->server_tickets_ = true;
        c->server_early_ = s.early_data_for(sdk::role::server);
        if (c->server_early_) {
            if (int rv = gnutls_anti_replay_init(&c->anti_replay_); rv < 0) {
                err = tls_error("cannot set up anti-replay", rv);
                return nullptr;
            }
            gnutls_anti_replay_set_window(c->anti_replay_,
                                          static_cast<unsigned>(s.anti_replay_window.count()));
            gnutls_anti_replay_set_add_function(c->anti_replay_, &quic_tls_context::replay_add);
            gnutls_anti_replay_set_ptr(c->anti_replay_, c->replay_db_.get());
        }
    }
    c->alpn_storage_ = s.alpn;
    for (auto& a : c->alpn_storage_)
        c->alpn_.push_back(
            {reinterpret_cast<unsigned char*>(a.data()), static_cast<unsigned>(a.size())});
    return c;
}

gnutls_session_t quic_tls_context::new_session(sdk::role side, session_link& link,
                                               const std::string& sni, bool early,
                                               sdk::flow_error& err,
                                               const std::vector<std::string>* alpn) const {
    gnutls_session_t s = nullptr;
    const bool client = side == sdk::role::client;
    unsigned flags = (client ? GNUTLS_CLIENT : GNUTLS_SERVER) | GNUTLS_NO_END_OF_EARLY_DATA;
    // Servers send their ticket at handshake completion themselves (quic_connection), as
    // ngtcp2's examples do.
    if (!client) flags |= GNUTLS_NO_AUTO_SEND_TICKET;
    if (client ? early : server_early_) flags |= GNUTLS_ENABLE_EARLY_DATA;
    if (int rv = gnutls_init(&s, flags); rv < 0) {
        err = tls_error("cannot create a TLS session", rv);
        return nullptr;
    }
    auto fail = [&](const std::string& what, int rv) {
        err = tls_error(what, rv);
        gnutls_deinit(s);
        return nullptr;
    };
    if (int rv = gnutls_priority_set_direct(s, priority, nullptr); rv < 0)
        return fail("cannot set the TLS priorities", rv);
    const int rv = client ? ngtcp2_crypto_gnutls_configure_client_session(s)
                          : ngtcp2_crypto_gnutls_configure_server_session(s);
    if (rv != 0) return fail("cannot set the TLS session up for QUIC", GNUTLS_E_INTERNAL_ERROR);
    gnutls_session_set_ptr(s, &link);
    if (int r =
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, client ? client_cred_ : server_cred_);
        r < 0)
        return fail("cannot set credentials", r);
    // A client insists on a protocol from its list; a server picks by its own order and refuses
    // a client that offers none of its protocols (no_application_protocol alert).
    const unsigned alpn_flags =
        GNUTLS_ALPN_MANDATORY |
        (client ? 0u : static_cast<unsigned>(GNUTLS_ALPN_SERVER_PRECEDENCE));
    std::vector<gnutls_datum_t> own;
    if (alpn)
        for (const auto& a : *alpn)
            own.push_back({reinterpret_cast<unsigned char*>(const_cast<char*>(a.data())),
                           static_cast<unsigned>(a.size())});
    const auto& protocols = alpn ? own : alpn_;
    if (int r = gnutls_alpn_set_protocols(s, protocols.data(),
                                          static_cast<unsigned>(protocols.size()), alpn_flags);
        r < 0)
        return fail("cannot set ALPN", r);
    if (client && !sni.empty()) {
        if (int r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni.data(), sni.size()); r < 0)
            return fail("cannot use '" + sni + "' as server name", r);
    }
    if (link.keylog) gnutls_session_set_keylog_function(s, &keylog_line);
    if (client && client_tickets_)
        gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST,
                                           &quic_tls_context::ticket_hook);
    if (!client && server_tickets_) {
        if (int r = gnutls_session_ticket_enable_server(s, &ticket_key_); r < 0)
            return fail("cannot enable session tickets", r);
        if (server_early_) {
            // RFC 9001 4.6.1: in QUIC the ticket's max_early_data_size must be 0xffffffff.
            gnutls_record_set_max_early_data_size(s, 0xffffffffu);
            gnutls_anti_replay_enable(s, anti_replay_);
        }
    }
    return s;
}

int quic_tls_context::verify_callback(gnutls_session_t session) {
    auto* link = static_cast<session_link*>(gnutls_session_get_ptr(session));
    if (!link || !link->verify) return -1;
    return check_peer(session, *link->verify) ? 0 : -1;
}

std::string spki_pin(const gnutls_datum_t& der_cert) {
    gnutls_x509_crt_t crt = nullptr;
    gnutls_pubkey_t key = nullptr;
    std::string out;
    if (gnutls_x509_crt_init(&crt) < 0) return out;
    if (gnutls_x509_crt_import(crt, &der_cert, GNUTLS_X509_FMT_DER) >= 0 &&
        gnutls_pubkey_init(&key) >= 0) {
        gnutls_datum_t spki{};
        if (gnutls_pubkey_import_x509(key, crt, 0) >= 0 &&
            gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &spki) >= 0) {
            unsigned char digest[32];
            if (gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, digest) >= 0) {
                const gnutls_datum_t d{digest, sizeof digest};
                gnutls_datum_t b64{};
                if (gnutls_base64_encode2(&d, &b64) >= 0) {
                    out.assign(reinterpret_cast<const char*>(b64.data), b64.size);
                    gnutls_free(b64.data);
                }
            }
            gnutls_free(spki.data);
        }
        gnutls_pubkey_deinit(key);
    }
    gnutls_x509_crt_deinit(crt);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\0'))
        out.pop_back();
    return out;
}

bool check_peer(gnutls_session_t session, verify_state& st) {
    unsigned count = 0;
    const gnutls_datum_t* certs = gnutls_certificate_get_peers(session, &count);
    if (!certs || count == 0) {
        st.failure = "certificate verify failed: the server sent no certificate";
        return false;
    }
    if (st.check_chain) {
        gnutls_x509_crt_t leaf = nullptr;
        if (gnutls_x509_crt_init(&leaf) < 0) {
            st.failure = "certificate verify failed: out of memory";
            return false;
        }
        struct leaf_guard {
            gnutls_x509_crt_t c;
            ~leaf_guard() { gnutls_x509_crt_deinit(c); }
        } guard{leaf};
        if (gnutls_x509_crt_import(leaf, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
            st.failure = "certificate verify failed: the server's certificate cannot be parsed";
            return false;
        }
        const std::string where = " (subject " + dn_of(leaf) + ")";
        unsigned status = 0;
        if (int rv = gnutls_certificate_verify_peers2(session, &status); rv < 0) {
            st.failure = std::string("certificate verify failed: ") + gnutls_strerror(rv) + where;
            return false;
        }
        if (status != 0) {
            std::string why;
            if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
                why = "untrusted: the issuing CA is not trusted (ca-file or the system store)";
            else if (status & GNUTLS_CERT_EXPIRED)
                why = "the certificate has expired";
            else if (status & GNUTLS_CERT_NOT_ACTIVATED)
                why = "the certificate is not valid yet";
            else if (status & GNUTLS_CERT_REVOKED)
                why = "the certificate was revoked";
            else if (status & GNUTLS_CERT_SIGNER_NOT_CA)
                why = "untrusted: the certificate's issuer is not a CA";
            else
                why = status_text(status);
            st.failure = "certificate verify failed: " + why + where;
            return false;
        }
        bool name_ok = false;
        if (st.expected_is_address) {
            boost::system::error_code ec;
            const auto a = boost::asio::ip::make_address(st.expected_name, ec);
            if (!ec && a.is_v4()) {
                const auto b = a.to_v4().to_bytes();
                name_ok = gnutls_x509_crt_check_ip(leaf, b.data(), b.size(), 0) != 0;
            } else if (!ec) {
                const auto b = a.to_v6().to_bytes();
                name_ok = gnutls_x509_crt_check_ip(leaf, b.data(), b.size(), 0) != 0;
            }
        } else {
            name_ok = gnutls_x509_crt_check_hostname2(leaf, st.expected_name.c_str(), 0) != 0;
        }
        if (!name_ok) {
            st.failure = std::string("certificate verify failed: ") +
                         (st.expected_is_address ? "IP address" : "hostname") +
                         " mismatch: the certificate is not valid for '" + st.expected_name + "'" +
                         where;
            return false;
        }
    }
    if (!st.pins.empty()) {
        const auto pin = spki_pin(certs[0]);
        bool match = false;
        for (const auto& p : st.pins)
            match = match || p == pin;
        if (!match) {
            st.failure = "pinned key mismatch: the peer's public key (sha256/" + pin +
                         ") matches no pin-sha256 entry";
            return false;
        }
    }
    return true;
}

} // namespace post::plugins::quic
