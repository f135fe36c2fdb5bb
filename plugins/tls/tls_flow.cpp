#include "tls_flow.hpp"

#include "tls_errors.hpp"

#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include <openssl/err.h>

#include <algorithm>
#include <cstdio>

namespace post::plugins::tls {

namespace {

/// Received plaintext is handed up in units of at most this size.
constexpr std::size_t max_delivery = 256 * 1024;

std::string quoted_list(const std::vector<std::string>& v) {
    if (v.empty()) return "none";
    std::string s;
    for (const auto& e : v)
        s += (s.empty() ? "'" : ", '") + e + "'";
    return s;
}

sdk::flow_error internal_error(const char* where) {
    return {std::make_error_code(std::errc::state_not_recoverable),
            std::string("tls: internal error in ") + where};
}

/// How long the peer has to answer our close_notify (as the tcp layer's grace for its FIN).
constexpr std::chrono::seconds close_grace{2};

} // namespace

tls_flow::tls_flow(boost::asio::any_io_executor ex, std::shared_ptr<tls_context> ctx,
                   std::shared_ptr<const tls_settings> settings, std::shared_ptr<sdk::flow> lower,
                   sdk::open_params p, sdk::log_sink* log)
    : executor_(std::move(ex))
    , close_timer_(executor_)
    , ctx_(std::move(ctx))
    , settings_(std::move(settings))
    , lower_(std::move(lower))
    , params_(std::move(p))
    , log_(log) {}

unsigned char* tls_flow::read_buffer() {
    thread_local std::unique_ptr<unsigned char[]> buffer(new unsigned char[read_chunk]);
    return buffer.get();
}

tls_flow::~tls_flow() {
    if (ssl_) SSL_free(ssl_);
}

void tls_flow::log(sdk::log_level level, const std::string& text) const noexcept {
    if (log_) log_->log(level, layer_name, text);
}

bool tls_flow::logging(sdk::log_level level) const noexcept {
    return log_ && log_->enabled(level);
}

bool tls_flow::init(sdk::flow_error& err) {
    const tls_settings& s = (*settings_);
    ERR_clear_error();
    ssl_ = SSL_new(ctx_->native());
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    if (!ssl_ || !rbio_ || !wbio_) {
        if (rbio_) BIO_free(rbio_);
        if (wbio_) BIO_free(wbio_);
        rbio_ = wbio_ = nullptr;
        err = {std::make_error_code(std::errc::not_enough_memory),
               "tls: " + openssl_error_text("cannot create a connection")};
        return false;
    }
    // An empty read BIO means "more later", not end of stream: the lower flow reports the end.
    BIO_set_mem_eof_return(rbio_, -1);
    SSL_set_bio(ssl_, rbio_, wbio_);
    SSL_set_app_data(ssl_, static_cast<tls_connection*>(this));
    verify_.check_chain = s.verify_peer;
    verify_.pins = s.pins;

    if (!client()) {
        SSL_set_accept_state(ssl_);
        server_early_ = s.early_data_for(sdk::role::server) && s.max_early_data > 0;
        if (!s.verify_peer && s.client_auth != client_auth_mode::none)
            log(sdk::log_level::warning,
                "certificate verification is OFF (verify-peer: false): client certificates from " +
                    params_.remote.to_string() + " are not checked");
        return true;
    }

    SSL_set_connect_state(ssl_);
    const auto name = set_up_client_identity(
        ssl_, verify_, s, params_, "tls",
        [this](std::string text) { log(sdk::log_level::warning, text); }, err);
    if (!name) return false;

    session_key_ = session_key(*name, s.alpn);
    if (!s.session_tickets) {
        no_session_reason_ = "session-tickets off";
    } else if (!params_.session) {
        no_session_reason_ = "no ticket";
    } else if (auto stored = load_session(*params_.session, session_key_, no_session_reason_)) {
        if (SSL_set_session(ssl_, stored.get()) == 1) {
            summary_.offered_session = true;
            early_mode_ = s.early_data_for(sdk::role::client) &&
                          SSL_SESSION_get_protocol_version(stored.get()) == TLS1_3_VERSION &&
                          SSL_SESSION_get_max_early_data(stored.get()) > 0;
            if (logging(sdk::log_level::debug))
                log(sdk::log_level::debug, "offering a stored session for " + session_key_ +
                                               (early_mode_ ? " (early data allowed)" : ""));
        } else {
            ERR_clear_error();
            no_session_reason_ = "stored ticket not usable";
        }
    }
    return true;
}

void tls_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
}

