// A small PKI for TLS tests, made with the OpenSSL C API into a fresh temporary folder when a
// test starts (nothing generated is checked in): a CA, a server certificate for localhost and
// 127.0.0.1, and the bad ones each verification check must catch.
#pragma once

#include <filesystem>
#include <string>

namespace post::test {

/// A certificate and its private key, as PEM files.
struct cert_files {
    std::string cert;
    std::string key;
};

class test_pki {
public:
    /// Generates everything under a new folder in the system temp dir. Throws std::runtime_error
    /// (with OpenSSL's reason) when generation fails.
    test_pki();
    ~test_pki(); ///< Removes the folder.
    test_pki(const test_pki&) = delete;
    test_pki& operator=(const test_pki&) = delete;

    const std::filesystem::path& dir() const { return dir_; }

    std::string ca;         ///< The CA certificate (trust anchor, PEM).
    std::string other_ca;   ///< A second CA nobody trusts.
    cert_files server;      ///< CN=localhost, SAN DNS:localhost, IP:127.0.0.1; signed by `ca`.
    cert_files wrong_name;  ///< CN=wrong.example, SAN DNS:wrong.example; signed by `ca`.
    cert_files expired;     ///< localhost, expired yesterday; signed by `ca`.
    cert_files self_signed; ///< localhost, self-signed.
    cert_files foreign;     ///< localhost, signed by `other_ca`.
    cert_files client;      ///< CN=test client, clientAuth; signed by `ca`.

private:
    std::filesystem::path dir_;
};

/// The pin-sha256 value of a PEM certificate file's public key.
std::string pin_of(const std::string& cert_file);

} // namespace post::test
