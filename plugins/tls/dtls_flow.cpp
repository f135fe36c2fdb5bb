#include "dtls_flow.hpp"

#include "tls_errors.hpp"

#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include <openssl/err.h>

#include <algorithm>
#include <cstdio>

namespace post::plugins::tls {

namespace {

constexpr unsigned char content_application_data = 23;

std::string quoted_list(const std::vector<std::string>& v) {
    if (v.empty()) return "none";
    std::string s;
    for (const auto& e : v)
        s += (s.empty() ? "'" : ", '") + e + "'";
    return s;
}

sdk::flow_error internal_error(const char* where) {
    return {std::make_error_code(std::errc::state_not_recoverable),
            std::string("dtls: internal error in ") + where};
}

/// A DTLS 1.0/1.2 record header: content type 20..24, version 254.255 or 254.253, and a length
/// that fits the datagram.
bool looks_like_dtls(const sdk::byte_buffer& d) noexcept {
    if (d.size() < 13) return false;
    const auto type = static_cast<unsigned char>(d[0]);
    const auto major = static_cast<unsigned char>(d[1]);
    const auto minor = static_cast<unsigned char>(d[2]);
    const std::size_t len =
        (static_cast<std::size_t>(d[11]) << 8) | static_cast<std::size_t>(d[12]);
    return type >= 20 && type <= 24 && major == 0xfe && (minor == 0xff || minor == 0xfd) &&
           13 + len <= d.size();
}

/// "peer does not speak DTLS: first bytes were 47 45 54 20 ... ("GET ")".
sdk::flow_error not_dtls(const sdk::byte_buffer& d) {
    std::string hex, text;
    std::size_t printable = 0;
    const std::size_t n = std::min<std::size_t>(d.size(), 8);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(d[i]);
        char b[4];
        std::snprintf(b, sizeof b, "%02x", c);
        hex += (hex.empty() ? "" : " ") + std::string(b);
        const bool p = c >= 0x20 && c < 0x7f;
        printable += p;
        text += p ? static_cast<char>(c) : '.';
    }
    if (d.size() > n) hex += " ...";
    if (hex.empty()) hex = "(an empty datagram)";
    const bool show_text = n > 0 && printable * 2 >= n;
    return {std::make_error_code(std::errc::protocol_error),
            "peer does not speak DTLS: first bytes were " + hex +
                (show_text ? " (\"" + text + "\")" : std::string())};
}

} // namespace

dtls_flow::dtls_flow(boost::asio::any_io_executor ex, std::shared_ptr<tls_context> ctx,
                     std::shared_ptr<const tls_settings> settings, dtls_options opts,
                     std::shared_ptr<sdk::flow> lower, sdk::open_params p, sdk::log_sink* log)
    : executor_(std::move(ex))
    , ctx_(std::move(ctx))
    , settings_(std::move(settings))
    , opts_(opts)
    , lower_(std::move(lower))
    , params_(std::move(p))
    , log_(log)
    , retransmit_timer_(executor_)
    , handshake_timer_(executor_) {}

dtls_flow::~dtls_flow() {
    if (ssl_) SSL_free(ssl_);
}

void dtls_flow::log(sdk::log_level level, const std::string& text) const noexcept {
    if (log_) log_->log(level, dtls_layer_name, text);
}

std::string dtls_flow::cookie_peer() const noexcept {
    try {
        return params_.remote.address.to_string() + "|" + std::to_string(params_.remote.port);
    } catch (...) {
        return {};
    }
}

std::size_t dtls_flow::max_message_size() const noexcept {
    std::size_t limit = dtls_max_record_payload;
    const std::size_t lower_max = lower_->info().max_message_size;
    if (lower_max != 0)
        limit = std::min(limit, lower_max > dtls_max_record_overhead
                                    ? lower_max - dtls_max_record_overhead
                                    : std::size_t{0});
    if (opts_.max_message_size != 0) limit = std::min(limit, opts_.max_message_size);
    return limit;
}

