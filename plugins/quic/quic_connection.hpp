// One QUIC connection (ngtcp2 0.12, GnuTLS) over one lower datagram flow, and the stream flows
// (quic_stream) it carries. The layer's open() returns the connection's first stream flow;
// fork() on any stream opens another stream (unidirectional from a send-only flow, else
// bidirectional); a stream the peer opens becomes a flow handed to on_incoming_flow of the first
// open stream flow (receive-only when the peer opened a unidirectional one).
//
// Everything runs on the executor, without threads: datagrams from the lower flow go to
// ngtcp2_conn_read_pkt, packets ngtcp2 writes go down as one lower send each (or, when the lower
// flow has cap_segmented_send, as trains of same-size packets: one send, one sendmsg with UDP
// GSO), and one steady_timer follows ngtcp2_conn_get_expiry (loss recovery, acks, idle timeout).
//
// ngtcp2's callbacks only record (bytes into a stream's reassembly, ends, new streams); events
// reach the layer above afterwards, in service(), never from inside a call it made: calls from
// above change state and schedule() a service pass.
//
// Client: the connection starts when the lower flow is ready; at handshake completion it opens
// stream 0 (or unidirectional stream 2 when open_params asks for send_only) for the first flow
// (a 0-length STREAM frame tells the server at once) and the streams forked meanwhile. Server: the
// first datagram of a fresh lower flow must be a valid Initial (ngtcp2_accept), else it is dropped;
// the first flow is ready at handshake completion (or earlier, when accepted 0-RTT stream data
// arrives on it: docs/quic.md "0-RTT") and is bound to the first stream the client opens,
// bidirectional or unidirectional (our clients: stream 0 or 2).
//
// Ownership: stream flows own the connection; the connection knows them by weak reference and
// owns the lower flow, the ngtcp2_conn and the TLS session.
#pragma once

#include "quic_application.hpp"
#include "quic_paths.hpp"
#include "quic_qlog.hpp"
#include "quic_session.hpp"
#include "quic_settings.hpp"
#include "quic_stream.hpp"
#include "quic_tls.hpp"

#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <ngtcp2/ngtcp2.h>

#include <post/sdk.hpp>

#include <sys/socket.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post::plugins::quic {

/// Application error codes of our ALPN ("post"), in CONNECTION_CLOSE and RESET_STREAM.
enum app_error : std::uint64_t {
    app_no_error = 0x0,
    app_aborted = 0x1,      ///< abort() by the application.
    app_message_size = 0x2, ///< A message longer than the receiver's max-message-size.
    app_bad_framing = 0x3,  ///< A stream ended inside a message.
    app_internal = 0x4,
    app_expired = 0x5, ///< RESET_STREAM: a message's lifetime ran out while it was being sent.
};

