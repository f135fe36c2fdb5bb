#include "quic_settings.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iterator>
#include <string>

namespace post::plugins::quic {

namespace {

constexpr std::int64_t max_message_limit = std::int64_t{1} << 30;

constexpr sdk::option_spec schema[] = {
    {"verify-peer", sdk::option_type::boolean,
     "Verify the server's certificate chain (ca-file, else the system trust store) and that it "
     "is valid for the server name or address; false disables authentication and logs a "
     "warning at every connection",
     "true"},
    {"ca-file", sdk::option_type::string,
     "PEM bundle of trusted CAs, used instead of the system trust store", ""},
    {"pin-sha256", sdk::option_type::string_list,
     "Base64 SHA-256 digests of accepted server public keys (SubjectPublicKeyInfo); when set, "
     "the server's key must match one, in addition to the chain check",
     ""},
    {"cert-file", sdk::option_type::string,
     "PEM certificate chain we present (required for the server role)", ""},
    {"key-file", sdk::option_type::string, "PEM private key of cert-file", ""},
    {"server-name", sdk::option_type::string,
     "Name sent as SNI and verified in the server's certificate, instead of the host name the "
     "application asked for",
     ""},
    {"alpn", sdk::option_type::string_list,
     "ALPN protocols: offered by a client, accepted by a server in this order of preference; "
     "QUIC requires one both sides know. 'post' is this library's own protocol (messages framed "
     "on streams)",
     "post"},
    {"keylog", sdk::option_type::string,
     "Append TLS secrets to this file in NSS key log format (for Wireshark); empty = GnuTLS "
     "honours $SSLKEYLOGFILE itself. Anyone with the file can decrypt the traffic",
     ""},
    {"qlog-dir", sdk::option_type::string,
     "Write a qlog trace of every connection into this folder (created if missing), one file "
     "per connection: <original destination connection id>_<client|server>.sqlog, for qvis "
     "and other qlog tools; empty = no qlog",
     ""},
    {"max-message-size", sdk::option_type::integer,
     "Largest message a send accepts and a receive reassembles; a larger length announced by "
     "the peer closes the connection with an error",
     "16777216", 1, max_message_limit},
    {"idle-timeout", sdk::option_type::duration,
     "Close the connection when nothing arrives from the peer for this long (the smaller of "
     "both sides' values applies)",
     "30s"},
    {"handshake-timeout", sdk::option_type::duration,
     "Give up a handshake not complete after this long; also ends accepted flows whose peer "
     "never sends a valid Initial",
     "10s"},
    {"max-streams", sdk::option_type::integer,
     "Streams of each kind (bidirectional, unidirectional) the peer may open at once (QUIC "
     "MAX_STREAMS, renewed as they close)",
     "100", 1, 1 << 20},
    {"stream-window", sdk::option_type::integer,
     "Initial receive window per stream in bytes (extended as messages are consumed)", "1048576",
     1024, std::int64_t{1} << 30},
    {"connection-window", sdk::option_type::integer,
     "Initial receive window of the connection in bytes (extended as messages are consumed)",
     "4194304", 1024, std::int64_t{1} << 32},
    {"datagrams", sdk::option_type::boolean,
     "Offer QUIC DATAGRAM frames (RFC 9221): messages sent with reliable=false travel in one "
     "DATAGRAM frame each when the peer offers them too; false makes such sends fail",
     "true"},
    {"datagram-queue", sdk::option_type::integer,
     "Received datagrams kept while no stream flow is ready to take them; beyond this the "
     "oldest are dropped",
     "256", 1, 1 << 20},
    {"migration", sdk::option_type::boolean,
     "Connection migration (RFC 9000 9). Client: move a connection to another local address "
     "when asked or when its address goes away. Server: let clients move (false sends "
     "disable_active_migration, and clients keep their address)",
     "true"},
    {"session-tickets", sdk::option_type::boolean,
     "Resume connections with TLS 1.3 tickets: clients keep the ticket and the server's "
     "transport parameters in the association; servers issue tickets",
     "true"},
    {"early-data", sdk::option_type::boolean,
     "0-RTT. Client (default true): send idempotent messages on the first stream in 0-RTT "
     "packets when a stored ticket allows it. Server (default false): accept 0-RTT data "
     "(replayable by an attacker: only for idempotent requests; see anti-replay-window)",
     ""},
    {"anti-replay-window", sdk::option_type::duration,
     "Server with early-data: ClientHellos are remembered this long and a repeated one gets no "
     "0-RTT, nor one whose ticket age is off by more than this",
     "10s"},
};

sdk::flow_error bad(std::string text) {
    return {std::make_error_code(std::errc::invalid_argument), "quic: " + std::move(text)};
}

bool is_base64(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
}

/// Accepts "sha256/<b64>" (the HPKP spelling) and surrounding blanks; checks it is the base64
/// of 32 bytes (44 characters ending in one '=').
bool normalise_pin(std::string pin, std::string& out, sdk::flow_error& err) {
    auto blank = [](unsigned char c) { return std::isspace(c) != 0; };
    pin.erase(pin.begin(), std::find_if_not(pin.begin(), pin.end(), blank));
    pin.erase(std::find_if_not(pin.rbegin(), pin.rend(), blank).base(), pin.end());
    if (pin.rfind("sha256/", 0) == 0) pin.erase(0, 7);
    const bool shape =
        pin.size() == 44 && pin[43] == '=' && std::all_of(pin.begin(), pin.begin() + 43, is_base64);
    if (!shape) {
        err = bad("pin-sha256 entry '" + pin +
                  "' is not a base64 SHA-256 digest (44 characters, e.g. from `openssl x509 "
                  "-pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | "
                  "base64`)");
        return false;
    }
    out = std::move(pin);
    return true;
}

} // namespace

std::span<const sdk::option_spec> option_schema() noexcept {
    return {schema, std::size(schema)};
}

bool parse_settings(const sdk::options& opts, quic_settings& s, sdk::flow_error& err) {
    s.verify_peer = opts.get_or<bool>("verify-peer", true);
    s.ca_file = opts.get_or<std::string>("ca-file", "");
    for (const auto& p : opts.get_or<std::vector<std::string>>("pin-sha256", {})) {
        if (p.empty()) continue;
        std::string norm;
        if (!normalise_pin(p, norm, err)) return false;
        s.pins.push_back(std::move(norm));
    }
    s.cert_file = opts.get_or<std::string>("cert-file", "");
    s.key_file = opts.get_or<std::string>("key-file", "");
    if (s.cert_file.empty() != s.key_file.empty()) {
        err = bad(std::string(s.cert_file.empty() ? "key-file" : "cert-file") + " is set but " +
                  (s.cert_file.empty() ? "cert-file" : "key-file") +
                  " is not: set both (our certificate chain and its private key)");
        return false;
    }
    s.server_name = opts.get_or<std::string>("server-name", "");
    auto alpn = opts.get_or<std::vector<std::string>>("alpn", {});
    std::erase_if(alpn, [](const std::string& a) { return a.empty(); });
    if (alpn.empty()) alpn.emplace_back(default_alpn);
    for (const auto& a : alpn) {
        if (a.size() > 255) {
            err = bad("alpn entries must be 1 to 255 bytes long, got '" + a + "'");
            return false;
        }
    }
    s.alpn = std::move(alpn);
    s.keylog = opts.get_or<std::string>("keylog", "");
    s.qlog_dir = opts.get_or<std::string>("qlog-dir", "");
    if (!s.qlog_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(s.qlog_dir, ec);
        if (!ec && !std::filesystem::is_directory(s.qlog_dir, ec))
            ec = std::make_error_code(std::errc::not_a_directory);
        if (ec) {
            err =
                bad("qlog-dir '" + s.qlog_dir + "' is not a folder we can create: " + ec.message());
            return false;
        }
    }

    const auto max_size = opts.get_or<std::int64_t>("max-message-size",
                                                    static_cast<std::int64_t>(s.max_message_size));
    if (max_size < 1 || max_size > max_message_limit) {
        err = bad("max-message-size must be between 1 and " + std::to_string(max_message_limit) +
                  " bytes, got " + std::to_string(max_size));
        return false;
    }
    s.max_message_size = static_cast<std::size_t>(max_size);
    s.idle_timeout = opts.get_or<std::chrono::milliseconds>("idle-timeout", s.idle_timeout);
    if (s.idle_timeout.count() <= 0) {
        err = bad("idle-timeout must be above 0, got " + std::to_string(s.idle_timeout.count()) +
                  " ms");
        return false;
    }
    s.handshake_timeout =
        opts.get_or<std::chrono::milliseconds>("handshake-timeout", s.handshake_timeout);
    if (s.handshake_timeout.count() <= 0) {
        err = bad("handshake-timeout must be above 0, got " +
                  std::to_string(s.handshake_timeout.count()) + " ms");
        return false;
    }
    const auto streams =
        opts.get_or<std::int64_t>("max-streams", static_cast<std::int64_t>(s.max_streams));
    const auto swin =
        opts.get_or<std::int64_t>("stream-window", static_cast<std::int64_t>(s.stream_window));
    const auto cwin = opts.get_or<std::int64_t>("connection-window",
                                                static_cast<std::int64_t>(s.connection_window));
    if (streams < 1 || streams > (1 << 20)) {
        err = bad("max-streams must be between 1 and 1048576, got " + std::to_string(streams));
        return false;
    }
    if (swin < 1024 || cwin < 1024) {
        err = bad("stream-window and connection-window must be at least 1024 bytes");
        return false;
    }
    s.max_streams = static_cast<std::uint64_t>(streams);
    s.stream_window = static_cast<std::uint64_t>(swin);
    s.connection_window = static_cast<std::uint64_t>(cwin);
    s.datagrams = opts.get_or<bool>("datagrams", s.datagrams);
    const auto dq =
        opts.get_or<std::int64_t>("datagram-queue", static_cast<std::int64_t>(s.datagram_queue));
    if (dq < 1 || dq > (1 << 20)) {
        err = bad("datagram-queue must be between 1 and 1048576, got " + std::to_string(dq));
        return false;
    }
    s.datagram_queue = static_cast<std::size_t>(dq);
    s.migration = opts.get_or<bool>("migration", s.migration);
    s.session_tickets = opts.get_or<bool>("session-tickets", s.session_tickets);
    s.early_data = opts.get<bool>("early-data");
    s.anti_replay_window =
        opts.get_or<std::chrono::milliseconds>("anti-replay-window", s.anti_replay_window);
    if (s.anti_replay_window.count() <= 0 || s.anti_replay_window > std::chrono::hours(24)) {
        err = bad("anti-replay-window must be above 0 and at most 24h, got " +
                  std::to_string(s.anti_replay_window.count()) + " ms");
        return false;
    }
    return true;
}

} // namespace post::plugins::quic