bool dtls_flow::init(sdk::flow_error& err) {
    const tls_settings& s = *settings_;
    ERR_clear_error();
    ssl_ = SSL_new(ctx_->native());
    BIO* bio = ssl_ ? make_datagram_bio(&bio_queue_) : nullptr;
    if (!ssl_ || !bio) {
        err = {std::make_error_code(std::errc::not_enough_memory),
               "dtls: " + openssl_error_text("cannot create a connection")};
        return false;
    }
    SSL_set_bio(ssl_, bio, bio); // one reference, taken by ssl_
    SSL_set_app_data(ssl_, static_cast<tls_connection*>(this));
    // No socket to ask: the flow decides how large the handshake's datagrams get.
    SSL_set_options(ssl_, SSL_OP_NO_QUERY_MTU);
    const std::size_t lower_max = lower_->info().max_message_size;
    const std::size_t mtu = lower_max ? std::min(opts_.mtu, lower_max) : opts_.mtu;
    if (SSL_set_mtu(ssl_, static_cast<long>(mtu)) <= 0) { // returns the MTU it took
        err = {std::make_error_code(std::errc::invalid_argument),
               "dtls: mtu " + std::to_string(mtu) + " is too small for DTLS"};
        return false;
    }
    verify_.check_chain = s.verify_peer;
    verify_.pins = s.pins;
    const std::string peer = params_.remote.to_string();

    if (!client()) {
        SSL_set_accept_state(ssl_);
        SSL_set_options(ssl_, SSL_OP_COOKIE_EXCHANGE);
        if (!s.verify_peer && s.client_auth != client_auth_mode::none)
            log(sdk::log_level::warning,
                "certificate verification is OFF (verify-peer: false): client certificates from " +
                    peer + " are not checked");
        return true;
    }

    SSL_set_connect_state(ssl_);
    return set_up_client_identity(
               ssl_, verify_, s, params_, "dtls",
               [this](std::string text) { log(sdk::log_level::warning, text); }, err)
        .has_value();
}

void dtls_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
}

void dtls_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void dtls_flow::start() noexcept {
    if (started_ || done_) return;
    started_ = true;
    upper_call guard(in_upper_call_);
    try {
        handshake_timer_.expires_after(opts_.handshake_timeout);
        handshake_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->on_handshake_timer();
        });
        // The client speaks first, once the lower flow is ready; the server waits for it.
        lower_->start();
    } catch (...) {
        fail_later(internal_error("start"));
    }
}

void dtls_flow::report_later(std::uint64_t id, sdk::flow_error e) {
    boost::asio::post(executor_, [self = shared_from_this(), id, e = std::move(e)] {
        if (self->done_) return;
        if (auto ev = self->events_.lock()) ev->on_send_error(id, e);
    });
}

void dtls_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (done_) return;
    upper_call guard(in_upper_call_);
    try {
        if (close_requested_)
            return report_later(meta.id, {std::make_error_code(std::errc::broken_pipe),
                                          "dtls: send after close()"});
        if (const auto limit = max_message_size(); data.size() > limit)
            return report_later(meta.id,
                                {std::make_error_code(std::errc::message_size),
                                 "dtls: message of " + std::to_string(data.size()) +
                                     " bytes exceeds the maximum of " + std::to_string(limit) +
                                     " bytes (one DTLS record in one datagram)"});
        if (data.empty())
            // OpenSSL writes no record for nothing; a datagram flow carries whole units, so an
            // empty one is refused rather than silently lost.
            return report_later(meta.id, {std::make_error_code(std::errc::invalid_argument),
                                          "dtls: cannot send an empty message"});
        queued_bytes_ += data.size();
        pending_.push_back({meta.id, std::move(data)});
        if (handshake_done_) write_pending();
    } catch (...) {
        fail_later({std::make_error_code(std::errc::not_enough_memory),
                    "dtls: out of memory while sending"});
    }
}

void dtls_flow::close() noexcept {
    if (done_ || close_requested_) return;
    close_requested_ = true;
    upper_call guard(in_upper_call_);
    try {
        if (!started_) {
            boost::asio::post(executor_, [self = shared_from_this()] { self->finish({}); });
            return;
        }
        maybe_close();
    } catch (...) {
        abort();
    }
}

void dtls_flow::abort() noexcept {
    if (aborted_) return;
    aborted_ = true;
    done_ = true;
    events_.reset();
    pending_.clear();
    in_flight_.clear();
    queued_bytes_ = 0;
    boost::system::error_code ignored;
    retransmit_timer_.cancel(ignored);
    handshake_timer_.cancel(ignored);
    if (lower_) lower_->abort();
}

