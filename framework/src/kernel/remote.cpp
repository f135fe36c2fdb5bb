#include <post/remote.hpp>

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace post {
namespace {

bool fail(std::string* why, std::string text) {
    if (why) *why = std::move(text);
    return false;
}

bool valid_scheme(std::string_view s) {
    if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
    });
}

bool valid_host_name(std::string_view h) {
    if (h.empty() || h.size() > 253) return false;
    return std::all_of(h.begin(), h.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
    });
}

bool parse_port(std::string_view text, std::uint16_t& port, std::string* why) {
    if (text.empty()) return fail(why, "empty port");
    if (text.size() > 5 || !std::all_of(text.begin(), text.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
        }))
        return fail(why, "port '" + std::string(text) + "' is not a number from 1 to 65535");
    unsigned value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value == 0 || value > 65535)
        return fail(why, "port " + std::string(text) + " is out of range (1-65535)");
    port = static_cast<std::uint16_t>(value);
    return true;
}

/// Split "host[:port]" or "[v6][:port]" into host and port text.
bool split_authority(std::string_view auth, std::string& host, std::string_view& port_text,
                     bool& has_port, std::string* why) {
    has_port = false;
    if (auth.empty()) return fail(why, "missing host");
    if (auth.find('@') != std::string_view::npos)
        return fail(why, "user information ('user@host') is not supported");
    if (auth.front() == '[') {
        auto close = auth.find(']');
        if (close == std::string_view::npos) return fail(why, "missing ']' after IPv6 address");
        host = std::string(auth.substr(1, close - 1));
        boost::system::error_code ec;
        auto a = boost::asio::ip::make_address_v6(host, ec);
        (void)a;
        if (ec) return fail(why, "'" + host + "' is not an IPv6 address");
        auto rest = auth.substr(close + 1);
        if (rest.empty()) return true;
        if (rest.front() != ':') return fail(why, "unexpected text after ']'");
        port_text = rest.substr(1);
        has_port = true;
        return true;
    }
    auto colon = auth.rfind(':');
    if (colon != std::string_view::npos && auth.find(':') != colon)
        return fail(why, "IPv6 addresses must be written in brackets, e.g. [::1]:9000");
    if (colon == std::string_view::npos) {
        host = std::string(auth);
    } else {
        host = std::string(auth.substr(0, colon));
        port_text = auth.substr(colon + 1);
        has_port = true;
    }
    if (!valid_host_name(host)) return fail(why, "'" + host + "' is not a valid host name");
    return true;
}

} // namespace

std::uint16_t default_port(std::string_view scheme) noexcept {
    if (scheme == "http") return 80;
    if (scheme == "https" || scheme == "tls" || scheme == "quic") return 443;
    if (scheme == "sctp") return 9899;
    return 0;
}

std::optional<url> url::parse(std::string_view text, std::string* why) {
    url u;
    if (text.empty()) {
        fail(why, "empty address");
        return std::nullopt;
    }
    if (text.size() > 2048) {
        fail(why, "address longer than 2048 characters");
        return std::nullopt;
    }
    std::string_view rest = text;
    if (auto sep = rest.find("://"); sep != std::string_view::npos) {
        auto scheme = rest.substr(0, sep);
        if (!valid_scheme(scheme)) {
            fail(why, "'" + std::string(scheme) + "' is not a valid URL scheme");
            return std::nullopt;
        }
        u.scheme.resize(scheme.size());
        std::transform(scheme.begin(), scheme.end(), u.scheme.begin(),
                       [](char c) { return static_cast<char>(std::tolower(c)); });
        rest = rest.substr(sep + 3);
    }
    auto slash = rest.find('/');
    auto authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) u.path = std::string(rest.substr(slash));
    std::string_view port_text;
    bool has_port = false;
    if (!split_authority(authority, u.host, port_text, has_port, why)) return std::nullopt;
    if (has_port) {
        if (!parse_port(port_text, u.port, why)) return std::nullopt;
    } else {
        u.port = default_port(u.scheme);
        if (u.port == 0) {
            fail(why, u.scheme.empty()
                          ? "missing port (expected HOST:PORT)"
                          : "missing port: scheme '" + u.scheme + "' has no default port");
            return std::nullopt;
        }
    }
    return u;
}

std::string url::to_string() const {
    std::string out;
    if (!scheme.empty()) out = scheme + "://";
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    out += ":" + std::to_string(port);
    out += path;
    return out;
}

remote remote::from_url(std::string_view text) {
    std::string why;
    auto u = url::parse(text, &why);
    if (!u) throw std::invalid_argument("invalid remote '" + std::string(text) + "': " + why);
    remote r;
    r.url_ = std::move(*u);
    return r;
}

remote remote::from_host_port(std::string host, std::uint16_t port) {
    if (host.empty()) throw std::invalid_argument("invalid remote: empty host");
    if (port == 0) throw std::invalid_argument("invalid remote: port 0");
    remote r;
    r.url_.host = std::move(host);
    r.url_.port = port;
    return r;
}

remote remote::from_endpoint(const sdk::endpoint& e) {
    return from_host_port(e.address.to_string(), e.port);
}

bool remote::is_literal() const {
    boost::system::error_code ec;
    boost::asio::ip::make_address(url_.host, ec);
    return !ec;
}

std::string remote::key() const {
    auto host = url_.host;
    std::transform(host.begin(), host.end(), host.begin(),
                   [](char c) { return static_cast<char>(std::tolower(c)); });
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(url_.port);
}

local local::parse(std::string_view text) {
    local l;
    if (text.empty()) throw std::invalid_argument("empty local address");
    std::string_view host, port_text;
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("invalid local address '" + std::string(text) + "'");
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    } else {
        port_text = text;
    }
    std::string why;
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || p != port_text.data() + port_text.size() || value > 65535)
        throw std::invalid_argument("invalid port in local address '" + std::string(text) + "'");
    l.port = static_cast<std::uint16_t>(value);
    if (!host.empty() && host != "*") {
        boost::system::error_code aec;
        auto a = boost::asio::ip::make_address(std::string(host), aec);
        if (aec) {
            if (host == "localhost")
                a = boost::asio::ip::address_v4::loopback();
            else
                throw std::invalid_argument("local address '" + std::string(host) +
                                            "' is not an IP address");
        }
        l.address = a;
    }
    return l;
}

} // namespace post
