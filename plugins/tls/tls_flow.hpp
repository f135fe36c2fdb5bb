// One TLS connection over a lower stream flow: an SSL object between two memory BIOs. Ciphertext
// from the lower flow goes into the read BIO; whatever OpenSSL writes into the write BIO goes
// down as lower sends. Everything runs on the executor, nothing blocks, no threads.
//
// It is both the upper side's flow and the lower flow's event sink (held there weakly: the
// upper side owns this flow, which owns the lower one).
//
// Early data (TLS 1.3 0-RTT), client: when the stored session allows it, info() reports
// cap_early_data from open() on. Idempotent sends made before on_ready (and before any send
// that is not idempotent) travel with SSL_write_early_data until the server's first flight
// arrives; their bytes are kept until the server's verdict. Accepted: on_sent. Rejected: they
// are written again as ordinary data right after the handshake, before later sends, and
// on_sent follows that. Server: early data read with SSL_read_early_data is delivered upwards
// right after on_ready (never before it), ahead of any ordinary data.
#pragma once

#include "tls_context.hpp"
#include "tls_session.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <post/sdk.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace post::plugins::tls {

/// What the handshake decided; for logs, tests and tools (tls_flow::summary()).
struct handshake_summary {
    enum class early_data : std::uint8_t { not_tried, accepted, rejected };
    bool complete = false;
    bool resumed = false;
    bool offered_session = false;
    std::string version; ///< "TLSv1.3"
    std::string cipher;
    std::string alpn; ///< Empty when none was agreed.
    early_data early = early_data::not_tried;
    std::size_t early_bytes = 0; ///< Sent (client) or received (server) as early data.
};

class tls_flow final : public sdk::flow,
                       public sdk::flow_events,
                       public tls_connection,
                       public std::enable_shared_from_this<tls_flow> {
public:
    /// `settings` are the layer's own: a shared context may come from another layer whose
    /// options differ in what does not shape an SSL_CTX (server-name).
    tls_flow(boost::asio::any_io_executor ex, std::shared_ptr<tls_context> ctx,
             std::shared_ptr<const tls_settings> settings, std::shared_ptr<sdk::flow> lower,
             sdk::open_params p, sdk::log_sink* log);
    ~tls_flow() override;
    tls_flow(const tls_flow&) = delete;
    tls_flow& operator=(const tls_flow&) = delete;

    /// Create the SSL object, set the peer identity to verify and offer a stored session.
    /// Call once after construction; false with `err` when that fails.
    bool init(sdk::flow_error& err);
    /// Register with the lower flow; call once after init().
    void attach();

    const handshake_summary& summary() const noexcept { return summary_; }

    // sdk::flow (towards the upper side)
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override;
    void start() noexcept override;
    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override;
    void close() noexcept override;
    void abort() noexcept override;
    sdk::flow_info info() const noexcept override;
    std::size_t queued_bytes() const noexcept override { return queued_bytes_; }
    std::chrono::microseconds smoothed_rtt() const noexcept override {
        return lower_ ? lower_->smoothed_rtt() : std::chrono::microseconds{};
    }

    // sdk::flow_events (from the lower flow)
    void on_ready() noexcept override;
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override;
    void on_sent(std::uint64_t id) noexcept override;
    void on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept override;
    void on_closed(const sdk::flow_error& e) noexcept override;

    // tls_connection (from OpenSSL callbacks)
    verify_state& verification() noexcept override { return verify_; }
    void on_new_session(SSL_SESSION* session) noexcept override;
    void on_alpn_mismatch(std::string offered) noexcept override;

private:
    /// One upper send, from send() until its on_sent.
    struct pending_send {
        std::uint64_t id;
        sdk::byte_buffer data; ///< Kept only until written (early data: until the verdict).
        std::size_t size;
        std::uint64_t lower_last = 0; ///< The lower send carrying its last ciphertext.
        bool idempotent = false;
        bool written = false;
        bool early = false;    ///< Written as early data.
        bool confirmed = true; ///< False while the server's early-data verdict is pending.
    };

    bool client() const noexcept { return params_.side == sdk::role::client; }
    void log(sdk::log_level level, const std::string& text) const noexcept;
    /// Whether a message of `level` goes anywhere: build the text of one only if so.
    bool logging(sdk::log_level level) const noexcept;

    void begin_handshake();
    bool write_early();
    void advance_handshake();
    void handshake_complete();
    void drive();
    void read_app_data();
    void write_pending();
    void flush();
    void report_sent();
    void maybe_close();
    void on_peer_close();
    bool check_first_bytes(const sdk::byte_buffer& data);
    sdk::flow_error failure(int ssl_error);
    /// From a lower event: send OpenSSL's alert if any, close the lower flow, report `e`.
    void fail(const sdk::flow_error& e);
    /// From inside an upper call: the same, one executor turn later.
    void fail_later(sdk::flow_error e);
    void finish(const sdk::flow_error& e);

    boost::asio::any_io_executor executor_;
    /// After our close_notify: how long the peer has to answer it before we close the lower
    /// flow anyway (maybe_close).
    boost::asio::steady_timer close_timer_;
    std::shared_ptr<tls_context> ctx_;
    std::shared_ptr<const tls_settings> settings_;
    std::shared_ptr<sdk::flow> lower_;
    sdk::open_params params_;
    sdk::log_sink* log_;
    std::weak_ptr<sdk::flow_events> events_;

    SSL* ssl_ = nullptr;
    BIO* rbio_ = nullptr; ///< Owned by ssl_.
    BIO* wbio_ = nullptr; ///< Owned by ssl_.
    verify_state verify_;
    handshake_summary summary_;
    std::string session_key_;
    std::string no_session_reason_;
    std::string alpn_offered_by_client_;

    std::deque<pending_send> pending_;
    std::size_t written_count_ = 0; ///< Entries at the front of pending_ already written.
    std::size_t queued_bytes_ = 0;
    std::uint64_t lower_next_id_ = 1;
    std::uint64_t lower_sent_upto_ = 0;
    std::vector<sdk::byte_buffer> early_received_; ///< Server: early data awaiting on_ready.

    std::string first_bytes_; ///< The peer's first bytes, to recognise a peer that is not TLS.
    bool first_bytes_checked_ = false;

    bool started_ = false;
    bool lower_ready_ = false;
    bool handshake_started_ = false;
    bool handshake_done_ = false;
    bool early_mode_ = false;    ///< Client: the offered session allows early data.
    bool early_writing_ = false; ///< Client: early data may still be written.
    bool server_early_ = false;  ///< Server: read early data.
    bool server_early_done_ = false;
    bool close_requested_ = false;
    bool close_notify_sent_ = false;
    bool close_notify_received_ = false;
    bool lower_closed_ = false;
    bool done_ = false;
    bool aborted_ = false;
    /// Inside start/send/close: failures are reported from a later executor turn, since no
    /// event may reach the upper side from inside its own call.
    bool in_upper_call_ = false;

    using upper_call = sdk::upper_call_scope;

    static constexpr std::size_t read_chunk = 64 * 1024;
    /// Where SSL_read puts plaintext before it is copied out: one per thread, not 64 KiB per
    /// connection. Nothing runs between a read into it and that copy that could read into it.
    static unsigned char* read_buffer();
};

} // namespace post::plugins::tls