sdk::flow_info dtls_flow::info() const noexcept {
    sdk::flow_info i;
    const auto below = lower_->info();
    i.kind = sdk::edge::datagram;
    i.local = below.local;
    i.remote = below.remote;
    i.max_message_size = max_message_size();
    return i;
}

// ---- events from the lower flow ---------------------------------------------------------

void dtls_flow::on_ready() noexcept {
    if (done_ || !client()) return;
    try {
        advance_handshake(); // the ClientHello
    } catch (...) {
        fail(internal_error("on_ready"));
    }
}

void dtls_flow::on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept {
    if (done_) return;
    try {
        receive(std::move(data), meta);
    } catch (...) {
        fail(internal_error("on_received"));
    }
}

void dtls_flow::receive(sdk::byte_buffer data, const sdk::receive_meta& meta) {
    ++datagrams_received_;
    if (!looks_like_dtls(data)) {
        if (!handshake_done_) return fail(not_dtls(data));
        ++summary_.dropped_records;
        return log(sdk::log_level::debug, "dropped a datagram that is not a DTLS record from " +
                                              params_.remote.to_string() + " (" +
                                              std::to_string(summary_.dropped_records) +
                                              " dropped so far)");
    }
    const bool app_data = static_cast<unsigned char>(data[0]) == content_application_data;
    bio_queue_.in.push_back(std::move(data));
    if (!handshake_done_) {
        advance_handshake();
        if (done_ || !handshake_done_) return;
    }
    const bool delivered = read_app_data(meta);
    // OpenSSL drops records that fail decryption, or were seen before, without a word.
    if (!done_ && app_data && !delivered && handshake_done_) {
        ++summary_.dropped_records;
        log(sdk::log_level::debug,
            "dropped a damaged or replayed DTLS record from " + params_.remote.to_string() + " (" +
                std::to_string(summary_.dropped_records) + " dropped so far)");
    }
    bio_queue_.in.clear(); // what OpenSSL left unread is no record (a cut-off datagram)
}

void dtls_flow::on_sent(std::uint64_t id) noexcept {
    if (done_) return;
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) return; // a handshake datagram
    const auto unit = it->second;
    in_flight_.erase(it);
    queued_bytes_ -= std::min(queued_bytes_, unit.size);
    if (auto ev = events_.lock()) ev->on_sent(unit.id);
}

void dtls_flow::on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept {
    if (done_) return;
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) {
        // A handshake datagram: the retransmission timer sends its flight again.
        log(sdk::log_level::debug, "a handshake datagram was not sent: " + e.reason);
        return;
    }
    const auto unit = it->second;
    in_flight_.erase(it);
    queued_bytes_ -= std::min(queued_bytes_, unit.size);
    if (auto ev = events_.lock()) ev->on_send_error(unit.id, e);
}

void dtls_flow::on_closed(const sdk::flow_error& e) noexcept {
    lower_closed_ = true;
    if (done_) return;
    try {
        if (lower_close_requested_ && !e) return finish({});
        if (!handshake_done_) {
            const std::string who = client() ? "the server" : "the client";
            if (e) return finish({e.code, "handshake failed: " + e.reason});
            return finish(
                {std::make_error_code(std::errc::connection_aborted),
                 "handshake failed: the datagram flow below closed before " + who + " answered"});
        }
        if (e) return finish(e);
        finish({std::make_error_code(std::errc::connection_aborted),
                "dtls: the datagram flow below closed without close_notify"});
    } catch (...) {
        finish(internal_error("on_closed"));
    }
}

void dtls_flow::on_alpn_mismatch(std::string offered) noexcept {
    alpn_offered_by_client_ = std::move(offered);
}

// ---- the machine ----------------------------------------------------------------------------

void dtls_flow::advance_handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    flush();
    if (r == 1) return handshake_complete();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return arm_retransmit();
    fail(failure(e));
}

