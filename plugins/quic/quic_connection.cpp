#include "quic_connection.hpp"

#include "quic_cid_registry.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <limits>
#include <random>

namespace post::plugins::quic {

namespace {

constexpr std::size_t client_dcid_len = 18;
constexpr std::size_t scid_len = cid_length;
/// Packets written in one pass before the executor gets a turn (then another pass is posted).
constexpr int packets_per_pass = 64;
/// A train of packets handed down in one send (lower flows with cap_segmented_send): at most
/// this many packets (the kernel's UDP GSO limit), within the largest IPv4 UDP payload.
constexpr std::size_t max_train_packets = 64;
constexpr std::size_t max_train_bytes = 65507;
/// RFC 9000 14.1: a client's first datagram is at least this long; a Version Negotiation goes
/// only to datagrams this long, so a forged source address gains no amplification from it.
constexpr std::size_t min_initial_datagram = 1200;
/// RFC 9000 10.3 and 10.3.3: a stateless reset is smaller than the packet that triggered it
/// (one byte smaller up to 43 bytes, so two endpoints cannot bounce resets forever) and at least
/// 21 bytes. We answer short headers of at least min_reset_trigger bytes (what a real packet to
/// our 17-byte CIDs takes, as in ngtcp2's examples) with min(size - 1, max_reset_size) bytes.
constexpr std::size_t min_reset_trigger = 41;
constexpr std::size_t max_reset_size = 43;

std::string hex32(std::uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(v));
    return buf;
}

/// The key of this process's stateless reset tokens (RFC 9000 10.3.2): token = HKDF(secret,
/// CID), so a fresh connection object (after a restart of the listener in this process) can
/// reset a connection it never saw, for any CID we issued. Created once, thread-safe (a
/// function-local static); never leaves the process.
const std::array<std::uint8_t, 32>& reset_secret() {
    static const std::array<std::uint8_t, 32> secret = [] {
        std::array<std::uint8_t, 32> s{};
        if (gnutls_rnd(GNUTLS_RND_KEY, s.data(), s.size()) != 0) {
            // GnuTLS's generator failed (it does not in practice): the OS's then.
            std::random_device rd;
            for (auto& b : s)
                b = static_cast<std::uint8_t>(rd());
        }
        return s;
    }();
    return secret;
}

/// The stateless reset token of `cid`; false only if the HKDF failed.
bool reset_token(const std::uint8_t* cid, std::size_t cidlen, std::uint8_t* token) {
    ngtcp2_cid c;
    ngtcp2_cid_init(&c, cid, cidlen);
    const auto& secret = reset_secret();
    return ngtcp2_crypto_generate_stateless_reset_token(token, secret.data(), secret.size(), &c) ==
           0;
}

std::string hex(std::uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string app_error_name(std::uint64_t code) {
    switch (code) {
    case app_no_error:
        return "no error";
    case app_aborted:
        return "aborted";
    case app_message_size:
        return "message larger than max-message-size";
    case app_bad_framing:
        return "stream ended inside a message";
    case app_internal:
        return "internal error";
    case app_expired:
        return "a message expired while being sent";
    }
    return "application error " + hex(code);
}

/// TLS alerts about the certificate: the peer refused ours, or found it unusable.
bool certificate_alert(unsigned alert) {
    return alert == 42 || alert == 43 || alert == 44 || alert == 45 || alert == 46 || alert == 48 ||
           alert == 49 || alert == 116;
}

constexpr unsigned alert_no_application_protocol = 120;

} // namespace

// ---- construction -----------------------------------------------------------------------------

std::shared_ptr<quic_stream> quic_connection::open(boost::asio::any_io_executor ex,
                                                   std::shared_ptr<const quic_settings> settings,
                                                   std::shared_ptr<const quic_tls_context> tls,
                                                   std::shared_ptr<sdk::flow> lower,
                                                   sdk::open_params p) {
    auto c = std::make_shared<quic_connection>(std::move(ex), std::move(settings), std::move(tls),
                                               std::move(lower), std::move(p));
    c->current_path().lower->set_events(std::static_pointer_cast<sdk::flow_events>(c));
    // A client can open a stream it only sends on (unidirectional), not one it only receives
    // on: receive_only opens a bidirectional stream, as tcp does.
    const auto dir = c->client() && c->params_.direction == sdk::flow_direction::send_only
                         ? sdk::flow_direction::send_only
                         : sdk::flow_direction::bidirectional;
    auto s = std::make_shared<quic_stream>(c, true, false, dir);
    c->streams_.push_back(s);
    // Decided now: the kernel reads info() (cap_early_data) right after start().
    if (c->client()) c->load_ticket();
    return s;
}

quic_connection::quic_connection(boost::asio::any_io_executor ex,
                                 std::shared_ptr<const quic_settings> settings,
                                 std::shared_ptr<const quic_tls_context> tls,
                                 std::shared_ptr<sdk::flow> lower, sdk::open_params p)
    : executor_(std::move(ex))
    , settings_(std::move(settings))
    , tls_(std::move(tls))
    , params_(std::move(p))
    , timer_(executor_)
    , handshake_timer_(executor_)
    , deadline_timer_(executor_) {
    auto first = std::make_unique<quic_path>();
    first->id = next_path_id_++;
    first->lower = std::move(lower);
    paths_.push_back(std::move(first));
}

quic_connection::~quic_connection() {
    boost::system::error_code ignored;
    timer_.cancel(ignored);
    handshake_timer_.cancel(ignored);
    deadline_timer_.cancel(ignored);
    try {
        // Every stream flow was dropped without a close: the peer hears it at once.
        if (conn_ && state_ != state::done && !closing_sent_ && !current_path().closed) {
            ngtcp2_connection_close_error cc;
            ngtcp2_connection_close_error_default(&cc);
            static constexpr char why[] = "all streams dropped";
            ngtcp2_connection_close_error_set_application_error(
                &cc, app_aborted, reinterpret_cast<const std::uint8_t*>(why), sizeof why - 1);
            write_close(cc);
        }
        for (auto& p : paths_)
            p->release();
    } catch (...) {
    }
    unregister_cids();
    if (conn_) ngtcp2_conn_del(conn_);
    if (session_) gnutls_deinit(session_);
}

std::string quic_connection::peer() const {
    return params_.remote.to_string();
}

void quic_connection::log(sdk::log_level level, const std::string& text) const noexcept {
    settings_->write_log(level, text);
}

std::uint64_t quic_connection::now() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

ngtcp2_callbacks quic_connection::callbacks(bool client) {
    ngtcp2_callbacks cb{};
    if (client) {
        cb.client_initial = ngtcp2_crypto_client_initial_cb;
        cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
        cb.recv_version_negotiation = &cb_recv_version_negotiation;
    } else {
        cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    }
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.handshake_completed = &cb_handshake_completed;
    cb.handshake_confirmed = &cb_handshake_confirmed;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.recv_stream_data = &cb_recv_stream_data;
    cb.acked_stream_data_offset = &cb_acked_stream_data_offset;
    cb.stream_open = &cb_stream_open;
    cb.stream_close = &cb_stream_close;
    cb.extend_max_local_streams_bidi = &cb_extend_max_local_streams_bidi;
    cb.extend_max_remote_streams_bidi = &cb_extend_max_remote_streams_bidi;
    cb.extend_max_stream_data = &cb_extend_max_stream_data;
    cb.recv_datagram = &cb_recv_datagram;
    cb.rand = &cb_rand;
    cb.get_new_connection_id = &cb_get_new_connection_id;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.stream_reset = &cb_stream_reset;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.stream_stop_sending = &cb_stream_stop_sending;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.recv_stateless_reset = &cb_recv_stateless_reset;
    cb.remove_connection_id = &cb_remove_connection_id;
    cb.path_validation = &cb_path_validation;
    if (client) {
        cb.early_data_rejected = &cb_early_data_rejected;
        cb.recv_crypto_data = &cb_recv_crypto_data;
    }
    return cb;
}

void quic_connection::fill_settings(ngtcp2_settings& settings,
                                    ngtcp2_transport_params& params) const {
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now();
    settings.handshake_timeout =
        static_cast<ngtcp2_duration>(settings_->handshake_timeout.count()) * NGTCP2_MILLISECONDS;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_local = settings_->stream_window;
    params.initial_max_stream_data_bidi_remote = settings_->stream_window;
    // Unidirectional streams (a source's carrier) get the same credit as bidirectional ones:
    // max-streams of each kind, stream-window each (docs/quic.md "Unidirectional streams").
    params.initial_max_stream_data_uni = settings_->stream_window;
    params.initial_max_data = settings_->connection_window;
    params.initial_max_streams_bidi = settings_->max_streams;
    params.initial_max_streams_uni = settings_->max_streams;
    params.max_idle_timeout =
        static_cast<ngtcp2_duration>(settings_->idle_timeout.count()) * NGTCP2_MILLISECONDS;
    params.active_connection_id_limit = 7;
    // RFC 9000 18.2: the peer must not move the connection (our clients honour it).
    params.disable_active_migration = settings_->migration ? 0 : 1;
    // RFC 9221: the largest DATAGRAM frame we take (0 = none). A datagram never spans packets,
    // so anything near 64 KiB is as good as unlimited.
    params.max_datagram_frame_size = settings_->datagrams ? 65535 : 0;
    if (!settings_->qlog_dir.empty()) settings.qlog.write = &cb_qlog_write;
    if (app_) app_->transport_params(params);
}

void quic_connection::open_qlog(const ngtcp2_cid& odcid) {
    if (settings_->qlog_dir.empty()) return;
    qlog_ = std::make_unique<quic_qlog>(settings_->qlog_dir, odcid.data, odcid.datalen, client());
    if (qlog_->ok())
        log(sdk::log_level::debug, "qlog: " + qlog_->path());
    else
        log(sdk::log_level::warning, "qlog: " + qlog_->error() + " (no qlog for this connection)");
}

void quic_connection::set_path() {
    auto& path = current_path();
    const auto below = path.lower->info();
    path.trains = (below.capabilities & sdk::cap_segmented_send) != 0;
    path.set_addresses(below.local, params_.remote.port ? params_.remote : below.remote);
}

bool quic_connection::create_client(sdk::flow_error& err) {
    set_path();
    ngtcp2_cid dcid{}, scid{};
    dcid.datalen = client_dcid_len;
    scid.datalen = scid_len;
    if (gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0) {
        err = {std::make_error_code(std::errc::io_error), "quic: no random connection id"};
        return false;
    }
    open_qlog(dcid); // ngtcp2 writes the first records while it creates the connection
    ngtcp2_settings settings;
    ngtcp2_transport_params params;
    fill_settings(settings, params);
    const auto cb = callbacks(true);
    const auto path = current_path().view();
    if (int rv = ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb,
                                        &settings, &params, nullptr, this);
        rv != 0) {
        conn_ = nullptr;
        err = {std::make_error_code(std::errc::not_enough_memory),
               std::string("quic: cannot create a connection: ") + ngtcp2_strerror(rv)};
        return false;
    }
    if (!set_up_tls(err)) return false;
    if (!offer_ticket()) {
        // GnuTLS refused the stored session and may have kept part of it: a clean session.
        gnutls_deinit(session_);
        session_ = nullptr;
        return set_up_tls(err);
    }
    return true;
}

