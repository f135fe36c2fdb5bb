// The sctp layer's option schema and the settings parsed from it.
#pragma once

#include <post/sdk.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace post::plugins::sctp {

inline constexpr std::string_view layer_name = "sctp";

struct sctp_settings {
    /// SCTP port inside the association: the server listens on it, the client connects to it
    /// (and binds it locally too, as WebRTC does). usrsctp's echo_server uses 7, tsctp 5001.
    std::uint16_t port = 5000;
    std::size_t max_message_size = 16 * 1024 * 1024;
    std::uint16_t streams = 16; ///< Outgoing streams asked for and incoming streams allowed.
    std::chrono::milliseconds handshake_timeout{10000};
    sdk::log_sink* log = nullptr;

    void write_log(sdk::log_level level, std::string_view text) const noexcept {
        if (log) log->log(level, layer_name, text);
    }
};

std::span<const sdk::option_spec> option_schema() noexcept;

/// Validated options to settings; false and `err` (naming the option) when a value is out of
/// range.
bool parse_settings(const sdk::options& opts, sctp_settings& s, sdk::flow_error& err);

} // namespace post::plugins::sctp