void tls_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void tls_flow::start() noexcept {
    if (started_ || done_) return;
    started_ = true;
    upper_call guard(in_upper_call_);
    lower_->start();
    try {
        // Early data rides with the ClientHello: begin now when there is some. Without any,
        // wait for the connection so sends made meanwhile may still go early.
        const bool early_waiting =
            early_mode_ && (pending_.empty() || !pending_.front().idempotent);
        if (!client() || early_waiting) return;
        if (lower_->info().capabilities & sdk::cap_early_data) {
            begin_handshake(); // the ClientHello can ride in the SYN (TCP Fast Open)
            return;
        }
        // Otherwise the lower flow has connected by now (tcp sends its SYN inside start()), so
        // the ClientHello is built while the connection is set up, not before it.
        begin_handshake();
    } catch (...) {
        fail_later(internal_error("start"));
    }
}

void tls_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (done_) return;
    upper_call guard(in_upper_call_);
    try {
        if (close_requested_ || close_notify_sent_) {
            boost::asio::post(executor_, [self = shared_from_this(), id = meta.id] {
                if (self->done_) return;
                if (auto ev = self->events_.lock())
                    ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                           "tls: send after close()"});
            });
            return;
        }
        const std::size_t size = data.size();
        pending_.push_back({meta.id, std::move(data), size, 0, meta.idempotent});
        queued_bytes_ += size;
        if (handshake_done_) {
            write_pending();
        } else if (client() && early_mode_ && started_ && meta.idempotent) {
            if (!handshake_started_)
                begin_handshake();
            else if (early_writing_ && write_early())
                flush();
        }
        if (!pending_.empty() && pending_.front().written && pending_.front().confirmed &&
            pending_.front().lower_last <= lower_sent_upto_) {
            // Only a zero-length send can be complete already; report it from a later turn.
            boost::asio::post(executor_, [self = shared_from_this()] {
                if (!self->done_) self->report_sent();
            });
        }
    } catch (...) {
        fail_later({std::make_error_code(std::errc::not_enough_memory),
                    "tls: out of memory while sending"});
    }
}

void tls_flow::close() noexcept {
    if (done_ || close_requested_) return;
    close_requested_ = true;
    upper_call guard(in_upper_call_);
    try {
        if (!handshake_started_) {
            // Nothing on the wire yet: closing the lower flow is all there is to do.
            lower_->close();
            return;
        }
        maybe_close(); // after the handshake, once every queued send is written
    } catch (...) {
        fail_later(internal_error("close"));
    }
}

void tls_flow::abort() noexcept {
    aborted_ = true;
    done_ = true;
    events_.reset();
    pending_.clear();
    queued_bytes_ = 0;
    boost::system::error_code ignored;
    close_timer_.cancel(ignored);
    lower_->abort();
}

sdk::flow_info tls_flow::info() const noexcept {
    sdk::flow_info i = lower_->info();
    i.kind = sdk::edge::stream;
    i.max_message_size = 0;
    i.capabilities &= sdk::cap_ordered;
    if (early_mode_ && !handshake_done_) i.capabilities |= sdk::cap_early_data;
    return i;
}

// ---- lower flow events ----------------------------------------------------------------------

void tls_flow::on_ready() noexcept {
    if (done_) return;
    lower_ready_ = true;
    try {
        if (client() && !handshake_started_ && !close_requested_) begin_handshake();
        if (!client()) handshake_started_ = true; // the client speaks first
    } catch (...) {
        fail(internal_error("on_ready"));
    }
}

void tls_flow::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    if (done_) return;
    try {
        if (!check_first_bytes(data)) return;
        if (BIO_write(rbio_, data.data(), static_cast<int>(data.size())) !=
            static_cast<int>(data.size()))
            return fail({std::make_error_code(std::errc::not_enough_memory),
                         "tls: cannot buffer received data"});
        drive();
    } catch (...) {
        fail(internal_error("receive"));
    }
}