bool quic_connection::accept_initial(const std::uint8_t* data, std::size_t len) {
    ngtcp2_pkt_hd hd{};
    // A version we do not speak is decided here, before ngtcp2_accept: whatever that returns
    // for it, no connection may be created with it.
    ngtcp2_version_cid vc{};
    const bool unknown_version =
        ngtcp2_pkt_decode_version_cid(&vc, data, len, scid_len) == NGTCP2_ERR_VERSION_NEGOTIATION;
    if (unknown_version || ngtcp2_accept(&hd, data, len) != 0) {
        // Not a valid client Initial: no connection, no state; at most a stateless answer.
        answer_stranger(data, len);
        if (summary_.dropped_before_accept++ == 0)
            log(sdk::log_level::debug, "datagram of " + std::to_string(len) + " bytes from " +
                                           peer() + " is not a QUIC Initial: dropped");
        return false;
    }
    set_path();
    ngtcp2_cid scid{};
    scid.datalen = scid_len;
    if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0) return false;
    ngtcp2_settings settings;
    ngtcp2_transport_params params;
    fill_settings(settings, params);
    params.original_dcid = hd.dcid;
    settings.qlog.odcid = hd.dcid; // the client's choice names the trace on both sides
    open_qlog(hd.dcid);
    // Derived, not random: whoever holds this process's secret can reset this connection
    // after it is gone (RFC 9000 10.3).
    params.stateless_reset_token_present =
        reset_token(scid.data, scid.datalen, params.stateless_reset_token) ? 1 : 0;
    const auto cb = callbacks(false);
    const auto path = current_path().view();
    if (int rv = ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &path, hd.version, &cb, &settings,
                                        &params, nullptr, this);
        rv != 0) {
        conn_ = nullptr;
        ++summary_.dropped_before_accept;
        log(sdk::log_level::info,
            std::string("cannot accept a connection from ") + peer() + ": " + ngtcp2_strerror(rv));
        return false;
    }
    register_cid(scid);
    sdk::flow_error err;
    if (!set_up_tls(err)) {
        fail(err, std::nullopt);
        return false;
    }
    return true;
}

void quic_connection::answer_stranger(const std::uint8_t* data, std::size_t len) {
    if (answered_stranger_ || len == 0) return;
    ngtcp2_version_cid vc{};
    const int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, scid_len);
    std::array<std::uint8_t, 1 + 4 + 1 + 255 + 1 + 255 + 16> buf;
    if (data[0] & 0x80) {
        // Long header. RFC 9000 6.1: a Version Negotiation answers an unknown version in a
        // datagram of at least 1200 bytes, never a Version Negotiation (version 0), whose
        // decoding returns 0 here, nor a shorter datagram (RFC 8999 6: amplification).
        if (rv != NGTCP2_ERR_VERSION_NEGOTIATION || len < min_initial_datagram) return;
        std::uint8_t unused = 0;
        if (gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1) != 0) unused = 0;
        // The versions we take: ngtcp2_conn_server_new is given the client's version, and our
        // clients offer only version 1.
        const std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
        // The client's SCID becomes our DCID and its DCID our SCID (RFC 9000 17.2.1).
        const auto n = ngtcp2_pkt_write_version_negotiation(
            buf.data(), buf.size(), static_cast<std::uint8_t>(unused & 0x7f), vc.scid, vc.scidlen,
            vc.dcid, vc.dcidlen, versions, std::size(versions));
        if (n <= 0) return;
        answered_stranger_ = true;
        ++summary_.version_negotiations_sent;
        log(sdk::log_level::debug, "QUIC version " + hex32(vc.version) + " from " + peer() +
                                       " is not ours: Version Negotiation sent (we speak " +
                                       hex32(NGTCP2_PROTO_VER_V1) + ")");
        send_packet(buf.data(), static_cast<std::size_t>(n));
        return;
    }
    // Short header: a packet of a connection this flow never had (this process restarted the
    // listener, or the peer's address changed). RFC 9000 10.3: a stateless reset for its DCID
    // tells the peer at once, instead of its idle timeout; only to packets long enough that
    // the reset is smaller, and at least 21 bytes.
    if (rv != 0 || len < min_reset_trigger || vc.dcidlen != scid_len) return;
    std::uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    if (!reset_token(vc.dcid, vc.dcidlen, token)) return;
    const std::size_t total = std::min(len - 1, max_reset_size);
    std::uint8_t rand[max_reset_size];
    const std::size_t randlen = total - NGTCP2_STATELESS_RESET_TOKENLEN;
    if (gnutls_rnd(GNUTLS_RND_NONCE, rand, randlen) != 0) return;
    const auto n = ngtcp2_pkt_write_stateless_reset(buf.data(), buf.size(), token, rand, randlen);
    if (n <= 0) return;
    answered_stranger_ = true;
    ++summary_.stateless_resets_sent;
    log(sdk::log_level::debug, "short-header packet of " + std::to_string(len) + " bytes from " +
                                   peer() +
                                   " for a connection we do not know: stateless reset "
                                   "sent");
    send_packet(buf.data(), static_cast<std::size_t>(n));
}

std::string quic_connection::tls_name(bool& is_address) const {
    std::string name = settings_->server_name.empty() ? params_.host_name : settings_->server_name;
    is_address = false;
    if (name.empty()) {
        name = params_.remote.address.to_string();
        is_address = true;
    } else {
        boost::system::error_code ec;
        boost::asio::ip::make_address(name, ec);
        is_address = !ec;
    }
    return name;
}

bool quic_connection::set_up_tls(sdk::flow_error& err) {
    std::string sni;
    if (client()) {
        bool is_address = false;
        const std::string name = tls_name(is_address);
        verify_.check_chain = settings_->verify_peer;
        verify_.pins = settings_->pins;
        verify_.expected_name = name;
        verify_.expected_is_address = is_address;
        if (!is_address) sni = name; // RFC 6066: SNI carries host names only
        if (!settings_->verify_peer)
            log(sdk::log_level::warning,
                "certificate verification is OFF (verify-peer: false): the server at " + peer() +
                    " is not authenticated, anyone on the path can read and change the data");
    }
    link_.ref.get_conn = &cb_get_conn;
    link_.ref.user_data = this;
    link_.verify = client() ? &verify_ : nullptr;
    link_.keylog = settings_->keylog.empty() ? nullptr : &settings_->keylog;
    session_ = tls_->new_session(params_.side, link_, sni, early_offer_, err,
                                 app_ ? &app_->alpn() : nullptr);
    if (!session_) return false;
    ngtcp2_conn_set_tls_native_handle(conn_, session_);
    return true;
}

// ---- the application protocol ------------------------------------------------------------

void quic_connection::set_application(std::shared_ptr<quic_application> app) {
    app_ = std::move(app);
    // The ticket is filed under the ALPN list, which changed. No 0-RTT for an application
    // protocol: its requests are not framed by quic_stream, which holds the 0-RTT logic.
    stored_.reset();
    early_offer_ = false;
    if (client()) load_ticket();
}

void quic_connection::set_pending_close(sdk::flow_error e, std::uint64_t code, std::string reason) {
    if (!pending_close_) pending_close_ = pending_close{std::move(e), code, std::move(reason)};
}

void quic_connection::request_close(sdk::flow_error e, std::uint64_t code, std::string reason) {
    set_pending_close(std::move(e), code, std::move(reason));
    schedule();
}

bool quic_connection::close_if_pending() {
    if (!pending_close_) return false;
    auto pc = std::move(*pending_close_);
    pending_close_.reset();
    fail_app(pc.error, pc.app_code, pc.reason);
    return true;
}

// ---- calls from the stream flows ----------------------------------------------------------

