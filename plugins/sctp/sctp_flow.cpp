#include "sctp_flow.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <usrsctp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace post::plugins::sctp {

namespace {

sdk::flow_error internal_error(const char* where) {
    return {std::make_error_code(std::errc::state_not_recoverable),
            std::string("sctp: internal error in ") + where};
}

sdk::flow_error errno_error(int e, const std::string& what) {
    return {std::error_code(e, std::system_category()), "sctp: " + what + ": " + std::strerror(e)};
}

sockaddr_conn conn_address(void* key, std::uint16_t port) {
    sockaddr_conn a{};
    a.sconn_family = AF_CONN;
    a.sconn_port = htons(port);
    a.sconn_addr = key;
    return a;
}

template <class T> bool set_option(struct socket* so, int level, int name, const T& value) {
    return usrsctp_setsockopt(so, level, name, &value, sizeof value) == 0;
}

constexpr std::uint16_t subscribed_events[] = {SCTP_ASSOC_CHANGE, SCTP_SHUTDOWN_EVENT,
                                               SCTP_SEND_FAILED_EVENT, SCTP_REMOTE_ERROR,
                                               SCTP_PARTIAL_DELIVERY_EVENT};

/// usrsctp's send buffer is the largest message a non-blocking send can take whole, so it is
/// sized for max-message-size (a limit, not an allocation); at least its usual 256 KiB.
int send_buffer_for(std::size_t max_message) {
    constexpr std::size_t floor = 256 * 1024;
    const std::size_t want = std::max(floor, max_message + 64 * 1024);
    return static_cast<int>(std::min<std::size_t>(want, 1u << 30));
}

} // namespace

sctp_flow::sctp_flow(boost::asio::any_io_executor ex, std::shared_ptr<sctp_stack> stack,
                     const sctp_settings& settings, std::shared_ptr<sdk::flow> lower,
                     sdk::open_params p)
    : executor_(std::move(ex))
    , stack_(std::move(stack))
    , settings_(settings)
    , lower_(std::move(lower))
    , params_(std::move(p))
    , handshake_timer_(executor_) {}

sctp_flow::~sctp_flow() {
    // Whatever is left (abort() or a flow dropped without close) ends with ABORT to the peer:
    // an association must not outlive its address in usrsctp.
    close_sockets(true);
    if (registered_) {
        if (lower_ && !lower_closed_) {
            for (auto& p : stack_->take_packets(key())) {
                sdk::send_meta m;
                m.id = lower_next_id_++;
                lower_->send(std::move(p), m);
            }
        }
        stack_->remove(key());
    }
}

void sctp_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
    stack_->add(key(), executor_, std::static_pointer_cast<sctp_endpoint>(shared_from_this()));
    registered_ = true;
}

std::string sctp_flow::peer() const {
    return params_.remote.to_string() + " (SCTP port " + std::to_string(settings_.port) + ")";
}

void sctp_flow::log(sdk::log_level level, const std::string& text) const noexcept {
    settings_.write_log(level, text);
}

void sctp_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

// ---- upper side -------------------------------------------------------------------------------

void sctp_flow::start() noexcept {
    if (started_ || state_ == state::done) return;
    started_ = true;
    upper_call guard(in_upper_call_);
    try {
        handshake_timer_.expires_after(settings_.handshake_timeout);
        handshake_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->on_handshake_timer();
        });
        state_ = state::connecting;
        if (!client()) {
            // Listening before the lower flow delivers anything: its first datagram is the INIT.
            sdk::flow_error err;
            if (!open_listener(err)) return fail_later(err);
        }
        lower_->start();
    } catch (...) {
        fail_later(internal_error("start"));
    }
}