void tls_flow::on_sent(std::uint64_t id) noexcept {
    if (done_) return;
    lower_sent_upto_ = std::max(lower_sent_upto_, id);
    report_sent();
}

void tls_flow::on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept {
    if (done_) return;
    try {
        // Ciphertext lost below means the TLS stream is broken for everything after it.
        const bool affects_us = std::any_of(pending_.begin(), pending_.end(), [&](const auto& p) {
            return p.written && p.lower_last >= id;
        });
        if (affects_us) {
            lower_->abort();
            lower_closed_ = true;
            finish(e);
        }
    } catch (...) {
        abort();
    }
}

void tls_flow::on_closed(const sdk::flow_error& e) noexcept {
    lower_closed_ = true;
    if (done_) return;
    try {
        // The peer's close_notify came first: everything it sent arrived intact, so what the
        // connection did afterwards does not matter (peers such as nginx and curl close their
        // socket with our own close_notify unread, and their kernel answers it with a reset).
        if (close_notify_received_) return finish({});
        if (e) return finish(e);
        if (close_notify_sent_) return finish({});
        if (!handshake_done_) {
            if (close_requested_) return finish({});
            const std::string who = client() ? "the server" : "the client";
            return finish({std::make_error_code(std::errc::connection_aborted),
                           "handshake failed: " + who + " closed the connection " +
                               (first_bytes_.empty() ? std::string("without answering")
                                                     : std::string("during the handshake"))});
        }
        const bool mid_record = SSL_has_pending(ssl_) == 1 || BIO_ctrl_pending(rbio_) > 0;
        finish({std::make_error_code(std::errc::connection_aborted),
                "TLS connection truncated: the peer closed the connection without close_notify" +
                    std::string(mid_record ? ", in the middle of a record" : "")});
    } catch (...) {
        finish(internal_error("on_closed"));
    }
}

// ---- OpenSSL callbacks --------------------------------------------------------------------

void tls_flow::on_new_session(SSL_SESSION* session) noexcept {
    try {
        if (!client() || !params_.session || !(*settings_).session_tickets) return;
        // Kept as the live session: serialised only if the association is saved to a file.
        params_.session->store_object(session_key_, std::make_shared<session_object>(session));
        if (!logging(sdk::log_level::debug)) return;
        const auto max_early = SSL_SESSION_get_max_early_data(session);
        log(sdk::log_level::debug,
            "stored a session ticket for " + session_key_ +
                (max_early > 0 ? " (early data up to " + std::to_string(max_early) + " bytes)"
                               : ""));
    } catch (...) {
        // Only resumption is lost.
    }
}

void tls_flow::on_alpn_mismatch(std::string offered) noexcept {
    alpn_offered_by_client_ = std::move(offered);
}

// ---- the machine ----------------------------------------------------------------------------

bool tls_flow::check_first_bytes(const sdk::byte_buffer& data) {
    if (first_bytes_checked_) return true;
    for (std::size_t i = 0; i < data.size() && first_bytes_.size() < 8; ++i)
        first_bytes_ += static_cast<char>(data[i]);
    if (first_bytes_.empty()) return true;
    // A TLS record starts with a content type (20..24) and a major version of 3.
    const auto type = static_cast<unsigned char>(first_bytes_[0]);
    bool tls_like = type >= 20 && type <= 24;
    if (first_bytes_.size() >= 2) {
        tls_like = tls_like && first_bytes_[1] == 3;
        first_bytes_checked_ = true;
    }
    if (tls_like) return true;
    std::string hex, text;
    std::size_t printable = 0;
    for (unsigned char c : first_bytes_) {
        char b[4];
        std::snprintf(b, sizeof b, "%02x", c);
        hex += (hex.empty() ? "" : " ") + std::string(b);
        const bool p = c >= 0x20 && c < 0x7f;
        printable += p;
        text += p ? static_cast<char>(c) : '.';
    }
    hex += " ...";
    fail(not_tls(hex, printable * 2 >= first_bytes_.size() ? text : std::string()));
    return false;
}

void tls_flow::begin_handshake() {
    if (handshake_started_ || done_) return;
    handshake_started_ = true;
    if (client() && early_mode_ && written_count_ < pending_.size() &&
        pending_[written_count_].idempotent && write_early()) {
        flush();
        return;
    }
    advance_handshake();
}

