// The quic layer's option schema and the settings parsed from it, checked once when the layer is
// created.
#pragma once

#include <post/sdk.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace post::plugins::quic {

inline constexpr std::string_view layer_name = "quic";

/// Our own ALPN protocol id: messages framed on bidirectional streams (docs/quic.md).
inline constexpr std::string_view default_alpn = "post";

struct quic_settings {
    // TLS (GnuTLS), with the tls layer's option names and rules.
    bool verify_peer = true;
    std::string ca_file;
    std::vector<std::string> pins; ///< Base64 SHA-256 of SubjectPublicKeyInfo, normalised.
    std::string cert_file;
    std::string key_file;
    std::string server_name;
    std::vector<std::string> alpn{std::string(default_alpn)};
    std::string keylog;   ///< The option only; empty leaves $SSLKEYLOGFILE to GnuTLS itself.
    std::string qlog_dir; ///< Empty: no qlog. Exists (created at parse time) otherwise.

    // QUIC
    std::size_t max_message_size = 16 * 1024 * 1024;
    std::chrono::milliseconds idle_timeout{30000};
    std::chrono::milliseconds handshake_timeout{10000};
    std::uint64_t max_streams = 100;           ///< Peer-opened bidirectional streams at once.
    std::uint64_t stream_window = 1 << 20;     ///< Initial per-stream receive window.
    std::uint64_t connection_window = 4 << 20; ///< Initial connection receive window.
    /// RFC 9221: offer DATAGRAM frames (max_datagram_frame_size) for unreliable messages.
    bool datagrams = true;
    /// Received datagrams kept while no stream flow is ready to take them (oldest dropped).
    std::size_t datagram_queue = 256;
    /// Connection migration (docs/quic.md "Migration"). False: a server sends
    /// disable_active_migration, a client does not move its connections.
    bool migration = true;

    // 0-RTT (docs/quic.md "0-RTT"), with the tls layer's option names.
    bool session_tickets = true; ///< Clients keep tickets in the association; servers issue them.
    std::optional<bool> early_data;                      ///< Unset: clients true, servers false.
    std::chrono::milliseconds anti_replay_window{10000}; ///< Server: ClientHellos remembered.

    bool early_data_for(sdk::role side) const {
        return early_data.value_or(side == sdk::role::client);
    }

    sdk::log_sink* log = nullptr;

    void write_log(sdk::log_level level, std::string_view text) const noexcept {
        if (log) log->log(level, layer_name, text);
    }
};

std::span<const sdk::option_spec> option_schema() noexcept;

/// Validated options to settings; false and `err` (naming the option) on a bad value.
bool parse_settings(const sdk::options& opts, quic_settings& s, sdk::flow_error& err);

} // namespace post::plugins::quic