void sctp_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    if (state_ == state::done) return;
    upper_call guard(in_upper_call_);
    try {
        auto refuse = [&](std::errc code, std::string why) {
            boost::asio::post(executor_,
                              [self = shared_from_this(), id = meta.id,
                               e = sdk::flow_error{std::make_error_code(code), std::move(why)}] {
                                  if (self->state_ == state::done) return;
                                  if (auto ev = self->events_.lock()) ev->on_send_error(id, e);
                              });
        };
        if (close_requested_ || peer_closed_)
            return refuse(std::errc::broken_pipe,
                          close_requested_ ? "sctp: send after close()"
                                           : "sctp: the peer has shut the association down");
        if (data.size() > settings_.max_message_size)
            return refuse(std::errc::message_size,
                          "sctp: message of " + std::to_string(data.size()) +
                              " bytes exceeds max-message-size (" +
                              std::to_string(settings_.max_message_size) + " bytes)");
        if (data.empty())
            return refuse(std::errc::invalid_argument,
                          "sctp: cannot send an empty message (SCTP has no empty user messages)");
        queued_bytes_ += data.size();
        pending_.push_back({meta.id, std::move(data), meta.deadline});
        if (state_ == state::established) write_pending();
    } catch (...) {
        fail_later({std::make_error_code(std::errc::not_enough_memory),
                    "sctp: out of memory while sending"});
    }
}

void sctp_flow::close() noexcept {
    if (state_ == state::done || close_requested_) return;
    close_requested_ = true;
    upper_call guard(in_upper_call_);
    try {
        if (!started_) {
            boost::asio::post(executor_, [self = shared_from_this()] { self->finish({}); });
            return;
        }
        maybe_shutdown();
    } catch (...) {
        abort();
    }
}

void sctp_flow::abort() noexcept {
    if (aborted_) return;
    aborted_ = true;
    events_.reset();
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    pending_.clear();
    queued_bytes_ = 0;
    const bool was_done = state_ == state::done;
    state_ = state::done;
    if (was_done) return;
    try {
        close_sockets(true); // ABORT to the peer
        flush();
        if (lower_ && !lower_closed_) lower_->close(); // the ABORT still goes out
    } catch (...) {
    }
}

sdk::flow_info sctp_flow::info() const noexcept {
    sdk::flow_info i;
    const auto below = lower_->info();
    i.kind = sdk::edge::message;
    i.local = below.local;
    i.remote = below.remote;
    i.max_message_size = settings_.max_message_size;
    i.capabilities = sdk::cap_ordered;
    return i;
}

// ---- lower side -------------------------------------------------------------------------------

void sctp_flow::on_ready() noexcept {
    if (state_ == state::done || !client()) return;
    try {
        sdk::flow_error err;
        if (!open_client(err)) return fail(err);
        flush(); // the INIT
    } catch (...) {
        fail(internal_error("on_ready"));
    }
}

void sctp_flow::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    if (state_ == state::done || data.empty()) return;
    try {
        ++summary_.packets_in;
        // usrsctp checks the CRC32c and drops what fails it or fits no association.
        usrsctp_conninput(key(), data.data(), data.size(), 0);
        flush();
        on_socket_event();
    } catch (...) {
        fail(internal_error("on_received"));
    }
}

void sctp_flow::on_closed(const sdk::flow_error& e) noexcept {
    lower_closed_ = true;
    if (state_ == state::done) return;
    try {
        if (e) return fail({e.code, "sctp: the datagram flow below failed: " + e.reason});
        fail({std::make_error_code(std::errc::connection_aborted),
              "sctp: the datagram flow below closed before the association ended"});
    } catch (...) {
        finish(internal_error("on_closed"));
    }
}

void sctp_flow::on_packets(std::vector<sdk::byte_buffer> packets) noexcept {
    if (lower_closed_ || !lower_) return;
    try {
        for (auto& p : packets) {
            sdk::send_meta m;
            m.id = lower_next_id_++;
            ++summary_.packets_out;
            lower_->send(std::move(p), m);
        }
    } catch (...) {
    }
}

void sctp_flow::flush() {
    if (!registered_) return;
    on_packets(stack_->take_packets(key()));
}