bool tls_flow::write_early() {
    bool wrote = false;
    while (written_count_ < pending_.size()) {
        auto& p = pending_[written_count_];
        if (!p.idempotent) break; // order: nothing may overtake a send that must wait
        if (p.size == 0 && !early_writing_) break; // the ClientHello goes with real data only
        if (p.size > 0) {
            ERR_clear_error();
            std::size_t w = 0;
            if (SSL_write_early_data(ssl_, p.data.data(), p.size, &w) != 1 || w != p.size) {
                // Over the server's early-data limit, or OpenSSL refuses: this and what follows
                // go as ordinary data after the handshake.
                log(sdk::log_level::debug,
                    openssl_error_text("early data stops after " +
                                       std::to_string(summary_.early_bytes) + " bytes"));
                ERR_clear_error();
                break;
            }
        }
        p.written = true;
        p.early = true;
        p.confirmed = false;
        p.lower_last = lower_next_id_;
        summary_.early_bytes += p.size;
        ++written_count_;
        wrote = true;
        early_writing_ = true;
    }
    return wrote || early_writing_;
}

void tls_flow::drive() {
    if (!handshake_done_) {
        advance_handshake();
        if (done_ || !handshake_done_) return;
    }
    read_app_data();
    if (!done_) maybe_close();
}

void tls_flow::advance_handshake() {
    ERR_clear_error();
    if (!client() && server_early_ && !server_early_done_) {
        for (;;) {
            std::size_t n = 0;
            const int r = SSL_read_early_data(ssl_, read_buffer(), read_chunk, &n);
            if (r == SSL_READ_EARLY_DATA_ERROR) {
                const int e = SSL_get_error(ssl_, 0);
                flush();
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
                return fail(failure(e));
            }
            if (n > 0) {
                early_received_.emplace_back(reinterpret_cast<std::byte*>(read_buffer()),
                                             reinterpret_cast<std::byte*>(read_buffer()) + n);
                summary_.early_bytes += n;
            }
            if (r == SSL_READ_EARLY_DATA_FINISH) {
                server_early_done_ = true;
                break;
            }
        }
    }
    // The server answered: early data is over (the client may not write more of it).
    if (client() && early_writing_ && BIO_ctrl_pending(rbio_) > 0) early_writing_ = false;
    if (client() && early_writing_) return; // still waiting for the server's first flight
    const int r = SSL_do_handshake(ssl_);
    const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    flush();
    if (r == 1) return handshake_complete();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    fail(failure(e));
}

void tls_flow::handshake_complete() {
    handshake_done_ = true;
    early_writing_ = false;
    summary_.complete = true;
    summary_.resumed = SSL_session_reused(ssl_) == 1;
    summary_.version = SSL_get_version(ssl_);
    if (const char* c = SSL_get_cipher_name(ssl_)) summary_.cipher = c;
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (alpn) summary_.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);

    std::string decision;
    if (client()) {
        if (summary_.resumed) {
            decision = "resumed session";
        } else if (summary_.offered_session) {
            decision = "full handshake (ticket refused)";
            if (params_.session) params_.session->erase(session_key_);
        } else {
            decision = "full handshake (" + no_session_reason_ + ")";
        }
        const bool tried_early = written_count_ > 0 && pending_.front().early;
        if (tried_early) {
            if (SSL_get_early_data_status(ssl_) == SSL_EARLY_DATA_ACCEPTED) {
                summary_.early = handshake_summary::early_data::accepted;
                for (auto& p : pending_)
                    if (p.early) {
                        p.confirmed = true;
                        p.data = {};
                    }
                log(sdk::log_level::debug,
                    "early data accepted (" + std::to_string(summary_.early_bytes) + " bytes)");
            } else {
                // Everything written early is at the front; write it all again, in order.
                summary_.early = handshake_summary::early_data::rejected;
                for (auto& p : pending_) {
                    p.written = p.early = false;
                    p.confirmed = true;
                }
                written_count_ = 0;
                log(sdk::log_level::debug, "early data rejected by the server; sending its " +
                                               std::to_string(summary_.early_bytes) +
                                               " bytes again after the handshake");
            }
        }
    } else {
        decision = summary_.resumed ? "resumed session" : "full handshake";
        if (server_early_) {
            const bool accepted = SSL_get_early_data_status(ssl_) == SSL_EARLY_DATA_ACCEPTED;
            if (accepted) summary_.early = handshake_summary::early_data::accepted;
            if (accepted || summary_.early_bytes)
                log(sdk::log_level::debug,
                    "early data " + std::string(accepted ? "accepted" : "rejected") + " (" +
                        std::to_string(summary_.early_bytes) + " bytes)");
        }
    }
    if (logging(sdk::log_level::debug)) {
        log(sdk::log_level::debug, decision);
        log(sdk::log_level::debug,
            "handshake complete with " + params_.remote.to_string() + ": " + summary_.version +
                ", " + summary_.cipher + ", ALPN " +
                (summary_.alpn.empty() ? std::string("none") : "'" + summary_.alpn + "'") + ", " +
                decision);
    }

    if (auto ev = events_.lock()) ev->on_ready();
    if (done_) return;
    for (auto& chunk : early_received_) {
        if (done_) return;
        if (auto ev = events_.lock()) ev->on_received(std::move(chunk), {});
    }
    early_received_.clear();
    if (done_) return;
    write_pending();
    if (done_) return;
    report_sent();
}

