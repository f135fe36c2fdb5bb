#include "tls_settings.hpp"

#include <openssl/evp.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace post::plugins::tls {
namespace {

sdk::flow_error invalid(std::string text) {
    return {std::make_error_code(std::errc::invalid_argument), "tls: " + std::move(text)};
}

bool parse_version(const std::string& option, const std::string& v, int& out,
                   sdk::flow_error& err) {
    if (v == "tls1.2") {
        out = 0x0303;
    } else if (v == "tls1.3") {
        out = 0x0304;
    } else {
        err = invalid(option + " must be tls1.2 or tls1.3, got '" + v + "'");
        return false;
    }
    return true;
}

/// Accepts "sha256/<b64>" (the HPKP spelling) and surrounding blanks; checks the digest length.
bool normalise_pin(std::string pin, std::string& out, sdk::flow_error& err) {
    auto blank = [](unsigned char c) { return std::isspace(c) != 0; };
    pin.erase(pin.begin(), std::find_if_not(pin.begin(), pin.end(), blank));
    pin.erase(std::find_if_not(pin.rbegin(), pin.rend(), blank).base(), pin.end());
    if (pin.rfind("sha256/", 0) == 0) pin.erase(0, 7);
    // 32 bytes encode as 44 characters ending in one '='.
    unsigned char decoded[48];
    const bool shape = pin.size() == 44 && pin[43] == '=' && pin[42] != '=';
    if (!shape || EVP_DecodeBlock(decoded, reinterpret_cast<const unsigned char*>(pin.data()),
                                  static_cast<int>(pin.size())) != 33) {
        err = invalid("pin-sha256 entry '" + pin +
                      "' is not a base64 SHA-256 digest (44 characters, e.g. from `openssl x509 "
                      "-pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary "
                      "| base64`)");
        return false;
    }
    out = std::move(pin);
    return true;
}

/// Part of the cache key: a file replaced on disk (certificate rotation) gets a new context.
std::string file_stamp(const std::string& path) {
    if (path.empty()) return {};
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path + "@missing";
    return path + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + "/" + std::to_string(st.st_size);
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& e : v)
        s += std::to_string(e.size()) + ":" + e;
    return s;
}

} // namespace

std::string_view version_name(int version) noexcept {
    switch (version) {
    case 0x0303:
        return "tls1.2";
    case 0x0304:
        return "tls1.3";
    }
    return "?";
}

std::string tls_settings::canonical(sdk::role side) const {
    std::string k = side == sdk::role::client ? "client" : "server";
    k += "|verify=" + std::to_string(verify_peer);
    k += "|ca=" + file_stamp(ca_file);
    k += "|pins=" + join(pins);
    k += "|cert=" + file_stamp(cert_file);
    k += "|key=" + file_stamp(key_file);
    k += "|auth=" + std::to_string(static_cast<int>(client_auth));
    k += "|alpn=" + join(alpn);
    k += "|ver=" + std::to_string(min_version) + "-" + std::to_string(max_version);
    k += "|ciphers=" + std::to_string(ciphers.size()) + ":" + ciphers;
    k += "|suites=" + std::to_string(ciphersuites.size()) + ":" + ciphersuites;
    k += "|tickets=" + std::to_string(session_tickets);
    k += "|early=" + std::to_string(early_data_for(side)) + "/" + std::to_string(max_early_data);
    k += "|keylog=" + keylog;
    if (datagram) k += "|dtls";
    return k;
}

bool parse_settings(const sdk::options& opts, tls_settings& s, sdk::flow_error& err) {
    s.verify_peer = opts.get_or<bool>("verify-peer", true);
    s.ca_file = opts.get_or<std::string>("ca-file", "");
    for (const auto& p : opts.get_or<std::vector<std::string>>("pin-sha256", {})) {
        std::string norm;
        if (!normalise_pin(p, norm, err)) return false;
        s.pins.push_back(std::move(norm));
    }
    s.cert_file = opts.get_or<std::string>("cert-file", "");
    s.key_file = opts.get_or<std::string>("key-file", "");
    if (s.cert_file.empty() != s.key_file.empty()) {
        err = invalid(std::string(s.cert_file.empty() ? "key-file" : "cert-file") + " is set but " +
                      (s.cert_file.empty() ? "cert-file" : "key-file") +
                      " is not: set both (our certificate chain and its private key)");
        return false;
    }
    const auto auth = opts.get_or<std::string>("client-auth", "none");
    if (auth == "none") {
        s.client_auth = client_auth_mode::none;
    } else if (auth == "optional") {
        s.client_auth = client_auth_mode::optional;
    } else if (auth == "require") {
        s.client_auth = client_auth_mode::require;
    } else {
        err = invalid("client-auth must be none, optional or require, got '" + auth + "'");
        return false;
    }
    s.server_name = opts.get_or<std::string>("server-name", "");
    s.alpn = opts.get_or<std::vector<std::string>>("alpn", {});
    for (const auto& a : s.alpn) {
        if (a.empty() || a.size() > 255) {
            err = invalid("alpn entries must be 1 to 255 bytes long, got '" + a + "'");
            return false;
        }
    }
    if (!parse_version("min-version", opts.get_or<std::string>("min-version", "tls1.2"),
                       s.min_version, err) ||
        !parse_version("max-version", opts.get_or<std::string>("max-version", "tls1.3"),
                       s.max_version, err))
        return false;
    if (s.min_version > s.max_version) {
        err = invalid("min-version is above max-version");
        return false;
    }
    s.ciphers = opts.get_or<std::string>("ciphers", "");
    s.ciphersuites = opts.get_or<std::string>("ciphersuites", "");
    s.session_tickets = opts.get_or<bool>("session-tickets", true);
    s.early_data = opts.get<bool>("early-data");
    s.max_early_data = opts.get_or<std::int64_t>("max-early-data", 16384);
    if (s.max_early_data < 0 || s.max_early_data > 0xffffffffLL) {
        err = invalid("max-early-data must be between 0 and 4294967295, got " +
                      std::to_string(s.max_early_data));
        return false;
    }
    s.keylog = opts.get_or<std::string>("keylog", "");
    if (s.keylog.empty())
        if (const char* env = std::getenv("SSLKEYLOGFILE")) s.keylog = env;
    return true;
}

sdk::flow_error no_server_certificate(std::string_view layer) {
    return {std::make_error_code(std::errc::invalid_argument),
            std::string(layer) + ": the server role needs a certificate: set the cert-file and "
                                 "key-file options (cert-file is missing)"};
}

} // namespace post::plugins::tls