void sctp_flow::on_socket_event() noexcept {
    if (state_ == state::done) return;
    try {
        if (listen_ && !sock_) try_accept();
        if (state_ == state::done || !sock_) return flush();
        read_all();
        if (state_ == state::done) return;
        if (state_ == state::established) write_pending();
        flush();
    } catch (...) {
        fail(internal_error("a socket event"));
    }
}

// ---- sockets ------------------------------------------------------------------------------

bool sctp_flow::configure(struct socket* so, sdk::flow_error& err) {
    const int on = 1;
    if (usrsctp_set_non_blocking(so, 1) != 0 ||
        usrsctp_set_upcall(so, &sctp_stack::upcall, key()) != 0) {
        err = errno_error(errno, "cannot set up a socket");
        return false;
    }
    bool ok = set_option(so, IPPROTO_SCTP, SCTP_RECVRCVINFO, on) &&
              // Each message leaves at once: the scheduler above decides, not Nagle.
              set_option(so, IPPROTO_SCTP, SCTP_NODELAY, on);
    sctp_initmsg init{};
    init.sinit_num_ostreams = settings_.streams;
    init.sinit_max_instreams = settings_.streams;
    ok = ok && set_option(so, IPPROTO_SCTP, SCTP_INITMSG, init);
    const int sndbuf = send_buffer_for(settings_.max_message_size);
    ok = ok && set_option(so, SOL_SOCKET, SO_SNDBUF, sndbuf);
    for (auto type : subscribed_events) {
        sctp_event ev{};
        ev.se_assoc_id = SCTP_FUTURE_ASSOC;
        ev.se_type = type;
        ev.se_on = 1;
        ok = ok && set_option(so, IPPROTO_SCTP, SCTP_EVENT, ev);
    }
    if (!ok) {
        err = errno_error(errno, "cannot set socket options");
        return false;
    }
    return true;
}

bool sctp_flow::open_listener(sdk::flow_error& err) {
    listen_ = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, nullptr, nullptr, 0, nullptr);
    if (!listen_) {
        err = errno_error(errno, "cannot create a socket");
        return false;
    }
    if (!configure(listen_, err)) return false;
    auto local = conn_address(key(), settings_.port);
    if (usrsctp_bind(listen_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        err = errno_error(errno, "cannot bind SCTP port " + std::to_string(settings_.port));
        return false;
    }
    if (usrsctp_listen(listen_, 1) != 0) {
        err = errno_error(errno, "cannot listen");
        return false;
    }
    return true;
}