void quic_connection::start_stream(quic_stream& s) noexcept {
    try {
        if (state_ == state::idle && s.first_) {
            state_ = state::connecting;
            handshake_timer_.expires_after(settings_->handshake_timeout);
            handshake_timer_.async_wait(
                [weak = weak_from_this()](const boost::system::error_code& ec) {
                    if (ec) return;
                    if (auto self = weak.lock()) self->guarded([&] { self->on_handshake_timer(); });
                });
            // The client connects at its on_ready; the server waits for data.
            current_path().lower->start();
            return;
        }
        schedule();
    } catch (...) {
        fail_later({std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"});
    }
}

void quic_connection::abort_stream(quic_stream& s) noexcept {
    try {
        if (state_ == state::done) return;
        if (s.id_ >= 0) resets_.push_back(s.id_);
        peer_uni_ended(s);
        bool others = !new_incoming_.empty();
        for (auto& w : streams_) {
            auto o = w.lock();
            if (o && o.get() != &s && !o->done_ && !o->aborted_) others = true;
        }
        // The last open stream: the connection ends with CONNECTION_CLOSE (aborted), as a
        // one-stream connection always does.
        if (!others) abort_requested_ = true;
        schedule();
    } catch (...) {
    }
}

void quic_connection::adopt_orphans(quic_stream& s) noexcept {
    try {
        if (s.id_ < 0 || !conn_) return;
        std::deque<retained_bytes> keep = std::move(s.retained_);
        for (auto& e : s.early_)
            keep.push_back({e.end, std::move(e.msg.header), std::move(e.msg.data)});
        for (auto& m : s.out_)
            if (m.written > 0)
                keep.push_back({s.tx_offset_, std::move(m.header), std::move(m.data)});
        if (keep.empty()) return;
        auto& o = orphans_[s.id_];
        for (auto& r : keep)
            o.bytes.push_back(std::move(r));
    } catch (...) {
        // Out of memory while keeping bytes ngtcp2 references: it must not touch them again.
        if (conn_ && state_ != state::done) {
            ngtcp2_conn_del(conn_);
            conn_ = nullptr;
        }
    }
}

std::shared_ptr<sdk::flow> quic_connection::fork(sdk::flow_direction dir) noexcept {
    try {
        if (app_) return nullptr; // the application protocol has the streams
        if (state_ == state::done || closing_sent_ || abort_requested_) return nullptr;
        if (dir != sdk::flow_direction::send_only) dir = sdk::flow_direction::bidirectional;
        auto s = std::make_shared<quic_stream>(shared_from_this(), false, false, dir);
        streams_.push_back(s);
        schedule();
        return s;
    } catch (...) {
        return nullptr;
    }
}

void quic_connection::peer_uni_ended(quic_stream& s) noexcept {
    if (ngtcp2_closes_peer_uni || !conn_ || !s.receive_only() || s.id_ < 0 ||
        std::exchange(s.credit_returned_, true))
        return;
    // ngtcp2 0.12 keeps the stream's state until the connection ends: bounded by giving back
    // credit for a limited number of them only (docs/quic.md "Unidirectional streams").
    if (++lingering_uni_ > lingering_uni_limit()) {
        if (lingering_uni_ == lingering_uni_limit() + 1)
            log(sdk::log_level::info,
                "unidirectional streams from " + peer() + ": credit given back for " +
                    std::to_string(lingering_uni_limit()) +
                    " ended ones, no more on this connection (ngtcp2 before 0.14 keeps their "
                    "state until it ends)");
        return;
    }
    ngtcp2_conn_extend_max_streams_uni(conn_, 1);
}

void quic_connection::stop_reading(quic_stream& s) noexcept {
    try {
        if (state_ == state::done || s.id_ < 0) return;
        stops_.push_back(s.id_);
        // Closed here: what the peer still sends on it is dropped, and the flow ends cleanly
        // (its RESET_STREAM answering our STOP_SENDING finds it done).
        s.finish({});
        peer_uni_ended(s);
        schedule();
    } catch (...) {
    }
}

sdk::flow_info quic_connection::info() const noexcept {
    sdk::flow_info i;
    i.kind = sdk::edge::message;
    i.local = local_endpoint();
    i.remote = remote_endpoint();
    i.max_message_size = settings_->max_message_size;
    // Ordered and reliable per stream; on_sent when written into packets, not when acked.
    // A message whose deadline passes part-way through is stopped (RESET_STREAM, on_expired),
    // which ends its stream flow (docs/quic.md "Lifetimes").
    i.capabilities = sdk::cap_ordered | sdk::cap_expires_in_flight;
    // A client moves its connection (docs/quic.md "Migration"); a server follows its client.
    if (client() && settings_->migration) i.capabilities |= sdk::cap_migrates;
    // 0-RTT: idempotent messages sent now may travel before the handshake (docs/quic.md).
    if (early_offer_ && state_ != state::established && state_ != state::done && !handshake_done_)
        i.capabilities |= sdk::cap_early_data;
    return i;
}

void quic_connection::schedule() noexcept {
    if (service_posted_) return;
    try {
        boost::asio::post(executor_, [self = shared_from_this()] {
            self->service_posted_ = false;
            self->guarded([&] { self->service(); });
        });
        service_posted_ = true;
    } catch (...) {
    }
}

void quic_connection::fail_later(sdk::flow_error e) noexcept {
    try {
        boost::asio::post(executor_, [self = shared_from_this(), e = std::move(e)] {
            self->guarded([&] { self->fail_app(e, app_internal, "internal error"); });
        });
    } catch (...) {
    }
}

// ---- the lower flow -----------------------------------------------------------------------

void quic_connection::on_ready() noexcept {
    if (state_ == state::done || !client() || conn_) return;
    try {
        sdk::flow_error err;
        if (!create_client(err)) return fail(err, std::nullopt);
        log(sdk::log_level::debug,
            "Initial sent to " + peer() + (early_params_set_ ? " (0-RTT allowed)" : ""));
        service();
    } catch (...) {
        fail({std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"},
             std::nullopt);
    }
}

void quic_connection::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    path_received(1, std::move(data)); // the first lower flow's events come here
}

void quic_connection::on_closed(const sdk::flow_error& e) noexcept {
    path_closed(1, e);
}

void quic_connection::path_received(std::uint64_t id, sdk::byte_buffer data) noexcept {
    if (state_ == state::done || data.empty()) return;
    auto* path = find_path(id);
    if (!path) return; // a released path's late datagram
    try {
        receive_on(*path, std::move(data));
    } catch (...) {
        fail_app({std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"},
                 app_internal, "internal error");
    }
}

void quic_connection::receive_on(quic_path& path, sdk::byte_buffer data) {
    ++summary_.packets_in;
    const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
    if (!conn_) {
        if (client() || state_ == state::idle) return;
        // A migrated client's packet belongs to a connection we have: it takes this flow.
        if (hand_over(data)) return;
        if (!accept_initial(p, data.size())) return;
    }
    ngtcp2_pkt_info pi{};
    const auto view = path.view();
    const int rv = ngtcp2_conn_read_pkt(conn_, &view, &pi, p, data.size(), now());
    if (close_if_pending()) return;
    if (rv != 0) return handle_liberr(rv, "reading a packet");
    track_path();
    if (state_ != state::established) return service();
    // Established: what this datagram completed is reported now, in arrival order across
    // streams, but writing waits for one pass after the burst the lower flow delivers in
    // this turn (one ACK, and the freed window filled with trains, not two packets per ACK).
    dispatch();
    if (state_ == state::done) return;
    // The last stream ended: the whole pass now, so the connection closes in this call as
    // before (ACKs, then CONNECTION_CLOSE).
    if (!any_open_stream()) return service();
    schedule();
}

void quic_connection::path_closed(std::uint64_t id, const sdk::flow_error& e) noexcept {
    auto* path = find_path(id);
    if (!path) return;
    path->closed = true;
    if (state_ == state::done) return;
    try {
        if (path != &current_path()) {
            // A path we moved away from (or one that never got going): the connection goes on.
            if (id == migrating_to_) {
                migrating_to_ = 0;
                log(sdk::log_level::info, "migration abandoned: the new path's datagram flow " +
                                              std::string(e ? "failed: " + e.reason : "closed") +
                                              "; the connection stays on " +
                                              local_endpoint().to_string());
            }
            std::erase_if(paths_, [&](const auto& p) { return p.get() == path; });
            return;
        }
        fail(e ? sdk::flow_error{e.code, "quic: the datagram flow below failed: " + e.reason}
               : sdk::flow_error{std::make_error_code(std::errc::connection_aborted),
                                 "quic: the datagram flow below closed before the connection "
                                 "ended"},
             std::nullopt);
    } catch (...) {
    }
}

// ---- the service pass ---------------------------------------------------------------------

void quic_connection::service() {
    auto self = shared_from_this();
    // An application's close (or abort) was asked first: its code, not the stream layer's.
    if (state_ != state::done && close_if_pending()) return;
    if (abort_requested_ && state_ != state::done) {
        abort_requested_ = false;
        return fail_app({std::make_error_code(std::errc::connection_aborted),
                         "quic: the connection to " + peer() +
                             " was aborted (abort() on its last open stream)"},
                        app_aborted, "aborted");
    }
    if (state_ == state::done || !conn_) return dispatch();
    if (handshake_done_ && state_ == state::connecting) {
        on_established();
        if (state_ == state::done) return;
    }
    if (link_.ticket.pending && state_ == state::established) store_ticket();
    if (state_ == state::established) open_pending_streams();
    if (early_rx_ && state_ == state::connecting) {
        // Server with accepted 0-RTT data: hand it up before writing, so that what the layer
        // above answers at once rides in this flight (0.5-RTT), coalesced with the handshake.
        dispatch();
        if (state_ == state::done) return;
    }
    for (auto id : std::exchange(resets_, {}))
        ngtcp2_conn_shutdown_stream(conn_, id, app_aborted); // RESET_STREAM + STOP_SENDING
    for (auto id : std::exchange(stops_, {}))
        ngtcp2_conn_shutdown_stream_read(conn_, id, app_no_error); // STOP_SENDING
    expire();
    write_packets();
    if (state_ == state::done) return;
    dispatch();
    if (state_ == state::done) return;
    maybe_close_connection();
    if (state_ == state::done) return;
    arm_timer();
}

void quic_connection::on_established() {
    state_ = state::established;
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    gnutls_datum_t alpn{};
    if (gnutls_alpn_get_selected_protocol(session_, &alpn) != 0 || alpn.size == 0) {
        ngtcp2_connection_close_error cc;
        ngtcp2_connection_close_error_default(&cc);
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &cc, alert_no_application_protocol, nullptr, 0);
        return fail({std::make_error_code(std::errc::protocol_error),
                     "quic: handshake failed: no shared ALPN protocol (we offered " +
                         alpn_text(this->alpn()) + ")"},
                    cc);
    }
    summary_.alpn.assign(reinterpret_cast<const char*>(alpn.data), alpn.size);
    log(sdk::log_level::debug, "connection up with " + peer() + " (ALPN " + summary_.alpn + ")");
    if (client())
        decide_early();
    else
        server_established();
    if (app_ && state_ != state::done && app_->on_established(conn_) != 0) {
        if (!close_if_pending())
            fail_app({std::make_error_code(std::errc::protocol_error),
                      "quic: the application protocol could not start"},
                     app_->internal_error_code(), "internal error");
    }
}

// ---- 0-RTT ------------------------------------------------------------------------------

void quic_connection::load_ticket() {
    if (!settings_->session_tickets) {
        no_session_reason_ = "session-tickets off";
        return;
    }
    if (!params_.session) return; // "no ticket"
    bool is_address = false;
    session_key_ = session_key(tls_name(is_address), alpn());
    stored_ = load_session(*params_.session, session_key_, std::time(nullptr), no_session_reason_);
    if (!stored_) {
        if (no_session_reason_ != "no ticket")
            log(sdk::log_level::debug,
                "stored ticket for " + session_key_ + " erased: " + no_session_reason_);
        return;
    }
    early_offer_ = stored_->early && settings_->early_data_for(sdk::role::client) && !app_;
    log(sdk::log_level::debug, "offering a stored session for " + session_key_ +
                                   (early_offer_ ? " (early data allowed)" : ""));
}

bool quic_connection::offer_ticket() {
    if (!stored_) return true;
    // Before the first write: the ClientHello is built inside it (client_initial).
    if (gnutls_session_set_data(session_, stored_->tls.data(), stored_->tls.size()) < 0) {
        no_session_reason_ = "stored ticket unreadable";
        log(sdk::log_level::debug,
            "stored ticket for " + session_key_ + " erased: " + no_session_reason_);
        params_.session->erase(session_key_);
        stored_.reset();
        early_offer_ = false;
        return false;
    }
    offered_session_ = true;
    if (!early_offer_) return true;
    ngtcp2_conn_set_early_remote_transport_params(conn_, &stored_->params);
    early_params_set_ = true;
    // The first flow's stream exists at once so its idempotent messages can go in 0-RTT;
    // forks wait for the handshake.
    for (auto& w : streams_) {
        auto s = w.lock();
        if (!s || !s->first_ || s->id_ >= 0 || s->done_ || s->aborted_) continue;
        std::int64_t id = -1;
        if (open_stream_for(*s, id) == 0) {
            s->id_ = id;
            s->announce_ = true;
        }
        break;
    }
    return true;
}

void quic_connection::decide_early() {
    summary_.resumed = gnutls_session_is_resumed(session_) != 0;
    std::string decision;
    if (summary_.resumed) {
        decision = "resumed session";
    } else if (offered_session_) {
        decision = "full handshake (ticket refused)";
        if (params_.session) params_.session->erase(session_key_);
    } else {
        decision = "full handshake (" + no_session_reason_ + ")";
    }
    if (early_params_set_) {
        const bool accepted = (gnutls_session_get_flags(session_) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
        if (accepted) {
            if (summary_.early_bytes) summary_.early = quic_summary::early_data::accepted;
            for (auto& w : streams_) {
                auto s = w.lock();
                if (!s) continue;
                for (auto& e : std::exchange(s->early_, {})) {
                    // ACKs of 0-RTT data may have come in the read that ended the handshake.
                    if (e.end > s->acked_upto_)
                        s->retained_.push_back(
                            {e.end, std::move(e.msg.header), std::move(e.msg.data)});
                    s->sent_.push_back(e.msg.id);
                }
            }
            if (summary_.early_bytes)
                log(sdk::log_level::debug,
                    "early data accepted (" + std::to_string(summary_.early_bytes) + " bytes)");
        } else {
            if (summary_.early_bytes) summary_.early = quic_summary::early_data::rejected;
            // ngtcp2 forgets the streams, their 0-RTT packets and the stream ids; it references
            // none of our bytes any more. cb_early_data_rejected only records.
            rewinding_ = true;
            const int rv = ngtcp2_conn_early_data_rejected(conn_);
            rewinding_ = false;
            if (rv != 0) return handle_liberr(rv, "discarding rejected early data");
            orphans_.clear(); // bytes of streams dropped meanwhile: all 0-RTT, all forgotten
            rewind_streams();
            if (summary_.early_bytes)
                log(sdk::log_level::debug, "early data rejected by the server; sending its " +
                                               std::to_string(summary_.early_bytes) +
                                               " bytes again after the handshake");
        }
    }
    log(sdk::log_level::debug, decision);
}

void quic_connection::rewind_streams() {
    for (auto& w : streams_) {
        auto s = w.lock();
        if (!s || s->id_ < 0) continue;
        std::erase(resets_, s->id_); // that id will name another stream
        std::erase(stops_, s->id_);
        orphans_.erase(s->id_);
        // Everything goes back to the front of the queue, in order, unwritten.
        std::deque<quic_stream::out_message> again;
        for (auto& e : std::exchange(s->early_, {})) {
            s->queued_bytes_ += e.msg.size();
            e.msg.written = 0;
            again.push_back(std::move(e.msg));
        }
        for (auto& m : s->out_) {
            s->queued_bytes_ += m.written;
            m.written = 0;
            again.push_back(std::move(m));
        }
        s->out_ = std::move(again);
        s->retained_.clear();
        s->id_ = -1;
        s->tx_offset_ = 0;
        s->acked_upto_ = 0;
        s->fin_sent_ = false;
        s->announce_ = false;
    }
}

void quic_connection::server_established() {
    summary_.resumed = gnutls_session_is_resumed(session_) != 0;
    if (tls_->accepts_early_data()) {
        const bool accepted = (gnutls_session_get_flags(session_) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
        // Only when 0-RTT carried stream data (a resumed client may offer it and send none).
        if (accepted && summary_.early_bytes) summary_.early = quic_summary::early_data::accepted;
        if (summary_.early_bytes)
            log(sdk::log_level::debug, "early data " +
                                           std::string(accepted ? "accepted" : "rejected") + " (" +
                                           std::to_string(summary_.early_bytes) + " bytes)");
    }
    log(sdk::log_level::debug, summary_.resumed ? "resumed session" : "full handshake");
    if (tls_->issues_tickets()) {
        if (int rv = gnutls_session_ticket_send(session_, 1, 0); rv < 0)
            log(sdk::log_level::debug,
                std::string("no session ticket sent: ") + gnutls_strerror(rv));
    }
}

void quic_connection::store_ticket() {
    const auto t = link_.ticket;
    link_.ticket.pending = false;
    if (!params_.session || !settings_->session_tickets || session_key_.empty()) return;
    if (t.malformed) {
        log(sdk::log_level::debug, "session ticket from " + peer() + " not stored: unreadable");
        return;
    }
    gnutls_datum_t data{};
    if (int rv = gnutls_session_get_data2(session_, &data); rv < 0) {
        log(sdk::log_level::debug,
            std::string("session ticket not stored: ") + gnutls_strerror(rv));
        return;
    }
    stored_session st;
    st.tls.assign(data.data, data.data + data.size);
    gnutls_free(data.data);
    const auto* rp = ngtcp2_conn_get_remote_transport_params(conn_);
    std::uint8_t buf[1024];
    const auto n = rp ? ngtcp2_encode_transport_params(
                            buf, sizeof buf, NGTCP2_TRANSPORT_PARAMS_TYPE_ENCRYPTED_EXTENSIONS, rp)
                      : -1;
    if (n <= 0) {
        log(sdk::log_level::debug, "session ticket not stored: transport parameters too large");
        return;
    }
    st.tp.assign(buf, buf + n);
    // RFC 9001 4.6.1: a QUIC ticket allows 0-RTT only with max_early_data_size 0xffffffff.
    st.early = t.max_early_data && *t.max_early_data == 0xffffffffu;
    if (t.max_early_data && !st.early)
        log(sdk::log_level::debug, "the ticket's max_early_data_size is " +
                                       std::to_string(*t.max_early_data) +
                                       ", not 0xffffffff as QUIC requires: no 0-RTT with it");
    st.stored_at = static_cast<std::uint64_t>(std::time(nullptr));
    st.lifetime = t.lifetime;
    params_.session->store(session_key_, encode_session(st));
    ++summary_.tickets_stored;
    log(sdk::log_level::debug,
        "stored a session ticket for " + session_key_ + (st.early ? " (early data allowed)" : ""));
}

int quic_connection::open_stream_for(const quic_stream& s, std::int64_t& id) {
    return s.send_only() ? ngtcp2_conn_open_uni_stream(conn_, &id, nullptr)
                         : ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr);
}

void quic_connection::open_pending_streams() {
    if (app_) return; // the application opens its own streams
    // Unidirectional and bidirectional streams have separate credit: one kind waiting does not
    // hold up the other, and within a kind streams open in creation order.
    bool blocked_uni = false;
    bool blocked_bidi = false;
    for (auto& w : streams_) {
        auto s = w.lock();
        if (!s || s->done_ || s->aborted_ || s->id_ >= 0) continue;
        if (s->first_ && !client()) continue; // bound to the client's first stream
        bool& blocked = s->send_only() ? blocked_uni : blocked_bidi;
        if (blocked) continue;
        std::int64_t id = -1;
        const int rv = open_stream_for(*s, id);
        if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
            // Waits for MAX_STREAMS (extend_max_local_streams_bidi/uni), then the next pass.
            blocked = true;
            if (!s->waited_) {
                s->waited_ = true;
                ++summary_.streams_blocked;
                log(sdk::log_level::debug,
                    "no " + std::string(s->send_only() ? "unidirectional" : "bidirectional") +
                        " stream credit from " + peer() + ": a new stream waits for MAX_STREAMS");
            }
            continue;
        }
        if (rv != 0) {
            s->finish({std::make_error_code(std::errc::no_stream_resources),
                       std::string("quic: cannot open a stream: ") + ngtcp2_strerror(rv)});
            continue;
        }
        s->id_ = id;
        s->announce_ = true;
    }
}

std::shared_ptr<quic_stream> quic_connection::find(std::int64_t id) const {
    for (auto& w : streams_)
        if (auto s = w.lock(); s && s->id_ == id) return s;
    return nullptr;
}

std::shared_ptr<quic_stream> quic_connection::peer_stream(std::int64_t id) {
    if (auto s = find(id)) return s;
    if (ngtcp2_conn_is_local_stream(conn_, id)) return nullptr;
    const bool uni = (id & 0x2) != 0; // RFC 9000 2.1: the peer only sends on it
    if (!client()) {
        // The server's first flow is the first stream the client opens, of either kind.
        for (auto& w : streams_) {
            auto s = w.lock();
            if (s && s->first_ && s->id_ < 0 && !s->done_ && !s->aborted_) {
                s->id_ = id;
                if (uni) s->become_receive_only();
                return s;
            }
        }
    }
    auto s = std::make_shared<quic_stream>(shared_from_this(), false, true,
                                           uni ? sdk::flow_direction::receive_only
                                               : sdk::flow_direction::bidirectional);
    s->id_ = id;
    streams_.push_back(s);
    new_incoming_.push_back(s);
    return s;
}

std::shared_ptr<sdk::flow_events> quic_connection::first_open_events() const {
    for (auto& w : streams_) {
        auto s = w.lock();
        if (!s || !s->open() || !s->started_) continue;
        if (auto ev = s->events_.lock()) return ev;
    }
    return nullptr;
}

bool quic_connection::any_open_stream() const {
    if (!new_incoming_.empty()) return true;
    for (auto& w : streams_)
        if (auto s = w.lock(); s && !s->done_) return true;
    return false;
}

// ---- writing ------------------------------------------------------------------------------

void quic_connection::write_packets() {
    const std::size_t size = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
    // A lower flow that takes trains gets up to max_train_packets packets of one size per send
    // (one sendmsg with UDP GSO below), kept within the largest UDP payload and within what
    // ngtcp2's pacer lets go in one burst (its send quantum): a burst of long trains would
    // overrun a receiver's socket buffer even on loopback.
    const std::size_t quantum =
        std::min<std::size_t>(max_train_bytes, ngtcp2_conn_get_send_quantum(conn_));
    const bool trains = current_path().trains;
    const std::size_t max_train =
        trains ? std::clamp<std::size_t>(quantum / size, 1, max_train_packets) : 1;
    if (packet_.size() < size * max_train) packet_.resize(size * max_train);
    auto* base = reinterpret_cast<std::uint8_t*>(packet_.data());
    auto* buf = base;
    std::vector<std::int64_t> blocked;
    int packets = 0;
    // The train being built at `base`: `train_len` bytes of packets of `segment` bytes each (the
    // last may be shorter, and then it ends the train).
    std::size_t train_len = 0, segment = 0, train_count = 0;
    // The path ngtcp2 named for the train's packets (a migration can make them differ).
    quic_path* train_path = nullptr;
    ngtcp2_path_storage ps;
    auto flush = [&] {
        if (train_len == 0) return;
        // A lone packet goes as a train of one to a lower flow that takes trains: the udp layer
        // then reads bursts for us even when we only ever send single packets (a downloading
        // client's ACKs), one ACK per burst instead of one per two packets.
        const bool as_train = train_count > 1 || (train_path ? train_path->trains : trains);
        send_packet(base, train_len, as_train ? segment : 0, train_path);
        train_len = segment = train_count = 0;
        train_path = nullptr;
        // Pacing, as ngtcp2's examples do with GSO: the next train waits its turn (writev_stream
        // returns 0 until then; the expiry timer includes the next send time). Without trains,
        // packets go unpaced as before. Not before the first RTT sample: ngtcp2 0.12 then
        // derives the rate from its initial RTT (333 ms), so a 1200-byte Initial or first
        // server flight held that side's next flight ~20 ms (the client's Finished and first
        // message, the server's answer and echo: an ACK-only packet went instead). ngtcp2 0.14
        // uses 1 ms there; the handful of handshake packets is bounded by the congestion window
        // and anti-amplification anyway.
        if (trains && rtt_sampled()) ngtcp2_conn_update_pkt_tx_time(conn_, now());
    };
    // Datagrams first: they carry what cannot wait for retransmission, and each one is small.
    if (state_ == state::established && !datagrams_out_.empty() &&
        !write_datagrams(buf, size, packets))
        return;
    for (;;) {
        std::shared_ptr<quic_stream> s;
        ngtcp2_vec vec[16];
        std::size_t count = 0;
        std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_NONE;
        std::int64_t sid = -1;
        bool fin = false;
        if (app_) {
            // The application protocol says what goes next (nghttp3: pull, then acknowledge
            // what ngtcp2 took with wrote()).
            const long k = app_->next_write(conn_, sid, fin, vec, std::size(vec));
            if (k < 0) {
                flush();
                if (!close_if_pending())
                    fail_app({std::make_error_code(std::errc::protocol_error),
                              "quic: the application protocol failed while writing"},
                             app_->internal_error_code(), "internal error");
                return;
            }
            count = static_cast<std::size_t>(k);
            if (sid >= 0) {
                flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
                if (fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
            }
        }
        // The most urgent front message of a writable stream; among equals, the one served
        // longest ago.
        for (auto& w : streams_) {
            if (app_) break;
            auto c = w.lock();
            if (!c || !c->writable() ||
                std::find(blocked.begin(), blocked.end(), c->id_) != blocked.end())
                continue;
            if (s) {
                const int cn = c->out_.empty() ? 0 : c->out_.front().niceness;
                const int sn = s->out_.empty() ? 0 : s->out_.front().niceness;
                if (std::pair(cn, c->order_) >= std::pair(sn, s->order_)) continue;
            }
            s = std::move(c);
        }
        if (s) {
            sid = s->id_;
            flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
            if (!s->out_.empty()) {
                auto& m = s->out_.front();
                const std::size_t hs = m.header.size();
                if (m.written < hs)
                    vec[count++] = {reinterpret_cast<std::uint8_t*>(m.header.data()) + m.written,
                                    hs - m.written};
                const std::size_t dw = m.written > hs ? m.written - hs : 0;
                if (dw < m.data.size())
                    vec[count++] = {reinterpret_cast<std::uint8_t*>(m.data.data()) + dw,
                                    m.data.size() - dw};
                fin = s->close_requested_ && s->out_.size() == 1;
            } else {
                fin = s->close_requested_;
            }
            if (fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        ngtcp2_ssize written = -1;
        ngtcp2_pkt_info pi{};
        buf = base + train_len;
        ngtcp2_path_storage_zero(&ps);
        const auto n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, buf, size, &written, flags,
                                                 sid, count ? vec : nullptr, count, now());
        auto account = [&] {
            if (app_ && sid >= 0 && written >= 0) {
                std::size_t total = 0;
                for (std::size_t k = 0; k < count; ++k)
                    total += vec[k].len;
                const auto w = static_cast<std::size_t>(written);
                if (app_->wrote(sid, w, fin && w == total) != 0) close_if_pending();
                return;
            }
            if (!s || written < 0) return;
            s->announce_ = false;
            s->order_ = ++serve_counter_;
            const auto w = static_cast<std::size_t>(written);
            s->tx_offset_ += w;
            const bool early = early_window();
            if (early) summary_.early_bytes += w;
            if (!s->out_.empty()) {
                auto& m = s->out_.front();
                m.written += w;
                s->queued_bytes_ -= std::min(s->queued_bytes_, w);
                if (m.written == m.size()) {
                    if (early) {
                        // on_sent waits for the server's verdict on 0-RTT.
                        s->early_.push_back({std::move(m), s->tx_offset_});
                    } else {
                        s->retained_.push_back(
                            {s->tx_offset_, std::move(m.header), std::move(m.data)});
                        s->sent_.push_back(m.id);
                    }
                    s->out_.pop_front();
                }
            }
            if (fin && s->out_.empty()) s->fin_sent_ = true;
        };
        if (n < 0) {
            if (n == NGTCP2_ERR_WRITE_MORE) {
                account();
                if (state_ == state::done) return;
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
                n == NGTCP2_ERR_STREAM_NOT_FOUND) {
                if (!app_)
                    blocked.push_back(sid);
                else if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED)
                    app_->blocked(sid);
                else
                    app_->shut(sid);
                continue;
            }
            flush(); // what was written goes out before any CONNECTION_CLOSE
            return handle_liberr(static_cast<int>(n), "writing a packet");
        }
        account();
        if (state_ == state::done) return;
        if (n == 0) break; // nothing more now (congestion or pacing: the timer says when)
        const auto len = static_cast<std::size_t>(n);
        auto* target = path_for(ps.path);
        if (!target) {
            // For a path already released (a probe of an abandoned path): dropped; ngtcp2
            // treats it as lost.
            if (++packets >= packets_per_pass) {
                schedule();
                break;
            }
            continue;
        }
        if (train_count > 0 && (len > segment || target != train_path)) {
            // Longer than the train's packets, or for another path: the train goes as it is,
            // this packet starts the next one.
            flush();
            std::memmove(base, buf, len);
        }
        if (train_count++ == 0) {
            segment = len;
            train_path = target;
        }
        train_len += len;
        if (len < segment || train_count >= max_train || target != &current_path()) flush();
        if (++packets >= packets_per_pass) {
            schedule();
            break;
        }
    }
    flush();
}

bool quic_connection::rtt_sampled() const noexcept {
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(conn_, &cs);
    return cs.first_rtt_sample_ts != std::numeric_limits<ngtcp2_tstamp>::max();
}

void quic_connection::send_packet(const std::uint8_t* data, std::size_t n, std::size_t segment,
                                  quic_path* on) {
    auto& path = on ? *on : current_path();
    if (!path.lower || path.closed || path.close_requested) return;
    const auto* b = reinterpret_cast<const std::byte*>(data);
    sdk::send_meta m;
    m.id = path.next_send_id++;
    m.segment_size = static_cast<std::uint16_t>(segment);
    summary_.packets_out += segment ? (n + segment - 1) / segment : 1;
    if (segment && n > segment) ++summary_.trains_out;
    path.lower->send(sdk::byte_buffer(b, b + n), m);
}

void quic_connection::write_close(const ngtcp2_connection_close_error& cc) {
    if (!conn_ || closing_sent_) return;
    closing_sent_ = true;
    if (ngtcp2_conn_is_in_closing_period(conn_) || ngtcp2_conn_is_in_draining_period(conn_)) return;
    std::uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
    ngtcp2_pkt_info pi{};
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    const auto n =
        ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf, sizeof buf, &cc, now());
    if (n <= 0) return;
    auto* target = path_for(ps.path);
    send_packet(buf, static_cast<std::size_t>(n), 0, target ? target : &current_path());
}

// ---- datagrams and deadlines --------------------------------------------------------------

void quic_connection::send_datagram(quic_stream& s, sdk::byte_buffer data,
                                    const sdk::send_meta& meta) {
    auto refuse = [&](std::errc code, std::string why) {
        s.send_errors_.emplace_back(
            meta.id, sdk::flow_error{std::make_error_code(code),
                                     "quic: unreliable message not sent: " + std::move(why)});
        schedule();
    };
    if (!settings_->datagrams)
        return refuse(std::errc::operation_not_supported,
                      "QUIC datagrams are off here (option datagrams: false)");
    if (state_ == state::established) {
        // Known now; later sends are checked again when they are written.
        const auto room = datagram_room();
        if (room == 0)
            return refuse(std::errc::operation_not_supported,
                          "the peer does not accept QUIC datagrams (RFC 9221)");
        if (data.size() > room)
            return refuse(std::errc::message_size,
                          "too large for a QUIC datagram (" + std::to_string(data.size()) +
                              " bytes, at most " + std::to_string(room) + " fit in one packet)");
    }
    datagrams_out_.push_back({s.weak_from_this(), meta.id, meta.deadline, std::move(data)});
    schedule();
}

std::size_t quic_connection::datagram_room() const {
    if (!conn_) return 0;
    const auto* rp = ngtcp2_conn_get_remote_transport_params(conn_);
    if (!rp || rp->max_datagram_frame_size == 0) return 0;
    // A short-header packet costs at most 1 + 20 (connection id) + 4 (packet number) + 16
    // (AEAD tag) bytes; the DATAGRAM frame 1 (type) + up to 4 (length). A few bytes more are
    // kept so ngtcp2 can always place the frame in a packet of its own.
    constexpr std::size_t packet_overhead = 48;
    constexpr std::size_t frame_overhead = 5;
    const std::size_t path = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
    std::size_t frame =
        static_cast<std::size_t>(std::min<std::uint64_t>(rp->max_datagram_frame_size, 65535));
    if (path > packet_overhead) frame = std::min(frame, path - packet_overhead);
    return frame > frame_overhead ? frame - frame_overhead : 0;
}

bool quic_connection::write_datagrams(std::uint8_t* buf, std::size_t size, int& packets) {
    while (!datagrams_out_.empty()) {
        auto& d = datagrams_out_.front();
        auto s = d.from.lock();
        if (!s || s->aborted_) {
            datagrams_out_.pop_front();
            continue;
        }
        auto refuse = [&](std::errc code, std::string why) {
            s->send_errors_.emplace_back(
                d.id, sdk::flow_error{std::make_error_code(code),
                                      "quic: unreliable message not sent: " + std::move(why)});
            datagrams_out_.pop_front();
        };
        const auto room = datagram_room();
        if (room == 0) {
            refuse(std::errc::operation_not_supported,
                   "the peer does not accept QUIC datagrams (RFC 9221)");
            continue;
        }
        if (d.data.size() > room) {
            refuse(std::errc::message_size, "too large for a QUIC datagram (" +
                                                std::to_string(d.data.size()) + " bytes, at most " +
                                                std::to_string(room) + " fit in one packet)");
            continue;
        }
        ngtcp2_vec v{reinterpret_cast<std::uint8_t*>(d.data.data()), d.data.size()};
        int accepted = 0;
        ngtcp2_pkt_info pi{};
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        const auto n =
            ngtcp2_conn_writev_datagram(conn_, &ps.path, &pi, buf, size, &accepted,
                                        NGTCP2_WRITE_DATAGRAM_FLAG_NONE, d.id, &v, 1, now());
        if (n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
            refuse(n == NGTCP2_ERR_INVALID_STATE ? std::errc::operation_not_supported
                                                 : std::errc::message_size,
                   n == NGTCP2_ERR_INVALID_STATE
                       ? "the peer does not accept QUIC datagrams (RFC 9221)"
                       : "larger than the peer's max_datagram_frame_size");
            continue;
        }
        if (n < 0) {
            handle_liberr(static_cast<int>(n), "writing a datagram");
            return false;
        }
        if (accepted) {
            s->sent_.push_back(d.id);
            ++summary_.datagrams_out;
            datagrams_out_.pop_front();
        }
        if (n == 0) return false; // congestion or pacing: the timer says when
        if (auto* target = path_for(ps.path))
            send_packet(buf, static_cast<std::size_t>(n), 0, target);
        if (++packets >= packets_per_pass) {
            schedule();
            return false;
        }
    }
    return true;
}

void quic_connection::expire() {
    using clock = std::chrono::steady_clock;
    const auto t = clock::now();
    std::optional<clock::time_point> next;
    auto later = [&](const std::optional<clock::time_point>& d) {
        if (d && (!next || *d < *next)) next = d;
    };
    for (auto it = datagrams_out_.begin(); it != datagrams_out_.end();) {
        if (!it->deadline || *it->deadline > t) {
            later(it->deadline);
            ++it;
            continue;
        }
        if (auto s = it->from.lock(); s && !s->aborted_) s->expired_.push_back(it->id);
        ++summary_.expired;
        it = datagrams_out_.erase(it);
    }
    for (auto& w : streams_) {
        auto s = w.lock();
        if (!s || s->done_ || s->aborted_) continue;
        for (auto it = s->out_.begin(); it != s->out_.end();) {
            if (!it->deadline || *it->deadline > t) {
                later(it->deadline);
                ++it;
                continue;
            }
            ++summary_.expired;
            s->expired_.push_back(it->id);
            if (it->written == 0) {
                // Nothing of it left: the peer never hears of it, the stream goes on.
                s->queued_bytes_ -= std::min(s->queued_bytes_, it->size());
                it = s->out_.erase(it);
                continue;
            }
            // Part of it is out: only a reset stops the peer waiting for the rest, and a reset
            // ends the stream, so what was queued after it fails, naming the reason. The
            // written bytes stay referenced by ngtcp2 until the stream is closed.
            const auto id = it->id;
            s->retained_.push_back({s->tx_offset_, std::move(it->header), std::move(it->data)});
            s->out_.erase(it);
            ++summary_.expiry_resets;
            if (conn_ && s->id_ >= 0) ngtcp2_conn_shutdown_stream(conn_, s->id_, app_expired);
            s->finish({std::make_error_code(std::errc::timed_out),
                       "quic: message " + std::to_string(id) + " expired part-way through on " +
                           "stream " + std::to_string(s->id_) +
                           ": the stream was reset and this flow ended"});
            break;
        }
    }
    if (next != deadline_at_) {
        deadline_at_ = next;
        boost::system::error_code ignored;
        deadline_timer_.cancel(ignored);
        if (next) arm_deadline_timer();
    }
}

void quic_connection::arm_deadline_timer() {
    deadline_timer_.expires_at(*deadline_at_);
    deadline_timer_.async_wait(
        [weak = weak_from_this(), at = *deadline_at_](const boost::system::error_code& ec) {
            if (ec) return;
            auto self = weak.lock();
            if (!self || self->deadline_at_ != at) return;
            self->deadline_at_.reset();
            self->guarded([&] { self->service(); });
        });
}

// ---- events upward ------------------------------------------------------------------------

void quic_connection::dispatch() {
    auto self = shared_from_this();
    if (app_) app_->dispatch();
    for (auto& s : std::exchange(new_incoming_, {})) {
        // A unidirectional stream may be over (FIN) as it arrives: its messages still go up.
        if (s->done_ && s->inbox_.empty()) continue;
        auto ev = first_open_events();
        if (!ev) {
            log(sdk::log_level::info, "stream " + std::to_string(s->id_) + " opened by " + peer() +
                                          " refused: no open stream flow to hand it to");
            s->abort();
            continue;
        }
        ++summary_.incoming_streams;
        log(sdk::log_level::debug, "stream " + std::to_string(s->id_) + " opened by " + peer());
        ev->on_incoming_flow(s);
        // If nobody kept it, its destructor refuses it (RESET_STREAM).
    }
    std::vector<std::shared_ptr<quic_stream>> all;
    for (auto& w : streams_)
        if (auto s = w.lock()) all.push_back(std::move(s));
    std::erase_if(streams_, [](const std::weak_ptr<quic_stream>& w) { return w.expired(); });
    for (auto& s : all)
        report(*s);
    if (datagrams_in_.empty()) return;
    // Received datagrams go to the first open stream flow that is ready and receives
    // (docs/quic.md).
    for (auto& s : all) {
        if (!s->open() || !s->started_ || !s->ready_ || s->send_only()) continue;
        while (!datagrams_in_.empty() && !s->aborted_) {
            auto d = std::move(datagrams_in_.front());
            datagrams_in_.pop_front();
            sdk::receive_meta meta;
            if (d.early) meta.properties["early-data"] = "true"; // docs/quic.md "0-RTT"
            if (auto ev = s->events_.lock()) ev->on_received(std::move(d.data), meta);
        }
        break;
    }
}

void quic_connection::report(quic_stream& s) {
    if (s.aborted_ || !s.started_) return;
    auto events = [&s]() -> std::shared_ptr<sdk::flow_events> {
        return s.aborted_ ? nullptr : s.events_.lock();
    };
    auto make_ready = [&] {
        s.ready_ = true;
        if (auto ev = events()) ev->on_ready();
        if (s.held_credit_ && conn_ && s.id_ >= 0 && state_ != state::done) {
            ngtcp2_conn_extend_max_stream_offset(conn_, s.id_, s.held_credit_);
            ngtcp2_conn_extend_max_offset(conn_, s.held_credit_);
            s.held_credit_ = 0;
            schedule(); // MAX_STREAM_DATA / MAX_DATA go out
        }
    };
    const bool opened = s.id_ >= 0 || (s.first_ && !client());
    // Server: ngtcp2 decrypts 0-RTT only when GnuTLS accepted early data, so stream data from
    // it on the first flow's stream is ours to process now, before the client's Finished
    // (RFC 9001 4.1.1): the flow is ready and what it sends goes in 0.5-RTT packets.
    const bool early_ready = !client() && s.first_ && s.rx_early_ && state_ == state::connecting;
    if (!s.ready_ && !s.done_ && opened && (state_ == state::established || early_ready))
        make_ready();
    if (s.done_ && s.end_ && !*s.end_ && !s.ready_ && !s.aborted_) make_ready();
    while (s.ready_ && !s.inbox_.empty() && !s.aborted_) {
        auto m = std::move(s.inbox_.front());
        s.inbox_.pop_front();
        sdk::receive_meta meta;
        if (!s.inbox_early_.empty()) {
            // 0-RTT data can be replayed across connections: the application must be able to
            // tell (docs/quic.md "0-RTT").
            if (s.inbox_early_.front()) meta.properties["early-data"] = "true";
            s.inbox_early_.pop_front();
        }
        if (auto ev = events()) ev->on_received(std::move(m), meta);
    }
    if (std::exchange(s.path_changed_, false) && s.ready_)
        if (auto ev = events()) ev->on_path_changed();
    for (auto id : std::exchange(s.sent_, {}))
        if (auto ev = events()) ev->on_sent(id);
    for (auto id : std::exchange(s.expired_, {}))
        if (auto ev = events()) ev->on_expired(id);
    for (auto& [id, e] : std::exchange(s.send_errors_, {}))
        if (auto ev = events()) ev->on_send_error(id, e);
    if (s.done_ && s.end_ && !s.end_reported_ && !s.aborted_) {
        s.end_reported_ = true;
        const auto e = *s.end_;
        s.end_.reset();
        auto ev = events();
        s.events_.reset();
        if (ev) ev->on_closed(e);
    }
}

void quic_connection::maybe_close_connection() {
    if (state_ != state::established || closing_sent_ || any_open_stream()) return;
    // Every stream has ended (FIN both ways, acknowledged): the connection closes without
    // error.
    log(sdk::log_level::debug, "all streams with " + peer() + " ended: CONNECTION_CLOSE");
    ngtcp2_connection_close_error cc;
    ngtcp2_connection_close_error_default(&cc);
    ngtcp2_connection_close_error_set_application_error(&cc, app_no_error, nullptr, 0);
    write_close(cc);
    end_all({});
}

// ---- timers -------------------------------------------------------------------------------

void quic_connection::arm_timer() {
    if (!conn_ || state_ == state::done) return;
    const auto expiry = ngtcp2_conn_get_expiry(conn_);
    if (expiry == std::numeric_limits<std::uint64_t>::max()) return;
    if (timer_at_ == expiry) return;
    timer_at_ = expiry;
    const auto t = now();
    timer_.expires_after(std::chrono::nanoseconds(expiry > t ? expiry - t : 0));
    timer_.async_wait([weak = weak_from_this(), expiry](const boost::system::error_code& ec) {
        if (ec) return;
        auto self = weak.lock();
        if (!self || self->timer_at_ != expiry) return;
        self->timer_at_ = 0;
        self->on_timer();
    });
}

void quic_connection::on_timer() {
    if (state_ == state::done || !conn_) return;
    try {
        if (int rv = ngtcp2_conn_handle_expiry(conn_, now()); rv != 0)
            return handle_liberr(rv, "handling a timer");
        track_path(); // a path validation may have ended
        service();
    } catch (...) {
        fail_app({std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"},
                 app_internal, "internal error");
    }
}

void quic_connection::on_handshake_timer() {
    if (state_ != state::connecting) return;
    fail({std::make_error_code(std::errc::timed_out),
          "quic: handshake timeout: no connection with " + peer() + " after " +
              std::to_string(settings_->handshake_timeout.count()) + " ms" +
              (client() ? ""
               : conn_  ? " (the client never completed the handshake)"
                        : " (no valid QUIC Initial arrived)")},
         std::nullopt);
}

// ---- ending -------------------------------------------------------------------------------

void quic_connection::handle_liberr(int rv, const char* where) {
    switch (rv) {
    case NGTCP2_ERR_DRAINING:
        if (reset_received_)
            // RFC 9000 10.3: no CONNECTION_CLOSE, the peer has no state to close.
            return end_all({std::make_error_code(std::errc::connection_reset),
                            std::string("quic: the ") + (client() ? "server" : "client") +
                                " reset the connection (stateless reset): it no longer knows "
                                "it"});
        return handle_peer_close();
    case NGTCP2_ERR_RECV_VERSION_NEGOTIATION: {
        // RFC 9000 6.2: the attempt ends, silently (the server has no connection to close).
        std::string offered;
        for (auto v : offered_versions_)
            offered += (offered.empty() ? "" : ", ") + hex32(v);
        return end_all({std::make_error_code(std::errc::protocol_not_supported),
                        "quic: " + peer() + " does not speak QUIC version " +
                            hex32(NGTCP2_PROTO_VER_V1) + " (Version Negotiation); it offered: " +
                            (offered.empty() ? std::string("none") : offered)});
    }
    case NGTCP2_ERR_NO_VIABLE_PATH:
        // Validation of the path we moved to failed, and there was none to fall back to.
        return end_all({std::make_error_code(std::errc::network_unreachable),
                        "quic: the connection to " + peer() +
                            " lost its path: the peer did not answer on the path it moved "
                            "to (path validation failed)"});
    case NGTCP2_ERR_CLOSING:
        return end_all({std::make_error_code(std::errc::connection_aborted),
                        "quic: the connection is closing"});
    case NGTCP2_ERR_IDLE_CLOSE:
        return end_all({std::make_error_code(std::errc::timed_out),
                        "quic: idle timeout: nothing from " + peer() + " for " +
                            std::to_string(settings_->idle_timeout.count()) + " ms"});
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        return end_all({std::make_error_code(std::errc::timed_out),
                        "quic: handshake timeout: no connection with " + peer() + " after " +
                            std::to_string(settings_->handshake_timeout.count()) + " ms"});
    case NGTCP2_ERR_DROP_CONN:
        return end_all({std::make_error_code(std::errc::connection_aborted),
                        "quic: the connection with " + peer() + " was dropped"});
    case NGTCP2_ERR_CRYPTO: {
        ngtcp2_connection_close_error cc;
        ngtcp2_connection_close_error_default(&cc);
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &cc, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
        if (verify_.failure)
            return fail(
                {std::make_error_code(std::errc::permission_denied), "quic: " + *verify_.failure},
                cc);
        const int tls = ngtcp2_conn_get_tls_error(conn_);
        const unsigned alert = ngtcp2_conn_get_tls_alert(conn_);
        if (tls == GNUTLS_E_NO_APPLICATION_PROTOCOL || alert == alert_no_application_protocol)
            return fail({std::make_error_code(std::errc::protocol_error),
                         "quic: handshake failed: no shared ALPN protocol (we accept " +
                             alpn_text(alpn()) + ")"},
                        cc);
        return fail(
            {std::make_error_code(std::errc::protocol_error),
             std::string("quic: handshake failed: ") +
                 (tls ? std::string(gnutls_strerror(tls)) : "TLS alert " + alert_name(alert))},
            cc);
    }
    default: {
        ngtcp2_connection_close_error cc;
        ngtcp2_connection_close_error_default(&cc);
        ngtcp2_connection_close_error_set_transport_error_liberr(&cc, rv, nullptr, 0);
        return fail({std::make_error_code(std::errc::protocol_error),
                     std::string("quic: ") + where + " failed: " + ngtcp2_strerror(rv)},
                    cc);
    }
    }
}

void quic_connection::handle_peer_close() {
    ngtcp2_connection_close_error cc;
    ngtcp2_connection_close_error_default(&cc);
    ngtcp2_conn_get_connection_close_error(conn_, &cc);
    const std::string phrase =
        cc.reason && cc.reasonlen
            ? ": \"" + std::string(reinterpret_cast<const char*>(cc.reason), cc.reasonlen) + "\""
            : std::string();
    const bool handshaking = state_ != state::established;
    auto err = [](std::errc c, std::string r) {
        return sdk::flow_error{std::make_error_code(c), r};
    };
    if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT) {
        if (cc.error_code == NGTCP2_NO_ERROR) {
            if (!handshaking) return end_all({});
            return end_all(
                err(std::errc::connection_refused,
                    "quic: " + peer() + " closed the connection during the handshake" + phrase));
        }
        if ((cc.error_code & ~std::uint64_t{0xff}) == NGTCP2_CRYPTO_ERROR) {
            const auto alert = static_cast<unsigned>(cc.error_code & 0xff);
            if (alert == alert_no_application_protocol)
                return end_all(err(std::errc::protocol_error,
                                   "quic: handshake failed: no shared ALPN protocol (the peer "
                                   "accepts none of " +
                                       alpn_text(alpn()) + "; TLS alert " + alert_name(alert) +
                                       ")"));
            return end_all(err(
                certificate_alert(alert) ? std::errc::permission_denied : std::errc::protocol_error,
                "quic: the peer refused the handshake: TLS alert " + alert_name(alert) + phrase));
        }
        return end_all(err(std::errc::connection_aborted,
                           "quic: the peer closed the connection with transport error " +
                               hex(cc.error_code) + phrase));
    }
    if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
        const auto clean = app_ ? app_->no_error_code() : std::uint64_t{app_no_error};
        if (cc.error_code == clean && !handshaking) return end_all({});
        const auto code = app_                                ? std::errc::connection_aborted
                          : cc.error_code == app_message_size ? std::errc::message_size
                          : cc.error_code == app_aborted      ? std::errc::connection_reset
                                                              : std::errc::connection_aborted;
        return end_all(
            err(code, "quic: the peer closed the connection with application error " +
                          hex(cc.error_code) + " (" +
                          (app_ ? app_->error_name(cc.error_code) : app_error_name(cc.error_code)) +
                          ")" + phrase));
    }
    end_all(err(std::errc::connection_aborted, "quic: the connection with " + peer() + " ended"));
}

void quic_connection::fail(const sdk::flow_error& e,
                           std::optional<ngtcp2_connection_close_error> cc) {
    if (state_ == state::done) return;
    if (conn_ && cc) write_close(*cc);
    end_all(e);
}

void quic_connection::fail_app(const sdk::flow_error& e, std::uint64_t code,
                               const std::string& reason) {
    ngtcp2_connection_close_error cc;
    ngtcp2_connection_close_error_default(&cc);
    ngtcp2_connection_close_error_set_application_error(
        &cc, code, reinterpret_cast<const std::uint8_t*>(reason.data()), reason.size());
    fail(e, cc);
}

void quic_connection::end_all(const sdk::flow_error& e) {
    if (ended_) return;
    auto self = shared_from_this();
    ended_ = e;
    state_ = state::done;
    boost::system::error_code ignored;
    timer_.cancel(ignored);
    handshake_timer_.cancel(ignored);
    deadline_timer_.cancel(ignored);
    if (e) log(sdk::log_level::debug, e.reason);
    unregister_cids(); // a late packet from a new address now gets a stateless reset
    for (auto& d : std::exchange(datagrams_out_, {}))
        if (auto s = d.from.lock(); s && !s->aborted_)
            s->send_errors_.emplace_back(
                d.id, e ? e
                        : sdk::flow_error{std::make_error_code(std::errc::broken_pipe),
                                          "quic: the connection ended before this datagram was "
                                          "sent"});
    datagrams_in_.clear();
    for (auto& w : streams_)
        if (auto s = w.lock()) s->finish(e);
    for (auto& s : std::exchange(new_incoming_, {}))
        s->finish(e); // never handed up: nobody hears of them
    close_lower_soon();
    dispatch();
}

void quic_connection::close_lower_soon() {
    const bool open = std::any_of(paths_.begin(), paths_.end(), [](const auto& p) {
        return p->lower && !p->closed && !p->close_requested;
    });
    if (!open) return;
    const bool closing = conn_ && (closing_sent_ || ngtcp2_conn_is_in_draining_period(conn_));
    if (!closing) {
        for (auto& p : paths_)
            p->release();
        return;
    }
    // RFC 9000 10.2: stay for three PTOs after CONNECTION_CLOSE, so the peer's late packets
    // reach this (closed) connection and are ignored, instead of opening a fresh lower flow
    // on the server that would wait for its handshake timeout. The timer keeps the
    // connection alive that long even when every stream flow is gone.
    const auto linger = std::chrono::nanoseconds(3 * ngtcp2_conn_get_pto(conn_));
    handshake_timer_.expires_after(
        std::min<std::chrono::nanoseconds>(linger, std::chrono::seconds(3)));
    handshake_timer_.async_wait([self = shared_from_this()](const boost::system::error_code&) {
        for (auto& p : self->paths_)
            p->release();
    });
}

// ---- ngtcp2 callbacks ---------------------------------------------------------------------

ngtcp2_conn* quic_connection::cb_get_conn(ngtcp2_crypto_conn_ref* ref) {
    return static_cast<quic_connection*>(ref->user_data)->conn_;
}

int quic_connection::cb_handshake_completed(ngtcp2_conn*, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    self->handshake_done_ = true;
    self->summary_.handshake_packets_in = self->summary_.packets_in;
    return 0;
}

int quic_connection::cb_handshake_confirmed(ngtcp2_conn*, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    self->handshake_confirmed_ = true;
    self->summary_.confirmed_packets_in = self->summary_.packets_in;
    return 0;
}

int quic_connection::cb_recv_stream_data(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id,
                                         std::uint64_t, const std::uint8_t* data, std::size_t len,
                                         void* user, void*) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->app_)
        return self->app_->on_stream_data(conn, id, data, len,
                                          (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
    try {
        auto s = self->peer_stream(id);
        if (!s || s->done_ || s->aborted_) {
            // A stream nobody reads (refused or ended): its bytes are dropped, and the window
            // reopened so the connection does not stall on it.
            ngtcp2_conn_extend_max_stream_offset(conn, id, len);
            ngtcp2_conn_extend_max_offset(conn, len);
            return 0;
        }
        if (flags & NGTCP2_STREAM_DATA_FLAG_EARLY) self->summary_.early_bytes += len;
        std::uint64_t announced = 0;
        const bool early = (flags & NGTCP2_STREAM_DATA_FLAG_EARLY) != 0;
        if (early && !self->client()) self->early_rx_ = true;
        if (!s->take(data, len, self->settings_->max_message_size, early, announced)) {
            self->pending_close_ = pending_close{
                {std::make_error_code(std::errc::message_size),
                 "quic: the peer sent a message of " + std::to_string(announced) +
                     " bytes on stream " + std::to_string(id) + ", more than max-message-size (" +
                     std::to_string(self->settings_->max_message_size) +
                     " bytes); connection closed"},
                app_message_size,
                "message of " + std::to_string(announced) + " bytes exceeds max-message-size " +
                    std::to_string(self->settings_->max_message_size)};
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        if (s->ready_) {
            ngtcp2_conn_extend_max_stream_offset(conn, id, len);
            ngtcp2_conn_extend_max_offset(conn, len);
        } else {
            s->held_credit_ += len;
        }
        if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) {
            if (s->mid_message()) {
                s->finish({std::make_error_code(std::errc::protocol_error),
                           "quic: the peer ended stream " + std::to_string(id) +
                               " inside a message (truncated framing)"});
                self->resets_.push_back(id);
                self->peer_uni_ended(*s);
            } else {
                // The peer is done sending: this side finishes too, after what it queued.
                s->peer_fin_ = true;
                s->close_requested_ = true;
                // A stream that only receives has nothing to finish: it is over.
                if (s->receive_only() && !ngtcp2_closes_peer_uni) {
                    s->finish({});
                    self->peer_uni_ended(*s);
                }
            }
        }
        return 0;
    } catch (...) {
        self->pending_close_ = pending_close{{std::make_error_code(std::errc::not_enough_memory),
                                              "quic: out of memory while receiving"},
                                             app_internal,
                                             "internal error"};
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
}

int quic_connection::cb_acked_stream_data_offset(ngtcp2_conn*, std::int64_t id,
                                                 std::uint64_t offset, std::uint64_t len,
                                                 void* user, void*) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->app_) return self->app_->on_acked(id, len);
    const auto acked = offset + len;
    auto release = [acked](std::deque<retained_bytes>& q) {
        while (!q.empty() && q.front().end <= acked)
            q.pop_front();
    };
    if (auto s = self->find(id)) {
        s->acked_upto_ = std::max(s->acked_upto_, acked);
        release(s->retained_);
    }
    if (auto it = self->orphans_.find(id); it != self->orphans_.end()) release(it->second.bytes);
    return 0;
}

