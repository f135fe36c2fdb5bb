// The far end, resolved step by step: URL -> name, port and protocol candidates -> addresses.
#pragma once

#include <post/sdk/flow.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace post {

/// A parsed URL or host:port. Parsing never touches the network.
struct url {
    std::string scheme; ///< Lower case; empty for "HOST:PORT".
    std::string host;   ///< Name or literal address, without IPv6 brackets.
    std::uint16_t port = 0;
    std::string path; ///< Including the leading '/', empty when absent.

    /// Accepts "scheme://host:port/path", "scheme://[v6]:port", "host:port", "[v6]:port".
    /// Returns nullopt and fills `why` on malformed input.
    static std::optional<url> parse(std::string_view text, std::string* why = nullptr);
    std::string to_string() const;
};

/// The default port of a known scheme, or 0.
std::uint16_t default_port(std::string_view scheme) noexcept;

class remote {
public:
    remote() = default;
    /// From a URL; throws std::invalid_argument with the reason when malformed.
    static remote from_url(std::string_view text);
    static remote from_host_port(std::string host, std::uint16_t port);
    static remote from_endpoint(const sdk::endpoint& e);

    const std::string& scheme() const noexcept { return url_.scheme; }
    const std::string& host() const noexcept { return url_.host; }
    std::uint16_t port() const noexcept { return url_.port; }
    const post::url& location() const noexcept { return url_; }
    /// The host is a literal IPv4/IPv6 address: DNS is skipped.
    bool is_literal() const;
    /// Key under which associations are kept: "host:port" (scheme-independent).
    std::string key() const;
    std::string to_string() const { return url_.to_string(); }

private:
    post::url url_;
};

/// What we are: an address and port to bind or listen on (any address when unset).
struct local {
    std::optional<boost::asio::ip::address> address;
    std::uint16_t port = 0;
    std::string interface; ///< Interface name, when the policy or the app pins one.

    static local any(std::uint16_t port) { return local{std::nullopt, port, {}}; }
    /// "HOST:PORT", "[::1]:PORT", ":PORT" or "PORT"; throws std::invalid_argument.
    static local parse(std::string_view text);
};

} // namespace post