bool sctp_flow::open_client(sdk::flow_error& err) {
    if (sock_) return true;
    sock_ = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, nullptr, nullptr, 0, nullptr);
    if (!sock_) {
        err = errno_error(errno, "cannot create a socket");
        return false;
    }
    if (!configure(sock_, err)) return false;
    auto local = conn_address(key(), settings_.port);
    if (usrsctp_bind(sock_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        err = errno_error(errno, "cannot bind SCTP port " + std::to_string(settings_.port));
        return false;
    }
    auto remote = conn_address(key(), settings_.port);
    if (usrsctp_connect(sock_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0 &&
        errno != EINPROGRESS) {
        err = errno_error(errno, "cannot start an association with " + peer());
        return false;
    }
    log(sdk::log_level::debug, "INIT sent to " + peer());
    return true;
}

void sctp_flow::try_accept() {
    struct socket* s = usrsctp_accept(listen_, nullptr, nullptr);
    if (!s) return; // EWOULDBLOCK: the association is not up yet
    sock_ = s;
    sdk::flow_error err;
    if (!configure(sock_, err)) return fail(err);
    // One association per flow: further INITs to this address get no listener.
    usrsctp_set_upcall(listen_, nullptr, nullptr);
    usrsctp_close(listen_);
    listen_ = nullptr;
    established();
}

void sctp_flow::established() {
    if (state_ != state::connecting) return;
    state_ = state::established;
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    sctp_status st{};
    socklen_t len = sizeof st;
    if (usrsctp_getsockopt(sock_, IPPROTO_SCTP, SCTP_STATUS, &st, &len) == 0) {
        summary_.outbound_streams = st.sstat_outstrms;
        summary_.inbound_streams = st.sstat_instrms;
    }
    log(sdk::log_level::debug, "association up with " + peer() + ": " +
                                   std::to_string(summary_.outbound_streams) + " out / " +
                                   std::to_string(summary_.inbound_streams) + " in streams");
    if (auto ev = events_.lock()) ev->on_ready();
    if (state_ == state::done) return;
    write_pending();
    if (state_ == state::done) return;
    maybe_shutdown();
}

void sctp_flow::read_all() {
    for (;;) {
        if (state_ == state::done || !sock_) return;
        sockaddr_conn from{};
        socklen_t from_len = sizeof from;
        sctp_rcvinfo rcv{};
        socklen_t info_len = sizeof rcv;
        unsigned int info_type = 0;
        int flags = 0;
        const ssize_t n =
            usrsctp_recvv(sock_, read_buffer_.get(), read_chunk, reinterpret_cast<sockaddr*>(&from),
                          &from_len, &rcv, &info_len, &info_type, &flags);
        if (n < 0) {
            const int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK) return;
            if (e == ENOTCONN && state_ == state::connecting) return;
            if (e == ECONNRESET)
                return fail({std::make_error_code(std::errc::connection_reset),
                             "sctp: the association with " + peer() + " was aborted"});
            return fail(errno_error(e, "receive failed"));
        }
        if (n == 0) {
            // End of file: the peer shut the association down (SHUTDOWN), or it is gone.
            if (!peer_closed_) peer_shut_down();
            return;
        }
        const auto* b = read_buffer_.get();
        if (flags & MSG_NOTIFICATION) {
            notification_.insert(notification_.end(), b, b + n);
            if (flags & MSG_EOR) {
                auto note = std::exchange(notification_, {});
                handle_notification(note);
            }
            continue;
        }
        if (message_.size() + static_cast<std::size_t>(n) > settings_.max_message_size)
            return fail({std::make_error_code(std::errc::message_size),
                         "sctp: the peer sent a message larger than max-message-size (" +
                             std::to_string(settings_.max_message_size) +
                             " bytes); association aborted"});
        message_.insert(message_.end(), b, b + n);
        if (flags & MSG_EOR) {
            auto m = std::exchange(message_, {});
            sdk::receive_meta meta;
            if (auto ev = events_.lock()) ev->on_received(std::move(m), meta);
        }
    }
}

