// One DTLS 1.2 association over a lower datagram flow (RFC 6347), for the client and the server
// role. OpenSSL reads and writes through a datagram BIO (dtls_bio.hpp): each received datagram
// is offered to it whole, each datagram it writes goes down as one lower send. Every upper send
// is one SSL_write, so one record in one datagram; every record read is one on_received.
//
// Timers run on the executor: the retransmission timer follows DTLSv1_get_timeout, so a lost
// flight is sent again, and the handshake timer bounds the whole handshake (an accepted flow
// whose peer never completes it, e.g. a spoofed ClientHello, ends then).
//
// A datagram that is not DTLS before the handshake ends the flow ("peer does not speak DTLS");
// after it, records that are malformed, forged or replayed are dropped silently (RFC 6347
// §4.1.2.7), counted and logged at debug.
#pragma once

#include "dtls_bio.hpp"
#include "dtls_cookie.hpp"
#include "tls_context.hpp"

#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <post/sdk.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

namespace post::plugins::tls {

inline constexpr std::string_view dtls_layer_name = "dtls";

/// Largest application payload of one DTLS record (2^14, RFC 6347 §4.1 via RFC 5246 §6.2.1).
inline constexpr std::size_t dtls_max_record_payload = 16384;
/// Most bytes one record adds to its payload with any DTLS 1.2 suite OpenSSL offers: a 13-byte
/// header, a 16-byte explicit IV, a 48-byte HMAC-SHA384 and up to 16 bytes of CBC padding.
inline constexpr std::size_t dtls_max_record_overhead = 13 + 16 + 48 + 16;

/// The dtls layer's own options (the rest are tls_settings).
struct dtls_options {
    std::size_t max_message_size = 0; ///< 0 = what fits in one record in one lower datagram.
    std::chrono::milliseconds handshake_timeout{10000};
    std::size_t mtu = 1400; ///< Datagram size the handshake's messages are cut to.
};

/// What the handshake decided and what the flow saw; for logs, tests and tools.
struct dtls_summary {
    bool complete = false;
    std::string version; ///< "DTLSv1.2"
    std::string cipher;
    std::string alpn;
    std::uint64_t retransmissions = 0; ///< Flights we sent again after a timeout.
    std::uint64_t dropped_records = 0; ///< Datagrams dropped after the handshake.
};

class dtls_flow final : public sdk::flow,
                        public sdk::flow_events,
                        public tls_connection,
                        public dtls_cookie_peer,
                        public std::enable_shared_from_this<dtls_flow> {
public:
    dtls_flow(boost::asio::any_io_executor ex, std::shared_ptr<tls_context> ctx,
              std::shared_ptr<const tls_settings> settings, dtls_options opts,
              std::shared_ptr<sdk::flow> lower, sdk::open_params p, sdk::log_sink* log);
    ~dtls_flow() override;
    dtls_flow(const dtls_flow&) = delete;
    dtls_flow& operator=(const dtls_flow&) = delete;

    /// Create the SSL object and set the peer identity to verify; once, after construction.
    bool init(sdk::flow_error& err);
    /// Register with the lower flow; once, after init().
    void attach();

    const dtls_summary& summary() const noexcept { return summary_; }

    // sdk::flow (towards the upper side)
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }

    // sdk::flow_events (from the lower flow)
    void on_ready() noexcept override;
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override;
    void on_sent(std::uint64_t id) noexcept override;
    void on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept override;
    void on_closed(const sdk::flow_error& e) noexcept override;

    // tls_connection (from OpenSSL callbacks)
    verify_state& verification() noexcept override { return verify_; }
    void on_new_session(SSL_SESSION*) noexcept override {} // no resumption over DTLS here
    void on_alpn_mismatch(std::string offered) noexcept override;

    // dtls_cookie_peer
    std::string cookie_peer() const noexcept override;

private:
    struct pending_send {
        std::uint64_t id;
        sdk::byte_buffer data;
    };
    struct in_flight {
        std::uint64_t id; ///< The upper send.
        std::size_t size;
    };

    bool client() const noexcept { return params_.side == sdk::role::client; }
    std::size_t max_message_size() const noexcept;
    void log(sdk::log_level level, const std::string& text) const noexcept;

    void receive(sdk::byte_buffer data, const sdk::receive_meta& meta);
    void advance_handshake();
    void handshake_complete();
    bool read_app_data(const sdk::receive_meta& meta);
    void write_pending();
    /// Sends what OpenSSL wrote; returns the lower id of the last datagram (0: none).
    std::uint64_t flush();
    void maybe_close();
    void on_peer_close();
    void arm_retransmit();
    void on_retransmit_timer();
    void on_handshake_timer();
    void report_later(std::uint64_t id, sdk::flow_error e);
    sdk::flow_error failure(int ssl_error);
    /// From a lower or timer event: send OpenSSL's alert if any, close the lower flow, report.
    void fail(const sdk::flow_error& e);
    /// From inside an upper call: the same, one executor turn later.
    void fail_later(sdk::flow_error e);
    void finish(const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<tls_context> ctx_;
    std::shared_ptr<const tls_settings> settings_;
    dtls_options opts_;
    std::shared_ptr<sdk::flow> lower_;
    sdk::open_params params_;
    sdk::log_sink* log_;
    std::weak_ptr<sdk::flow_events> events_;

    SSL* ssl_ = nullptr;
    datagram_queue bio_queue_; ///< Read and written by the BIO that ssl_ owns.
    verify_state verify_;
    dtls_summary summary_;
    std::string alpn_offered_by_client_;

    boost::asio::steady_timer retransmit_timer_;
    boost::asio::steady_timer handshake_timer_;
    std::chrono::steady_clock::time_point retransmit_at_{};
    bool retransmit_armed_ = false;

    std::deque<pending_send> pending_;             ///< Accepted before the handshake completed.
    std::map<std::uint64_t, in_flight> in_flight_; ///< By lower send id.
    std::size_t queued_bytes_ = 0;
    std::uint64_t lower_next_id_ = 1;
    std::uint64_t datagrams_received_ = 0;

    bool started_ = false;
    bool handshake_done_ = false;
    bool close_requested_ = false;
    bool lower_close_requested_ = false; ///< close_notify (if any) is out, the lower is closing.
    bool lower_closed_ = false;
    bool done_ = false;
    bool aborted_ = false;
    /// Inside start/send/close: no event may reach the upper side from inside its own call.
    bool in_upper_call_ = false;

    using upper_call = sdk::upper_call_scope;

    static constexpr std::size_t read_chunk = 64 * 1024;
    std::unique_ptr<unsigned char[]> read_buffer_{new unsigned char[read_chunk]};
};

} // namespace post::plugins::tls