int quic_connection::cb_stream_open(ngtcp2_conn*, std::int64_t id, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->app_) return 0; // it learns of the stream from its data
    try {
        self->peer_stream(id);
        return 0;
    } catch (...) {
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
}

int quic_connection::cb_stream_close(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id,
                                     std::uint64_t app_error, void* user, void*) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->rewinding_) return 0; // rejected 0-RTT: the stream is opened again, not ended
    try {
        self->orphans_.erase(id);
        // A peer stream is gone: the peer may open another (MAX_STREAMS).
        if (!ngtcp2_conn_is_local_stream(conn, id) && (id & 0x2) == 0)
            ngtcp2_conn_extend_max_streams_bidi(conn, 1);
        // HTTP/3 keeps its three unidirectional streams for the connection's life.
        else if (!ngtcp2_conn_is_local_stream(conn, id) && !self->app_)
            ngtcp2_conn_extend_max_streams_uni(conn, 1);
        if (self->app_)
            return self->app_->on_stream_close(id,
                                               (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)
                                                   ? app_error
                                                   : self->app_->no_error_code());
        auto s = self->find(id);
        if (!s) return 0;
        s->retained_.clear();
        if (s->done_) return 0;
        if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) && app_error != app_no_error)
            s->finish({std::make_error_code(std::errc::connection_reset),
                       "quic: stream " + std::to_string(id) + " was reset (" +
                           app_error_name(app_error) + ")"});
        else
            s->finish({}); // FIN both ways, all acknowledged
        return 0;
    } catch (...) {
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
}