void sctp_flow::handle_notification(const sdk::byte_buffer& note) {
    using header = decltype(sctp_notification::sn_header);
    if (note.size() < sizeof(header)) return;
    header h{};
    std::memcpy(&h, note.data(), sizeof h);
    switch (h.sn_type) {
    case SCTP_ASSOC_CHANGE: {
        if (note.size() < sizeof(sctp_assoc_change)) return;
        sctp_assoc_change sac{};
        std::memcpy(&sac, note.data(), sizeof sac);
        const std::size_t info_len =
            std::min<std::size_t>(sac.sac_length, note.size()) - sizeof(sctp_assoc_change);
        const auto* info = note.data() + sizeof(sctp_assoc_change);
        // For a lost association, sac_info holds the ABORT chunk the peer sent (type 6).
        const bool got_abort = info_len >= 4 && static_cast<unsigned char>(info[0]) == 6;
        switch (sac.sac_state) {
        case SCTP_COMM_UP:
            for (std::size_t i = 0; i < info_len; ++i)
                if (static_cast<unsigned char>(info[i]) == SCTP_ASSOC_SUPPORTS_PR)
                    summary_.peer_supports_pr = true;
            return established();
        case SCTP_RESTART:
            return log(sdk::log_level::info, "the peer " + peer() + " restarted the association");
        case SCTP_SHUTDOWN_COMP:
            return shutdown_complete();
        case SCTP_COMM_LOST:
            return fail({std::make_error_code(got_abort ? std::errc::connection_reset
                                                        : std::errc::timed_out),
                         got_abort ? "sctp: the peer " + peer() + " aborted the association (ABORT)"
                                   : "sctp: the association with " + peer() +
                                         " was lost (no answer: retransmissions exhausted)"});
        case SCTP_CANT_STR_ASSOC:
            return fail({std::make_error_code(got_abort ? std::errc::connection_refused
                                                        : std::errc::timed_out),
                         got_abort ? "sctp: " + peer() +
                                         " refused the association (ABORT: nothing listens on "
                                         "that SCTP port?)"
                                   : "sctp: no association with " + peer() +
                                         ": INIT retransmissions exhausted"});
        default:
            return;
        }
    }
    case SCTP_SHUTDOWN_EVENT:
        return peer_shut_down();
    case SCTP_SEND_FAILED_EVENT:
        ++summary_.messages_abandoned;
        return log(sdk::log_level::debug,
                   "a message to " + peer() + " was abandoned (its PR-SCTP lifetime ran out)");
    case SCTP_REMOTE_ERROR:
        return log(sdk::log_level::warning, "the peer " + peer() + " reported an error");
    default:
        return;
    }
}

void sctp_flow::write_pending() {
    const auto now = std::chrono::steady_clock::now();
    while (!pending_.empty() && state_ == state::established && sock_) {
        auto& p = pending_.front();
        if (p.deadline && *p.deadline <= now) {
            // Its lifetime ended while it waited: it never reaches the wire.
            queued_bytes_ -= std::min(queued_bytes_, p.data.size());
            expired_.push_back(p.id);
            pending_.pop_front();
            continue;
        }
        sctp_sendv_spa spa{};
        spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
        spa.sendv_sndinfo.snd_sid = 0;
        if (p.deadline) {
            // PR-SCTP timed reliability: the sender abandons it on the wire after this long.
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(*p.deadline - now).count();
            spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
            spa.sendv_prinfo.pr_policy = SCTP_PR_SCTP_TTL;
            spa.sendv_prinfo.pr_value = static_cast<std::uint32_t>(std::max<long long>(left, 1));
        }
        const ssize_t n = usrsctp_sendv(sock_, p.data.data(), p.data.size(), nullptr, 0, &spa,
                                        sizeof spa, SCTP_SENDV_SPA, 0);
        if (n < 0) {
            const int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK) break; // the upcall says when there is room
            const auto err = errno_error(e, "send failed");
            return in_upper_call_ ? fail_later(err) : fail(err);
        }
        queued_bytes_ -= std::min(queued_bytes_, p.data.size());
        sent_.push_back(p.id);
        pending_.pop_front();
    }
    flush();
    if (!sent_.empty() || !expired_.empty()) report_sent_later();
    if (pending_.empty()) maybe_shutdown();
}

void sctp_flow::report_sent_later() {
    if (report_posted_) return;
    report_posted_ = true;
    boost::asio::post(executor_, [self = shared_from_this()] {
        self->report_posted_ = false;
        auto sent = std::exchange(self->sent_, {});
        auto expired = std::exchange(self->expired_, {});
        for (auto id : sent) {
            if (self->state_ == state::done && self->aborted_) return;
            if (auto ev = self->events_.lock()) ev->on_sent(id);
        }
        for (auto id : expired) {
            if (self->state_ == state::done && self->aborted_) return;
            if (auto ev = self->events_.lock()) ev->on_expired(id);
        }
    });
}