void tls_flow::read_app_data() {
    sdk::byte_buffer out;
    // The ciphertext waiting is an upper bound on the plaintext it gives: one allocation instead
    // of growing the buffer record by record.
    out.reserve(std::min<std::size_t>(
        max_delivery, BIO_ctrl_pending(rbio_) + static_cast<std::size_t>(SSL_pending(ssl_))));
    auto deliver = [&] {
        if (out.empty()) return;
        auto ev = events_.lock();
        sdk::byte_buffer chunk;
        chunk.swap(out);
        if (ev) ev->on_received(std::move(chunk), {});
    };
    for (;;) {
        if (done_) return;
        ERR_clear_error();
        std::size_t n = 0;
        const int r = SSL_read_ex(ssl_, read_buffer(), read_chunk, &n);
        if (r == 1) {
            const auto* b = reinterpret_cast<const std::byte*>(read_buffer());
            out.insert(out.end(), b, b + n);
            if (out.size() >= max_delivery) deliver();
            continue;
        }
        const int e = SSL_get_error(ssl_, r);
        const auto error =
            (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_ZERO_RETURN)
                ? sdk::flow_error{}
                : failure(e);
        deliver(); // what was intact before the end or the error
        if (done_) return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            close_notify_received_ = true;
            return on_peer_close();
        }
        if (error) return fail(error);
        break;
    }
    flush(); // post-handshake messages (key update replies)
}

void tls_flow::write_pending() {
    bool wrote = false;
    while (written_count_ < pending_.size()) {
        auto& p = pending_[written_count_];
        if (p.size > 0) {
            ERR_clear_error();
            std::size_t w = 0;
            if (SSL_write_ex(ssl_, p.data.data(), p.size, &w) != 1 || w != p.size) {
                const int e = SSL_get_error(ssl_, 0);
                flush();
                return fail_later(failure(e));
            }
            p.lower_last = lower_next_id_;
            wrote = true;
        } else {
            p.lower_last = lower_next_id_ - 1; // complete with what is already below
        }
        p.written = true;
        p.data = {};
        ++written_count_;
    }
    if (wrote) flush();
    maybe_close();
}

void tls_flow::flush() {
    const std::size_t n = BIO_ctrl_pending(wbio_);
    if (n == 0 || done_) return;
    sdk::byte_buffer out(n);
    const int got = BIO_read(wbio_, out.data(), static_cast<int>(n));
    if (got <= 0) return;
    out.resize(static_cast<std::size_t>(got));
    sdk::send_meta m;
    m.id = lower_next_id_++;
    // Until the handshake is done we send handshake flights and 0-RTT data only, and both are
    // safe to replay: a lower layer may carry them early (TCP Fast Open puts them in the SYN).
    m.idempotent = !handshake_done_;
    lower_->send(std::move(out), m);
}

void tls_flow::report_sent() {
    while (!pending_.empty() && !done_) {
        const auto& p = pending_.front();
        if (!p.written || !p.confirmed || p.lower_last > lower_sent_upto_) break;
        const auto id = p.id;
        queued_bytes_ -= p.size;
        pending_.pop_front();
        --written_count_;
        if (auto ev = events_.lock()) ev->on_sent(id);
    }
}