int quic_connection::cb_stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t,
                                     std::uint64_t app_error, void* user, void*) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->app_) return self->app_->on_stream_reset(id, app_error);
    try {
        auto s = self->find(id);
        if (!s || s->done_) return 0;
        s->finish({std::make_error_code(std::errc::connection_reset),
                   "quic: the peer reset stream " + std::to_string(id) + " (" +
                       app_error_name(app_error) + ")"});
        self->resets_.push_back(id);
        self->peer_uni_ended(*s);
        return 0;
    } catch (...) {
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
}

int quic_connection::cb_stream_stop_sending(ngtcp2_conn*, std::int64_t id, std::uint64_t app_error,
                                            void* user, void*) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->app_) return self->app_->on_stop_sending(id, app_error);
    try {
        auto s = self->find(id);
        if (!s || s->done_) return 0;
        s->finish({std::make_error_code(std::errc::connection_reset),
                   "quic: the peer stopped reading stream " + std::to_string(id) + " (" +
                       app_error_name(app_error) + ")"});
        self->resets_.push_back(id);
        return 0;
    } catch (...) {
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
}

int quic_connection::cb_recv_datagram(ngtcp2_conn*, std::uint32_t flags, const std::uint8_t* data,
                                      std::size_t len, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    try {
        ++self->summary_.datagrams_in;
        if (len > self->settings_->max_message_size) {
            ++self->summary_.datagrams_dropped;
            return 0;
        }
        // Bounded: a peer sending faster than anyone reads loses its oldest datagrams, as
        // datagrams may be lost anyway.
        while (self->datagrams_in_.size() >= self->settings_->datagram_queue) {
            self->datagrams_in_.pop_front();
            ++self->summary_.datagrams_dropped;
        }
        const auto* b = reinterpret_cast<const std::byte*>(data);
        self->datagrams_in_.push_back(
            {sdk::byte_buffer(b, b + len), (flags & NGTCP2_DATAGRAM_FLAG_EARLY) != 0});
        return 0;
    } catch (...) {
        ++self->summary_.datagrams_dropped; // out of memory: this one is lost, as it may be
        return 0;
    }
}