void sctp_flow::maybe_shutdown() {
    if (!close_requested_ || state_ != state::established || !pending_.empty() || !sock_) return;
    if (in_upper_call_) {
        // From close(): the SHUTDOWN goes one turn later, so no event reaches the caller inside
        // its own call.
        boost::asio::post(executor_, [self = shared_from_this()] {
            if (self->state_ == state::established) self->maybe_shutdown();
        });
        return;
    }
    state_ = state::shutting_down;
    if (usrsctp_shutdown(sock_, SHUT_WR) != 0 && errno != ENOTCONN)
        return fail(errno_error(errno, "shutdown failed"));
    log(sdk::log_level::debug, "SHUTDOWN sent to " + peer());
    flush();
}

void sctp_flow::peer_shut_down() {
    if (peer_closed_) return;
    peer_closed_ = true;
    log(sdk::log_level::debug, "the peer " + peer() + " shut the association down");
    // usrsctp answers SHUTDOWN-ACK once what we queued is delivered; SHUTDOWN_COMP follows.
    // What the upper side had not handed to usrsctp yet can no longer go.
    const sdk::flow_error gone{std::make_error_code(std::errc::broken_pipe),
                               "sctp: the peer shut the association down before this was sent"};
    auto ev = events_.lock();
    auto pending = std::exchange(pending_, {});
    queued_bytes_ = 0;
    for (auto& p : pending)
        if (ev && !aborted_) ev->on_send_error(p.id, gone);
}

void sctp_flow::shutdown_complete() {
    log(sdk::log_level::debug, "SHUTDOWN complete with " + peer());
    close_sockets(false);
    flush(); // the SHUTDOWN COMPLETE
    if (!lower_closed_) lower_->close();
    finish({});
}

void sctp_flow::on_handshake_timer() {
    if (state_ != state::connecting) return;
    fail({std::make_error_code(std::errc::timed_out),
          "sctp: no association with " + peer() + " after " +
              std::to_string(settings_.handshake_timeout.count()) + " ms" +
              (client() ? " (no answer to INIT)" : " (the peer never completed one)")});
}

void sctp_flow::close_sockets(bool send_abort) {
    auto close_one = [send_abort](struct socket*& so) {
        if (!so) return;
        usrsctp_set_upcall(so, nullptr, nullptr);
        if (send_abort) {
            // SO_LINGER 0: close sends ABORT and frees the association now.
            linger l{};
            l.l_onoff = 1;
            l.l_linger = 0;
            usrsctp_setsockopt(so, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        usrsctp_close(so);
        so = nullptr;
    };
    close_one(sock_);
    close_one(listen_);
}

void sctp_flow::fail(const sdk::flow_error& e) {
    if (state_ == state::done) return;
    if (in_upper_call_) return fail_later(e);
    close_sockets(true);
    flush(); // the ABORT, if the association was still up
    if (!lower_closed_) lower_->close();
    finish(e);
}

void sctp_flow::fail_later(sdk::flow_error e) {
    try {
        boost::asio::post(executor_,
                          [self = shared_from_this(), e = std::move(e)] { self->fail(e); });
    } catch (...) {
        abort();
    }
}

void sctp_flow::finish(const sdk::flow_error& e) {
    if (state_ == state::done) return;
    state_ = state::done;
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    close_sockets(!!e);
    auto ev = events_.lock();
    events_.reset();
    std::vector<std::uint64_t> unsent;
    for (const auto& p : pending_)
        unsent.push_back(p.id);
    pending_.clear();
    queued_bytes_ = 0;
    // Units handed to usrsctp whose on_sent is still posted are reported first.
    auto sent = std::exchange(sent_, {});
    auto expired = std::exchange(expired_, {});
    if (e) log(sdk::log_level::debug, e.reason);
    if (!ev) return;
    for (auto id : sent)
        if (!aborted_) ev->on_sent(id);
    for (auto id : expired)
        if (!aborted_) ev->on_expired(id);
    if (!e) {
        for (auto id : unsent)
            if (!aborted_)
                ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                       "sctp: the flow closed before this was sent"});
        unsent.clear();
    }
    sdk::report_end(*ev, e, unsent, [this] { return !aborted_; });
}

} // namespace post::plugins::sctp