void tls_flow::maybe_close() {
    if (!close_requested_ || !handshake_done_ || close_notify_sent_ || done_) return;
    if (written_count_ < pending_.size()) return;
    ERR_clear_error();
    SSL_shutdown(ssl_); // queues close_notify; the peer's answer comes through read_app_data
    ERR_clear_error();
    close_notify_sent_ = true;
    flush();
    // The connection itself stays open until the peer answers with its close_notify
    // (on_peer_close closes the lower flow) or closes it. The side whose FIN goes first keeps
    // the connection's TIME_WAIT: that should be the peer answering our close, not us. A client
    // that sends its FIN first keeps one TIME_WAIT per connection to the same server address,
    // which makes every later connect() search further for a free port, until the range runs
    // out (28k ports for 60 s: under 500 connections a second). A peer that neither answers
    // nor closes gets close_grace, then the lower flow closes anyway.
    close_timer_.expires_after(close_grace);
    close_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec || self->done_ || self->lower_closed_) return;
        self->log(sdk::log_level::debug,
                  "the peer did not answer close_notify within the close grace period");
        self->lower_->close();
    });
}

void tls_flow::on_peer_close() {
    if (logging(sdk::log_level::debug)) log(sdk::log_level::debug, "the peer sent close_notify");
    if (!close_notify_sent_) {
        ERR_clear_error();
        SSL_shutdown(ssl_);
        ERR_clear_error();
        close_notify_sent_ = true;
        flush();
    }
    boost::system::error_code ignored;
    close_timer_.cancel(ignored);
    // close_notify has gone both ways: the TLS connection is over, and nothing the peer sends
    // now is wanted. A lower flow that can release closes once our close_notify is written,
    // without waiting for the peer's FIN (as a socket closed after SSL_shutdown does); the side
    // that answered a close_notify closes first, so the TIME_WAIT stays with it. on_closed
    // follows once the lower flow is done.
    if (lower_->info().capabilities & sdk::cap_release)
        lower_->release();
    else
        lower_->close();
}

sdk::flow_error tls_flow::failure(int ssl_error) {
    failure_context fc;
    fc.handshake = !handshake_done_;
    fc.side = params_.side;
    fc.verify = &verify_;
    fc.alpn_offered_by_client = alpn_offered_by_client_;
    fc.alpn_ours = quoted_list((*settings_).alpn);
    std::string hex;
    for (unsigned char c : first_bytes_) {
        char b[4];
        std::snprintf(b, sizeof b, "%02x", c);
        hex += (hex.empty() ? "" : " ") + std::string(b);
    }
    fc.first_bytes = hex.empty() ? hex : hex + " ...";
    return describe_failure(ssl_, ssl_error, fc);
}

void tls_flow::fail(const sdk::flow_error& e) {
    if (done_) return;
    if (in_upper_call_) return fail_later(e);
    flush(); // OpenSSL's alert tells the peer why
    if (!lower_closed_) lower_->close();
    finish(e);
}

void tls_flow::fail_later(sdk::flow_error e) {
    try {
        boost::asio::post(executor_,
                          [self = shared_from_this(), e = std::move(e)] { self->fail(e); });
    } catch (...) {
        abort();
    }
}

void tls_flow::finish(const sdk::flow_error& e) {
    if (done_) return;
    done_ = true;
    boost::system::error_code ignored;
    close_timer_.cancel(ignored);
    auto ev = events_.lock();
    events_.reset();
    std::vector<std::uint64_t> unsent;
    for (const auto& p : pending_)
        unsent.push_back(p.id);
    pending_.clear();
    written_count_ = 0;
    queued_bytes_ = 0;
    if (e) log(sdk::log_level::debug, e.reason);
    if (!ev) return;
    if (!e) {
        // A clean end with sends still open: they did not make it.
        for (auto id : unsent)
            if (!aborted_)
                ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                       "tls: the connection closed before this was sent"});
        unsent.clear();
    }
    sdk::report_end(*ev, e, unsent, [this] { return !aborted_; });
}

} // namespace post::plugins::tls