int quic_connection::cb_extend_max_local_streams_bidi(ngtcp2_conn*, std::uint64_t, void*) {
    return 0; // the service pass after this read opens the streams that waited
}

int quic_connection::cb_extend_max_remote_streams_bidi(ngtcp2_conn*, std::uint64_t max,
                                                       void* user) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->app_) self->app_->on_extend_max_remote_streams_bidi(max);
    return 0;
}

int quic_connection::cb_extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t,
                                               void* user, void*) {
    auto* self = static_cast<quic_connection*>(user);
    return self->app_ ? self->app_->on_extend_max_stream_data(id) : 0;
}

int quic_connection::cb_recv_crypto_data(ngtcp2_conn* conn, ngtcp2_crypto_level level,
                                         std::uint64_t offset, const std::uint8_t* data,
                                         std::size_t len, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    if (level == NGTCP2_CRYPTO_LEVEL_APPLICATION && self->settings_->session_tickets) {
        try {
            // Post-handshake messages (RFC 8446 4: type, u24 length, body), in order.
            auto& buf = self->post_handshake_;
            buf.insert(buf.end(), data, data + len);
            while (buf.size() >= 4) {
                const std::size_t n = (std::size_t{buf[1]} << 16) | (buf[2] << 8) | buf[3];
                if (n > 65536) {
                    buf.clear(); // GnuTLS refuses it too
                    break;
                }
                if (buf.size() < 4 + n) break;
                if (buf[0] == 4) { // new_session_ticket
                    auto& t = self->link_.ticket;
                    const auto terms = parse_ticket(buf.data() + 4, n);
                    t.malformed = !terms;
                    t.lifetime = terms ? terms->lifetime : 0;
                    t.max_early_data = terms ? terms->max_early_data : std::nullopt;
                }
                buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(4 + n));
            }
        } catch (...) {
            self->post_handshake_.clear(); // only the ticket's terms are lost
        }
    }
    return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, len, user);
}

