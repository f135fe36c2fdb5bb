// Settings and small helpers shared by the TCP flow, acceptor and layer.
#pragma once

#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <post/sdk.hpp>
#include <post/sdk/asio.hpp>

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
    int notsent_lowat = 0;  ///< 0 = kernel default.
    int receive_buffer = 0; ///< SO_RCVBUF before connect/listen; 0 = kernel autotuning.
    /// TCP Fast Open: idempotent first bytes ride in the SYN (client); listeners accept them.
    bool fast_open = false;
    sdk::log_sink* log = nullptr;

    void write_log(sdk::log_level level, std::string_view text) const noexcept {
        if (log) log->log(level, layer_name, text);
    }
};

// Shared conversions from the SDK (post/sdk/asio.hpp), bound to tcp.
using sdk::to_sdk;
using sdk::to_std;

inline boost::asio::ip::tcp::endpoint to_asio(const sdk::endpoint& e) {
    return sdk::to_asio<boost::asio::ip::tcp>(e);
}

inline sdk::flow_error make_error(const boost::system::error_code& ec, std::string what) {
    return sdk::make_flow_error(ec, std::move(what));
}

} // namespace post::plugins::tcp