/// What the connection saw; for logs and tests.
struct quic_summary {
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;
    std::uint64_t dropped_before_accept = 0; ///< Datagrams that were not a valid Initial.
    /// Server, fresh flow: Version Negotiation packets sent (a long header of a version we do
    /// not speak, at least 1200 bytes) and stateless resets sent (a short header of at least 41
    /// bytes: a connection this process no longer knows). At most one answer per fresh flow.
    std::uint64_t version_negotiations_sent = 0;
    std::uint64_t stateless_resets_sent = 0;
    std::uint64_t incoming_streams = 0;
    std::uint64_t streams_blocked = 0;   ///< Forks that waited for MAX_STREAMS credit.
    std::string alpn;                    ///< Negotiated.
    std::uint64_t datagrams_out = 0;     ///< DATAGRAM frames written.
    std::uint64_t datagrams_in = 0;      ///< DATAGRAM frames received.
    std::uint64_t datagrams_dropped = 0; ///< Received, dropped: the queue for them was full.
    std::uint64_t expired = 0;           ///< Messages and datagrams dropped at their deadline.
    std::uint64_t expiry_resets = 0;     ///< Streams reset by a message expiring mid-way.
    std::uint64_t trains_out = 0;        ///< Lower sends that carried several packets.
    /// Datagrams read up to the one that completed the handshake, and up to the one that
    /// confirmed it (client: HANDSHAKE_DONE; server: as completed). Each side's first flight is
    /// one datagram with our peers, so 2 when the peer answered that flight at once.
    std::uint64_t handshake_packets_in = 0;
    std::uint64_t confirmed_packets_in = 0;
    // 0-RTT (docs/quic.md "0-RTT")
    bool resumed = false; ///< The handshake resumed a ticket (both sides).
    enum class early_data : std::uint8_t { none, accepted, rejected } early = early_data::none;
    /// Client: stream bytes written in 0-RTT packets. Server: stream bytes received in them.
    std::uint64_t early_bytes = 0;
    std::uint64_t tickets_stored = 0; ///< Client: tickets written to the association.
    // Migration (docs/quic.md "Migration")
    std::uint64_t migrations = 0;    ///< Client: migrations started (the new path was ready).
    std::uint64_t paths_adopted = 0; ///< Server: lower flows of new peer addresses taken over.
    std::uint64_t path_changes = 0;  ///< Times the path in use changed.
    std::uint64_t handed_over = 0;   ///< Server, fresh flow: given to the connection it belongs to.
};

