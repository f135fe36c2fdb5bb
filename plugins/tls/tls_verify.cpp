#include "tls_verify.hpp"

#include "tls_context.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

#include <memory>

namespace post::plugins::tls {
namespace {

std::string name_text(const X509_NAME* name) {
    if (!name) return "?";
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "?";
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string where(const verify_state& st) {
    return " (depth " + std::to_string(st.depth) + ", subject " + st.subject + ")";
}

} // namespace

std::string spki_pin(X509* cert) {
    if (!cert) return {};
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    if (len <= 0) return {};
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    const bool ok =
        EVP_Digest(der, static_cast<std::size_t>(len), digest, &dlen, EVP_sha256(), nullptr) == 1;
    OPENSSL_free(der);
    if (!ok) return {};
    unsigned char b64[64];
    const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(dlen));
    return std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(n));
}

int verify_certificate(X509_STORE_CTX* store, void*) {
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* conn = ssl ? tls_connection::from(ssl) : nullptr;
    if (!conn) return X509_verify_cert(store); // not one of ours: OpenSSL's default behaviour
    verify_state& st = conn->verification();
    if (st.check_chain && X509_verify_cert(store) <= 0) {
        st.failed = true;
        st.error = X509_STORE_CTX_get_error(store);
        st.depth = X509_STORE_CTX_get_error_depth(store);
        X509* bad = X509_STORE_CTX_get_current_cert(store);
        if (!bad) bad = X509_STORE_CTX_get0_cert(store);
        st.subject = bad ? name_text(X509_get_subject_name(bad)) : "?";
        return 0;
    }
    if (!st.pins.empty()) {
        st.peer_pin = spki_pin(X509_STORE_CTX_get0_cert(store));
        bool match = false;
        for (const auto& p : st.pins)
            match = match || p == st.peer_pin;
        if (!match) {
            st.failed = true;
            st.pin_mismatch = true;
            X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
        }
    }
    // Without chain checking (verify-peer: false) nothing else may fail the handshake.
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
}

std::string describe_verify_failure(const verify_state& st, const SSL* ssl) {
    if (st.pin_mismatch)
        return "pinned key mismatch: the peer's public key (sha256/" + st.peer_pin +
               ") matches no pin-sha256 entry";
    verify_state s = st;
    if (!s.failed) {
        s.error = static_cast<int>(SSL_get_verify_result(ssl));
        s.depth = 0;
        X509* peer = SSL_get0_peer_certificate(ssl);
        s.subject = peer ? name_text(X509_get_subject_name(peer)) : "?";
    }
    const std::string prefix = "certificate verify failed: ";
    switch (s.error) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return prefix + "hostname mismatch: the certificate is not valid for '" + s.expected_name +
               "'" + where(s);
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return prefix + "IP address mismatch: the certificate is not valid for '" +
               s.expected_name + "'" + where(s);
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        return prefix + "self-signed certificate (not issued by a trusted CA)" + where(s);
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        return prefix + "self-signed certificate in the chain (its root is not trusted)" + where(s);
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        return prefix + X509_verify_cert_error_string(s.error) +
               ": the issuing CA is not trusted (ca-file or the system store)" + where(s);
    default:
        return prefix + X509_verify_cert_error_string(s.error) + where(s);
    }
}

bool expect_peer_identity(SSL* ssl, verify_state& st, const std::string& name, bool is_address) {
    st.expected_name = name;
    st.expected_is_address = is_address;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_address) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
    return X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) == 1;
}

} // namespace post::plugins::tls

namespace post::plugins::tls {

std::optional<std::string> set_up_client_identity(SSL* ssl, verify_state& st, const tls_settings& s,
                                                  const sdk::open_params& p, std::string_view layer,
                                                  const std::function<void(std::string)>& warn,
                                                  sdk::flow_error& err) {
    std::string name = s.server_name.empty() ? p.host_name : s.server_name;
    bool is_address = false;
    if (name.empty()) {
        name = p.remote.address.to_string();
        is_address = true;
    } else {
        boost::system::error_code ec;
        boost::asio::ip::make_address(name, ec);
        is_address = !ec;
    }
    const std::string prefix = std::string(layer) + ": ";
    if (!is_address && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
        err = {std::make_error_code(std::errc::invalid_argument),
               prefix + openssl_error_text("cannot use '" + name + "' as server name")};
        return std::nullopt;
    }
    if (s.verify_peer) {
        if (!expect_peer_identity(ssl, st, name, is_address)) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   prefix + openssl_error_text("cannot verify against '" + name + "'")};
            return std::nullopt;
        }
    } else {
        st.expected_name = name;
        warn("certificate verification is OFF (verify-peer: false): the server at " +
             p.remote.to_string() +
             " is not authenticated, anyone on the path can read and change the data");
    }
    return name;
}

} // namespace post::plugins::tls
