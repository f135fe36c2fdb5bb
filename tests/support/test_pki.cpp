#include "test_pki.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>

namespace post::test {
namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const { X509_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

[[noreturn]] void fail(const std::string& what) {
    char buf[256] = "";
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    throw std::runtime_error("test PKI: " + what + ": " + buf);
}

pkey_ptr new_key() {
    pkey_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!k) fail("key generation");
    return k;
}

struct cert_spec {
    std::string cn;
    std::string san; ///< "DNS:localhost,IP:127.0.0.1"; empty = none
    bool ca = false;
    bool client = false;
    long not_before = -3600;          ///< Seconds from now.
    long not_after = 30L * 24 * 3600; ///< Seconds from now.
};

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) fail("extension " + value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/// Issues a certificate for `key`; self-signed when `issuer` is null.
x509_ptr issue(const cert_spec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
    static std::mt19937_64 serials{std::random_device{}()};
    x509_ptr cert(X509_new());
    if (!cert) fail("X509_new");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()),
                           static_cast<std::int64_t>(serials() >> 2));
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
    X509* signer = issuer ? issuer : cert.get();
    X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
    add_ext(cert.get(), signer, NID_subject_key_identifier, "hash");
    add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
    if (spec.ca) {
        add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
        add_ext(cert.get(), signer, NID_ext_key_usage, spec.client ? "clientAuth" : "serverAuth");
    }
    if (!spec.san.empty()) add_ext(cert.get(), signer, NID_subject_alt_name, spec.san);
    if (!X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256())) fail("signing");
    return cert;
}

void write_cert(const std::filesystem::path& p, X509* cert) {
    std::FILE* f = std::fopen(p.c_str(), "w");
    if (!f || !PEM_write_X509(f, cert)) fail("writing " + p.string());
    std::fclose(f);
}

void write_key(const std::filesystem::path& p, EVP_PKEY* key) {
    std::FILE* f = std::fopen(p.c_str(), "w");
    if (!f || !PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr))
        fail("writing " + p.string());
    std::fclose(f);
}

} // namespace

test_pki::test_pki() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() /
           ("post-tls-pki-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir_);

    auto ca_key = new_key();
    auto ca_cert = issue({"Post Sockets Test CA", "", true}, ca_key.get(), nullptr, nullptr);
    auto other_key = new_key();
    auto other_cert = issue({"Some Other CA", "", true}, other_key.get(), nullptr, nullptr);
    write_cert(dir_ / "ca.pem", ca_cert.get());
    write_cert(dir_ / "other-ca.pem", other_cert.get());
    ca = (dir_ / "ca.pem").string();
    other_ca = (dir_ / "other-ca.pem").string();

    auto leaf = [&](const std::string& name, const cert_spec& spec, X509* issuer,
                    EVP_PKEY* issuer_key) {
        auto key = new_key();
        auto cert = issue(spec, key.get(), issuer, issuer_key);
        cert_files out{(dir_ / (name + ".pem")).string(), (dir_ / (name + ".key")).string()};
        write_cert(out.cert, cert.get());
        write_key(out.key, key.get());
        return out;
    };
    const std::string localhost = "DNS:localhost,IP:127.0.0.1";
    server = leaf("server", {"localhost", localhost}, ca_cert.get(), ca_key.get());
    wrong_name =
        leaf("wrong-name", {"wrong.example", "DNS:wrong.example"}, ca_cert.get(), ca_key.get());
    expired = leaf("expired", {"localhost", localhost, false, false, -3L * 24 * 3600, -24L * 3600},
                   ca_cert.get(), ca_key.get());
    self_signed = leaf("self-signed", {"localhost", localhost}, nullptr, nullptr);
    foreign = leaf("foreign", {"localhost", localhost}, other_cert.get(), other_key.get());
    client = leaf("client", {"test client", "", false, true}, ca_cert.get(), ca_key.get());
}

test_pki::~test_pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

std::string pin_of(const std::string& cert_file) {
    std::FILE* f = std::fopen(cert_file.c_str(), "r");
    if (!f) fail("opening " + cert_file);
    x509_ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!cert) fail("reading " + cert_file);
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(X509_get0_pubkey(cert.get()), &der);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_Digest(der, static_cast<std::size_t>(len), digest, &dlen, EVP_sha256(), nullptr);
    OPENSSL_free(der);
    unsigned char b64[64];
    const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(dlen));
    return std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(n));
}

} // namespace post::test