class quic_connection final : public sdk::flow_events,
                              public std::enable_shared_from_this<quic_connection> {
public:
    /// A new connection over `lower` and its first stream flow (not started).
    static std::shared_ptr<quic_stream> open(boost::asio::any_io_executor ex,
                                             std::shared_ptr<const quic_settings> settings,
                                             std::shared_ptr<const quic_tls_context> tls,
                                             std::shared_ptr<sdk::flow> lower, sdk::open_params p);

    quic_connection(boost::asio::any_io_executor ex, std::shared_ptr<const quic_settings> settings,
                    std::shared_ptr<const quic_tls_context> tls, std::shared_ptr<sdk::flow> lower,
                    sdk::open_params p); // use open()
    ~quic_connection() override;
    quic_connection(const quic_connection&) = delete;
    quic_connection& operator=(const quic_connection&) = delete;

    const quic_summary& summary() const noexcept { return summary_; }

    /// Hands the connection's streams to an application protocol (HTTP/3) instead of
    /// quic_stream flows: before start(). quic_application.hpp says what changes.
    void set_application(std::shared_ptr<quic_application> app);
    /// An application error to close the connection with: after an ngtcp2 callback that
    /// returned a failure, or at the next service pass. A null `e` closes without error.
    void set_pending_close(sdk::flow_error e, std::uint64_t code, std::string reason);
    /// set_pending_close, then a service pass soon (for calls from above).
    void request_close(sdk::flow_error e, std::uint64_t code, std::string reason);
    /// The ALPN list offered or accepted: the application's, else the alpn option.
    const std::vector<std::string>& alpn() const noexcept {
        return app_ ? app_->alpn() : settings_->alpn;
    }
    const sdk::open_params& params() const noexcept { return params_; }
    std::string peer_name() const { return peer(); }
    void write_log(sdk::log_level level, const std::string& text) const noexcept {
        log(level, text);
    }
    std::size_t max_message_size() const noexcept { return settings_->max_message_size; }

    // For quic_stream (its sdk::flow calls; never reports inside them).
    void start_stream(quic_stream& s) noexcept;
    void abort_stream(quic_stream& s) noexcept;
    void adopt_orphans(quic_stream& s) noexcept;
    /// A new stream flow: send_only opens a unidirectional stream (client ids 2, 6, ...;
    /// server 3, 7, ...), anything else a bidirectional one.
    std::shared_ptr<sdk::flow>
    fork(sdk::flow_direction dir = sdk::flow_direction::bidirectional) noexcept;
    /// close() on a receive-only stream the peer has not finished: STOP_SENDING (no error).
    void stop_reading(quic_stream& s) noexcept;
    /// ngtcp2 before 0.14 never closes a unidirectional stream the peer opened (no
    /// stream_close callback: fixed upstream in 0.14.0, "Fix bug that a remote uni stream never
    /// be closed"). Its flow then ends here when the FIN (or a reset) arrives or this side stops
    /// or aborts it, and this gives the peer its stream credit back, as cb_stream_close does
    /// for every other stream.
    static constexpr bool ngtcp2_closes_peer_uni = NGTCP2_VERSION_NUM >= 0x000e00;
    void peer_uni_ended(quic_stream& s) noexcept;
    sdk::flow_info info() const noexcept;
    /// Client: stream bytes may go in 0-RTT packets now (an offered ticket allows it and the
    /// handshake has not decided yet).
    bool early_window() const noexcept {
        return early_params_set_ && state_ == state::connecting && !handshake_done_;
    }
    /// A service pass on the executor soon (coalesced).
    void schedule() noexcept;
    void fail_later(sdk::flow_error e) noexcept;
    /// An unreliable message of stream `s` (send_meta reliable=false): one DATAGRAM frame.
    void send_datagram(quic_stream& s, sdk::byte_buffer data, const sdk::send_meta& meta);
    /// Client: move the connection onto `new_lower` (not started; same remote, another local
    /// address). Checked now: established, handshake confirmed, the peer allows migration and
    /// gave us a spare connection ID. Then the flow is started and, once ready, ngtcp2 migrates
    /// at once (path validation runs on the new path).
    bool migrate(std::shared_ptr<sdk::flow> new_lower, sdk::flow_error& err) noexcept;
    /// The local and remote endpoints of the path in use.
    sdk::endpoint local_endpoint() const;
    sdk::endpoint remote_endpoint() const;

    // Events of lower flows other than the first (quic_path_events).
    void path_ready(std::uint64_t id) noexcept;
    void path_received(std::uint64_t id, sdk::byte_buffer data) noexcept;
    void path_closed(std::uint64_t id, const sdk::flow_error& e) noexcept;

    // sdk::flow_events (from the lower flow)
    void on_ready() noexcept override;
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override;
    void on_sent(std::uint64_t) noexcept override {}
    void on_send_error(std::uint64_t, const sdk::flow_error&) noexcept override {}
    void on_closed(const sdk::flow_error& e) noexcept override;

private:
    enum class state : std::uint8_t { idle, connecting, established, done };

    /// A connection error found inside an ngtcp2 callback, acted on after it returns.
    struct pending_close {
        sdk::flow_error error;
        std::uint64_t app_code;
        std::string reason; ///< Sent in CONNECTION_CLOSE.
    };

    struct orphan {
        std::deque<retained_bytes> bytes;
    };

    /// An unreliable message waiting for a packet; its events go to the stream that sent it.
    struct out_datagram {
        std::weak_ptr<quic_stream> from;
        std::uint64_t id = 0;
        std::optional<std::chrono::steady_clock::time_point> deadline;
        sdk::byte_buffer data;
    };

    bool client() const noexcept { return params_.side == sdk::role::client; }
    std::string peer() const;
    void log(sdk::log_level level, const std::string& text) const noexcept;
    static std::uint64_t now() noexcept;
    /// Runs `f` from an executor task: nothing may escape to the caller's event loop (an
    /// allocation failure ends the connection instead).
    template <class F> void guarded(F f) noexcept {
        try {
            f();
        } catch (...) {
            try {
                end_all(
                    {std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"});
            } catch (...) {
            }
        }
    }

    bool create_client(sdk::flow_error& err);
    bool accept_initial(const std::uint8_t* data, std::size_t len);
    /// Server, fresh flow, a first datagram that is no Initial we take: a Version Negotiation
    /// or a stateless reset when RFC 9000 asks for one (docs/quic.md "Answers to strangers").
    void answer_stranger(const std::uint8_t* data, std::size_t len);
    bool set_up_tls(sdk::flow_error& err);
    /// The name the server's certificate is checked against (server-name, host, address).
    std::string tls_name(bool& is_address) const;
    /// Client, before start(): looks for a stored ticket, and decides whether to offer 0-RTT.
    void load_ticket();
    /// Client: hands the stored ticket to GnuTLS and, for 0-RTT, the remembered transport
    /// parameters to ngtcp2; opens the first stream at once. False when GnuTLS refused the
    /// ticket (erased): the session must be set up again without it.
    bool offer_ticket();
    /// Client at handshake completion: resumed or not, 0-RTT accepted or rejected (REWIND).
    void decide_early();
    /// Client: the server's new ticket, recorded by the hook, goes to the association.
    void store_ticket();
    /// Client, rejected 0-RTT: every opened stream forgets its id and queues again, in order,
    /// what it wrote (ngtcp2 forgot the streams and references none of their bytes).
    void rewind_streams();
    /// Server at handshake completion: early data and resumption, and a ticket sent.
    void server_established();
    void set_path();
    quic_path& current_path() noexcept { return *paths_.front(); }
    const quic_path& current_path() const noexcept { return *paths_.front(); }
    quic_path* find_path(std::uint64_t id) noexcept;
    /// The path ngtcp2 named for a packet (by id, else by addresses), or nullptr: released.
    quic_path* path_for(const ngtcp2_path& p) noexcept;
    /// A datagram that arrived on path `id` (the first path: the connection's own on_received).
    void receive_on(quic_path& path, sdk::byte_buffer data);
    /// After ngtcp2 ran: the path in use may have changed (a migration, ours or the peer's):
    /// it goes to the front, and every stream flow reports on_path_changed.
    void track_path();
    /// Releases the lower flows of paths ngtcp2 no longer uses (after a validation ended).
    void prune_paths();
    /// Server, fresh flow: a short-header packet for a connection of this process (a client
    /// that migrated): that connection takes this lower flow. True when it did.
    bool hand_over(sdk::byte_buffer& data);
    /// Server: takes `lower`, the flow of a new peer address, and reads `first` (its first
    /// datagram) on it. False, with nothing taken, when this connection cannot.
    bool adopt_path(std::shared_ptr<sdk::flow>& lower, sdk::byte_buffer& first);
    /// The server's connection IDs in this process's registry (quic_cid_registry.hpp).
    void register_cid(const ngtcp2_cid& cid);
    void unregister_cids() noexcept;
    void fill_settings(ngtcp2_settings& settings, ngtcp2_transport_params& params) const;

    /// One pass: open streams, write packets, report events, re-arm the timer.
    void service();
    void open_pending_streams();
    /// ngtcp2_conn_open_uni_stream for a send-only flow, else ngtcp2_conn_open_bidi_stream.
    int open_stream_for(const quic_stream& s, std::int64_t& id);
    void on_established();
    void write_packets();
    /// Writes queued datagrams into packets; false when congestion stopped it.
    bool write_datagrams(std::uint8_t* buf, std::size_t size, int& packets);
    /// Largest datagram payload the peer accepts in one packet now; 0: it takes none.
    std::size_t datagram_room() const;
    /// Drops what passed its deadline: unsent messages and datagrams (on_expired), and resets
    /// the stream of a message expiring part-way through. Re-arms the deadline timer.
    void expire();
    void arm_deadline_timer();
    /// ngtcp2 has measured the RTT (pacing needs it: see write_packets).
    bool rtt_sampled() const noexcept;
    /// One lower send: a packet, or (segment non-zero) a train of packets of that size.
    void send_packet(const std::uint8_t* data, std::size_t n, std::size_t segment = 0,
                     quic_path* on = nullptr);
    void dispatch();
    void report(quic_stream& s);
    void maybe_close_connection();
    void arm_timer();
    void on_timer();
    void on_handshake_timer();

    /// After ngtcp2 returned `rv` from read or expiry handling.
    void handle_liberr(int rv, const char* where);
    void handle_peer_close();
    /// Sends CONNECTION_CLOSE (when a connection exists) and ends every stream with `e`.
    void fail(const sdk::flow_error& e, std::optional<ngtcp2_connection_close_error> cc);
    void fail_app(const sdk::flow_error& e, std::uint64_t code, const std::string& reason);
    void end_all(const sdk::flow_error& e);
    /// Closes the lower flow, after the closing or draining period when there is one.
    void close_lower_soon();
    void write_close(const ngtcp2_connection_close_error& cc);

    std::shared_ptr<quic_stream> find(std::int64_t id) const;
    std::shared_ptr<quic_stream> peer_stream(std::int64_t id);
    std::shared_ptr<sdk::flow_events> first_open_events() const;
    bool any_open_stream() const;

    // ngtcp2 callbacks (user_data is the connection)
    static int cb_handshake_completed(ngtcp2_conn*, void* user);
    static int cb_handshake_confirmed(ngtcp2_conn*, void* user);
    static int cb_recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id,
                                   std::uint64_t offset, const std::uint8_t* data, std::size_t len,
                                   void* user, void* stream_user);
    static int cb_acked_stream_data_offset(ngtcp2_conn*, std::int64_t id, std::uint64_t offset,
                                           std::uint64_t len, void* user, void* stream_user);
    static int cb_stream_open(ngtcp2_conn*, std::int64_t id, void* user);
    static int cb_stream_close(ngtcp2_conn*, std::uint32_t flags, std::int64_t id,
                               std::uint64_t app_error, void* user, void* stream_user);
    static int cb_stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t final_size,
                               std::uint64_t app_error, void* user, void* stream_user);
    static int cb_stream_stop_sending(ngtcp2_conn*, std::int64_t id, std::uint64_t app_error,
                                      void* user, void* stream_user);
    static int cb_recv_datagram(ngtcp2_conn*, std::uint32_t flags, const std::uint8_t* data,
                                std::size_t len, void* user);
    static int cb_extend_max_local_streams_bidi(ngtcp2_conn*, std::uint64_t max, void* user);
    static int cb_extend_max_remote_streams_bidi(ngtcp2_conn*, std::uint64_t max, void* user);
    static int cb_extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t max,
                                         void* user, void* stream_user);
    static int cb_early_data_rejected(ngtcp2_conn*, void* user);
    /// Client: reads NewSessionTicket terms (lifetime, early data) from 1-RTT CRYPTO data, then
    /// hands it to ngtcp2's GnuTLS glue as usual.
    static int cb_recv_crypto_data(ngtcp2_conn*, ngtcp2_crypto_level level, std::uint64_t offset,
                                   const std::uint8_t* data, std::size_t len, void* user);
    static int cb_recv_version_negotiation(ngtcp2_conn*, const ngtcp2_pkt_hd*,
                                           const std::uint32_t* sv, std::size_t nsv, void* user);
    static int cb_recv_stateless_reset(ngtcp2_conn*, const ngtcp2_pkt_stateless_reset*, void* user);
    static void cb_rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*);
    /// ngtcp2's qlog records (settings.qlog.write, only with the qlog-dir option).
    static void cb_qlog_write(void* user, std::uint32_t flags, const void* data, std::size_t len);
    /// Starts this connection's qlog file, named after `odcid`, when qlog-dir is set.
    void open_qlog(const ngtcp2_cid& odcid);
    static int cb_get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                        std::size_t cidlen, void* user);
    static int cb_remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* user);
    static int cb_path_validation(ngtcp2_conn*, std::uint32_t flags, const ngtcp2_path* path,
                                  ngtcp2_path_validation_result res, void* user);
    static ngtcp2_conn* cb_get_conn(ngtcp2_crypto_conn_ref* ref);
    static ngtcp2_callbacks callbacks(bool client);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<const quic_settings> settings_;
    std::shared_ptr<const quic_tls_context> tls_;
    /// The paths; the front one is in use (ngtcp2_conn_get_path), the first lower flow's
    /// events go to this object, the others' to a quic_path_events.
    std::vector<std::unique_ptr<quic_path>> paths_;
    std::uint64_t next_path_id_ = 1;
    std::uint64_t migrating_to_ = 0; ///< Client: the path whose lower flow is starting.
    bool validation_ended_ = false;  ///< Recorded by cb_path_validation, acted on after.
    std::vector<std::string> cids_;  ///< Server: registered connection IDs.
    sdk::open_params params_;
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer handshake_timer_;
    std::uint64_t timer_at_ = 0;
    boost::asio::steady_timer deadline_timer_; ///< The earliest message deadline.
    std::optional<std::chrono::steady_clock::time_point> deadline_at_;

    ngtcp2_conn* conn_ = nullptr;
    gnutls_session_t session_ = nullptr;
    session_link link_;
    verify_state verify_;

    state state_ = state::idle;
    bool handshake_confirmed_ = false;
    bool service_posted_ = false;
    bool in_service_ = false;
    bool handshake_done_ = false; ///< Recorded by the callback, acted on in service().
    bool closing_sent_ = false;
    bool answered_stranger_ = false; ///< Server: a VN or stateless reset went to this flow.
    bool reset_received_ = false;    ///< The peer sent a stateless reset (then DRAINING).
    std::vector<std::uint32_t> offered_versions_; ///< Client: from a Version Negotiation.
    bool abort_requested_ = false; ///< abort() on the last open stream: CONNECTION_CLOSE.
    std::optional<pending_close> pending_close_;
    /// The application protocol that has the streams (HTTP/3), when set.
    std::shared_ptr<quic_application> app_;
    /// Acts on pending_close_ (true when it closed the connection).
    bool close_if_pending();
    std::optional<sdk::flow_error> ended_;

    std::vector<std::weak_ptr<quic_stream>> streams_; ///< In creation order.
    std::vector<std::shared_ptr<quic_stream>> new_incoming_;
    std::vector<std::int64_t> resets_; ///< Streams to reset (RESET_STREAM + STOP_SENDING).
    std::vector<std::int64_t> stops_;  ///< Receive-only streams closed here (STOP_SENDING).
    /// Peer unidirectional streams ended whose state ngtcp2 0.12 keeps (see peer_uni_ended).
    std::size_t lingering_uni_ = 0;
    std::size_t lingering_uni_limit() const noexcept { return 16 * settings_->max_streams; }
    std::map<std::int64_t, orphan> orphans_;
    std::deque<out_datagram> datagrams_out_;
    /// A received DATAGRAM frame; `early`: it came in a 0-RTT packet (may be a replay).
    struct in_datagram {
        sdk::byte_buffer data;
        bool early = false;
    };
    std::deque<in_datagram> datagrams_in_; ///< For the first open stream flow, when ready.
    std::uint64_t serve_counter_ = 0;
    quic_summary summary_;
    std::unique_ptr<quic_qlog> qlog_; ///< With the qlog-dir option.
    bool qlog_failure_logged_ = false;
    sdk::byte_buffer packet_;

    // 0-RTT (client)
    std::string session_key_;
    std::string no_session_reason_ = "no ticket";
    std::optional<stored_session> stored_;
    bool offered_session_ = false;             ///< The stored ticket went into the ClientHello.
    bool early_offer_ = false;                 ///< The ticket allows 0-RTT and early-data is on.
    bool early_params_set_ = false;            ///< Remembered transport parameters given to ngtcp2.
    std::vector<std::uint8_t> post_handshake_; ///< 1-RTT CRYPTO bytes not yet a whole message.
    bool rewinding_ = false; ///< Inside ngtcp2_conn_early_data_rejected: streams are not ending.
    // 0-RTT (server)
    bool early_rx_ = false; ///< Stream data came in 0-RTT: deliver it before the handshake ends.
};

} // namespace post::plugins::quic