void dtls_flow::handshake_complete() {
    handshake_done_ = true;
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    summary_.complete = true;
    summary_.version = SSL_get_version(ssl_);
    if (const char* c = SSL_get_cipher_name(ssl_)) summary_.cipher = c;
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (alpn) summary_.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
    log(sdk::log_level::debug,
        "handshake complete with " + params_.remote.to_string() + ": " + summary_.version + ", " +
            summary_.cipher + ", ALPN " +
            (summary_.alpn.empty() ? std::string("none") : "'" + summary_.alpn + "'") + ", " +
            std::to_string(summary_.retransmissions) + " retransmissions");
    // The side that sent the last flight keeps its timer until the peer shows it arrived.
    arm_retransmit();
    if (auto ev = events_.lock()) ev->on_ready();
    if (done_) return;
    write_pending();
    if (done_) return;
    maybe_close();
}

bool dtls_flow::read_app_data(const sdk::receive_meta& meta) {
    bool delivered = false;
    for (;;) {
        if (done_) return delivered;
        ERR_clear_error();
        std::size_t n = 0;
        const int r = SSL_read_ex(ssl_, read_buffer_.get(), read_chunk, &n);
        if (r == 1) {
            // DTLS reads return one record at a time: one datagram upwards each.
            const auto* b = reinterpret_cast<const std::byte*>(read_buffer_.get());
            delivered = true;
            if (auto ev = events_.lock()) ev->on_received(sdk::byte_buffer(b, b + n), meta);
            continue;
        }
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            flush();
            on_peer_close();
            return delivered;
        }
        const auto err = failure(e);
        flush();
        fail(err);
        return delivered;
    }
    flush(); // the peer repeated its last flight: ours goes again
    arm_retransmit();
    return delivered;
}

void dtls_flow::write_pending() {
    while (!pending_.empty() && !done_) {
        auto p = std::move(pending_.front());
        pending_.pop_front();
        ERR_clear_error();
        std::size_t w = 0;
        if (SSL_write_ex(ssl_, p.data.data(), p.data.size(), &w) != 1 || w != p.data.size()) {
            const int e = SSL_get_error(ssl_, 0);
            pending_.push_front(std::move(p));
            const auto err = failure(e);
            flush();
            return in_upper_call_ ? fail_later(err) : fail(err);
        }
        const auto size = p.data.size();
        if (const auto last = flush(); last != 0) {
            in_flight_[last] = {p.id, size};
        } else {
            // OpenSSL wrote nothing for it (it cannot, for data): count it sent.
            queued_bytes_ -= std::min(queued_bytes_, size);
            boost::asio::post(executor_, [self = shared_from_this(), id = p.id] {
                if (self->done_) return;
                if (auto ev = self->events_.lock()) ev->on_sent(id);
            });
        }
    }
}

std::uint64_t dtls_flow::flush() {
    std::uint64_t last = 0;
    if (bio_queue_.out.empty()) return last;
    auto out = std::move(bio_queue_.out);
    bio_queue_.out.clear();
    for (auto& d : out) {
        if (aborted_) break;
        sdk::send_meta m;
        m.id = lower_next_id_++;
        last = m.id;
        lower_->send(std::move(d), m);
    }
    return last;
}

void dtls_flow::maybe_close() {
    if (!close_requested_ || lower_close_requested_ || done_) return;
    if (handshake_done_) {
        if (!pending_.empty()) return;
        ERR_clear_error();
        SSL_shutdown(ssl_); // close_notify; over datagrams nobody waits for the answer
        ERR_clear_error();
        flush();
    } else if (!pending_.empty() && started_) {
        return; // the handshake finishes first (bounded by its timer), then these go
    }
    lower_close_requested_ = true;
    boost::system::error_code ignored;
    retransmit_timer_.cancel(ignored);
    handshake_timer_.cancel(ignored);
    lower_->close(); // on_closed follows once the lower flow has sent what it holds
}

void dtls_flow::on_peer_close() {
    log(sdk::log_level::debug, "the peer sent close_notify");
    if (!lower_close_requested_) {
        close_requested_ = true;
        ERR_clear_error();
        SSL_shutdown(ssl_);
        ERR_clear_error();
        flush();
        lower_close_requested_ = true;
        boost::system::error_code ignored;
        retransmit_timer_.cancel(ignored);
        lower_->close();
    }
}