int quic_connection::cb_early_data_rejected(ngtcp2_conn*, void*) {
    return 0; // decide_early() called ngtcp2_conn_early_data_rejected and rewinds the streams
}

void quic_connection::cb_rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) {
    if (gnutls_rnd(GNUTLS_RND_RANDOM, dest, len) != 0) std::memset(dest, 0, len);
}

void quic_connection::cb_qlog_write(void* user, std::uint32_t flags, const void* data,
                                    std::size_t len) {
    auto* self = static_cast<quic_connection*>(user);
    if (!self->qlog_) return;
    self->qlog_->write(data, len, flags & NGTCP2_QLOG_WRITE_FLAG_FIN);
    if (self->qlog_->error().empty() || self->qlog_failure_logged_) return;
    self->qlog_failure_logged_ = true;
    try {
        self->log(sdk::log_level::warning, "qlog: " + self->qlog_->error() + " (qlog stopped)");
    } catch (...) {
        // Called from ngtcp2 (C): nothing may escape; the trace is stopped either way.
    }
}

int quic_connection::cb_get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                              std::size_t cidlen, void* user) {
    if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
        !reset_token(cid->data, cidlen, token))
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    // A server finds its connection by any ID it issued when the client moves (docs/quic.md
    // "Migration").
    auto* self = static_cast<quic_connection*>(user);
    if (!self->client()) {
        try {
            self->register_cid(*cid);
        } catch (...) {
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
    }
    return 0;
}

