// Settings and small helpers shared by the TCP flow, acceptor and layer.
#pragma once

#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <post/sdk.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>

namespace post::plugins::tcp {

inline constexpr std::string_view layer_name = "tcp";

/// The layer's options, read once when the layer is created.
struct tcp_settings {
    bool nodelay = true;
    std::chrono::milliseconds keep_alive{0}; ///< 0 = off.
    bool reuse_address = true;
    int backlog = 4096;
    int notsent_lowat = 0; ///< 0 = kernel default.
    sdk::log_sink* log = nullptr;

    void write_log(sdk::log_level level, std::string_view text) const noexcept {
        if (log) log->log(level, layer_name, text);
    }
};

/// Asio reports errno values in the Boost system category; the SDK speaks std::error_code.
/// Errors of other categories (Asio's misc errors) keep their text in the reason only.
inline std::error_code to_std(const boost::system::error_code& ec) noexcept {
    if (!ec) return {};
    if (ec.category() == boost::system::system_category())
        return {ec.value(), std::system_category()};
    if (ec.category() == boost::system::generic_category())
        return {ec.value(), std::generic_category()};
    return std::make_error_code(std::errc::io_error);
}

inline boost::asio::ip::tcp::endpoint to_asio(const sdk::endpoint& e) {
    return {e.address, e.port};
}

inline sdk::endpoint to_sdk(const boost::asio::ip::tcp::endpoint& e) {
    return {e.address(), e.port()};
}

inline sdk::flow_error make_error(const boost::system::error_code& ec, std::string what) {
    return {to_std(ec), std::move(what) + ": " + ec.message()};
}

} // namespace post::plugins::tcp