void dtls_flow::arm_retransmit() {
    if (done_) return;
    timeval tv{};
    if (DTLSv1_get_timeout(ssl_, &tv) != 1) {
        if (retransmit_armed_) {
            retransmit_armed_ = false;
            boost::system::error_code ignored;
            retransmit_timer_.cancel(ignored);
        }
        return;
    }
    const auto at = std::chrono::steady_clock::now() + std::chrono::seconds(tv.tv_sec) +
                    std::chrono::microseconds(tv.tv_usec);
    // Re-arming for the same deadline would only cancel and queue another wait.
    if (retransmit_armed_ && at >= retransmit_at_ - std::chrono::milliseconds(1) &&
        at <= retransmit_at_ + std::chrono::milliseconds(1))
        return;
    retransmit_armed_ = true;
    retransmit_at_ = at;
    retransmit_timer_.expires_at(at);
    retransmit_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->on_retransmit_timer();
    });
}

void dtls_flow::on_retransmit_timer() {
    retransmit_armed_ = false;
    if (done_ || lower_close_requested_) return;
    try {
        ERR_clear_error();
        const int r = DTLSv1_handle_timeout(ssl_);
        if (r < 0) {
            const auto err = failure(SSL_get_error(ssl_, r));
            flush();
            return fail(err);
        }
        if (r > 0 && !bio_queue_.out.empty()) {
            ++summary_.retransmissions;
            log(sdk::log_level::debug, "no answer from " + params_.remote.to_string() +
                                           ": sent the last flight again (" +
                                           std::to_string(summary_.retransmissions) + ")");
        }
        flush();
        arm_retransmit();
    } catch (...) {
        fail(internal_error("the retransmission timer"));
    }
}

void dtls_flow::on_handshake_timer() {
    if (done_ || handshake_done_) return;
    const auto ms = std::to_string(opts_.handshake_timeout.count());
    std::string why;
    if (datagrams_received_ == 0)
        why = client() ? "no answer from the server" : "nothing after the first datagram";
    else
        why = "the peer did not complete it";
    fail({std::make_error_code(std::errc::timed_out),
          "handshake failed: timed out after " + ms + " ms with " + params_.remote.to_string() +
              " (" + why + "; " + std::to_string(summary_.retransmissions) + " retransmissions)"});
}

sdk::flow_error dtls_flow::failure(int ssl_error) {
    failure_context fc;
    fc.handshake = !handshake_done_;
    fc.side = params_.side;
    fc.verify = &verify_;
    fc.alpn_offered_by_client = alpn_offered_by_client_;
    fc.alpn_ours = quoted_list(settings_->alpn);
    auto e = describe_failure(ssl_, ssl_error, fc);
    if (e.reason.rfind("TLS ", 0) == 0) e.reason.insert(0, "D"); // "DTLS error: ..."
    return e;
}

void dtls_flow::fail(const sdk::flow_error& e) {
    if (done_) return;
    if (in_upper_call_) return fail_later(e);
    flush(); // OpenSSL's alert tells the peer why
    if (!lower_closed_ && !lower_close_requested_) {
        lower_close_requested_ = true;
        lower_->close();
    }
    finish(e);
}

void dtls_flow::fail_later(sdk::flow_error e) {
    try {
        boost::asio::post(executor_,
                          [self = shared_from_this(), e = std::move(e)] { self->fail(e); });
    } catch (...) {
        abort();
    }
}

void dtls_flow::finish(const sdk::flow_error& e) {
    if (done_) return;
    done_ = true;
    boost::system::error_code ignored;
    retransmit_timer_.cancel(ignored);
    handshake_timer_.cancel(ignored);
    auto ev = events_.lock();
    events_.reset();
    std::vector<std::uint64_t> unsent;
    for (const auto& [lower_id, unit] : in_flight_)
        unsent.push_back(unit.id);
    for (const auto& p : pending_)
        unsent.push_back(p.id);
    pending_.clear();
    in_flight_.clear();
    queued_bytes_ = 0;
    if (e) log(sdk::log_level::debug, e.reason);
    if (!ev) return;
    if (!e) {
        for (auto id : unsent)
            if (!aborted_)
                ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                       "dtls: the flow closed before this was sent"});
        unsent.clear();
    }
    sdk::report_end(*ev, e, unsent, [this] { return !aborted_; });
}

} // namespace post::plugins::tls