int quic_connection::cb_remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    if (self->client()) return 0;
    const std::string key(reinterpret_cast<const char*>(cid->data), cid->datalen);
    cid_registry::remove(cid->data, cid->datalen, self);
    std::erase(self->cids_, key);
    return 0;
}

int quic_connection::cb_path_validation(ngtcp2_conn*, std::uint32_t, const ngtcp2_path* path,
                                        ngtcp2_path_validation_result res, void* user) {
    auto* self = static_cast<quic_connection*>(user);
    self->validation_ended_ = true; // track_path() releases what ngtcp2 no longer uses
    try {
        self->log(sdk::log_level::debug,
                  "path validation from " + to_endpoint(path->local).to_string() + " to " +
                      to_endpoint(path->remote).to_string() +
                      (res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS   ? " succeeded"
                       : res == NGTCP2_PATH_VALIDATION_RESULT_FAILURE ? " failed"
                                                                      : " aborted"));
    } catch (...) {
    }
    return 0;
}

int quic_connection::cb_recv_version_negotiation(ngtcp2_conn*, const ngtcp2_pkt_hd*,
                                                 const std::uint32_t* sv, std::size_t nsv,
                                                 void* user) {
    auto* self = static_cast<quic_connection*>(user);
    try {
        self->offered_versions_.assign(sv, sv + std::min<std::size_t>(nsv, 16));
    } catch (...) {
        self->offered_versions_.clear(); // the error then says "none"
    }
    return 0;
}

int quic_connection::cb_recv_stateless_reset(ngtcp2_conn*, const ngtcp2_pkt_stateless_reset*,
                                             void* user) {
    static_cast<quic_connection*>(user)->reset_received_ = true; // read_pkt returns DRAINING
    return 0;
}

} // namespace post::plugins::quic
