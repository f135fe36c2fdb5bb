#include "sctp_association.hpp"
#include "sctp_stream.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <usrsctp.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
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

constexpr std::uint16_t subscribed_events[] = {
    SCTP_ASSOC_CHANGE,           SCTP_SHUTDOWN_EVENT,     SCTP_SEND_FAILED_EVENT, SCTP_REMOTE_ERROR,
    SCTP_PARTIAL_DELIVERY_EVENT, SCTP_STREAM_RESET_EVENT, SCTP_SENDER_DRY_EVENT,
};

/// usrsctp's send buffer is the largest message a non-blocking send can take whole, so it is
/// sized for max-message-size (a limit, not an allocation); at least its usual 256 KiB.
int send_buffer_for(std::size_t max_message) {
    constexpr std::size_t floor = 256 * 1024;
    const std::size_t want = std::max(floor, max_message + 64 * 1024);
    return static_cast<int>(std::min<std::size_t>(want, 1u << 30));
}

/// usrsctp 0.9.5 answers SCTP_GET_SNDBUF_USE (its netinet/sctp.h) although usrsctp.h leaves it
/// out: the bytes of the association still inside usrsctp, queued or sent and not yet
/// acknowledged. Zero means the peer has everything we handed over (or it was abandoned, which
/// SCTP_SEND_FAILED_EVENT reports first).
constexpr int get_sndbuf_use = 0x00001101;
struct sndbuf_use {
    sctp_assoc_t assoc_id;
    std::uint32_t total_sndbuf;
    std::uint32_t total_recv_buf;
};

/// The priority scheduler keeps streams sorted by ascending SCTP_SS_VALUE and serves the head
/// (sctp_ss_functions.c, sctp_ss_prio_add/select): niceness 0 is served first.
std::uint16_t ss_value_for(int niceness) {
    return static_cast<std::uint16_t>(std::clamp(niceness, 0, 65535));
}

/// sac_info of a lost association holds the ABORT chunk the peer sent (chunk type 6).
constexpr unsigned char abort_chunk_type = 6;

/// PR-SCTP drops a message once its TTL (whole milliseconds, rounded down) has run out; our
/// deadline may then still be a fraction of a millisecond away.
constexpr auto ttl_slack = std::chrono::milliseconds(5);

/// How often the socket is read while a held message's lifetime has passed (arm_held_timer).
constexpr auto held_poll = std::chrono::milliseconds(50);

} // namespace

// ---- construction -----------------------------------------------------------------------------

std::shared_ptr<sctp_stream> sctp_association::open(boost::asio::any_io_executor ex,
                                                    std::shared_ptr<sctp_stack> stack,
                                                    const sctp_settings& settings,
                                                    std::shared_ptr<sdk::flow> lower,
                                                    sdk::open_params p) {
    auto a = std::make_shared<sctp_association>(std::move(ex), std::move(stack), settings,
                                                std::move(lower), std::move(p));
    a->attach();
    auto s = std::make_shared<sctp_stream>(a, 0, false);
    auto& sl = a->slots_[0];
    sl.flow = s;
    sl.raw = s.get();
    return s;
}

sctp_association::sctp_association(boost::asio::any_io_executor ex,
                                   std::shared_ptr<sctp_stack> stack, const sctp_settings& settings,
                                   std::shared_ptr<sdk::flow> lower, sdk::open_params p)
    : executor_(std::move(ex))
    , stack_(std::move(stack))
    , settings_(settings)
    , lower_(std::move(lower))
    , params_(std::move(p))
    , handshake_timer_(executor_)
    , held_timer_(executor_) {}

sctp_association::~sctp_association() {
    // Whatever is left (every stream flow dropped without close) ends with ABORT to the peer:
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

void sctp_association::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
    stack_->add(key(), executor_, std::static_pointer_cast<sctp_endpoint>(shared_from_this()));
    registered_ = true;
}

std::string sctp_association::peer() const {
    return params_.remote.to_string() + " (SCTP port " + std::to_string(settings_.port) + ")";
}

void sctp_association::log(sdk::log_level level, const std::string& text) const noexcept {
    settings_.write_log(level, text);
}

// ---- stream calls -----------------------------------------------------------------------------

void sctp_association::start_stream(const std::shared_ptr<sctp_stream>& s) noexcept {
    upper_call guard(in_upper_call_);
    try {
        if (state_ == state::idle) {
            // The first stream started starts the association.
            handshake_timer_.expires_after(settings_.handshake_timeout);
            handshake_timer_.async_wait(
                [weak = weak_from_this()](const boost::system::error_code& ec) {
                    if (ec) return;
                    if (auto self = weak.lock()) self->on_handshake_timer();
                });
            state_ = state::connecting;
            if (!client()) {
                // Listening before the lower flow delivers anything: its first datagram is
                // the INIT.
                sdk::flow_error err;
                if (!open_listener(err)) return fail_later(err);
            }
            lower_->start();
            return;
        }
        if (state_ == state::established || state_ == state::shutting_down) {
            // Up already: on_ready one turn later, never inside start().
            boost::asio::post(executor_, [self = shared_from_this(), s] {
                if (s->done_ || s->aborted_ || s->ready_) return;
                try {
                    self->mark_ready(s);
                } catch (...) {
                    self->fail(internal_error("on_ready"));
                }
            });
        }
        // Connecting: on_ready comes with SCTP_COMM_UP.
    } catch (...) {
        fail_later(internal_error("start"));
    }
}

void sctp_association::send_on(const std::shared_ptr<sctp_stream>& s, sdk::byte_buffer data,
                               const sdk::send_meta& meta) noexcept {
    upper_call guard(in_upper_call_);
    try {
        auto refuse = [&](std::errc code, std::string why) {
            s->queue_error(meta.id, {std::make_error_code(code), std::move(why)});
        };
        if (s->close_requested_) return refuse(std::errc::broken_pipe, "sctp: send after close()");
        if (peer_closed_ || shutdown_requested_)
            return refuse(std::errc::broken_pipe, "sctp: the peer has shut the association down");
        if (s->peer_closed_)
            return refuse(std::errc::broken_pipe,
                          "sctp: the peer closed stream " + std::to_string(s->id_));
        if (data.size() > settings_.max_message_size)
            return refuse(std::errc::message_size,
                          "sctp: message of " + std::to_string(data.size()) +
                              " bytes exceeds max-message-size (" +
                              std::to_string(settings_.max_message_size) + " bytes)");
        if (data.empty())
            return refuse(std::errc::invalid_argument,
                          "sctp: cannot send an empty message (SCTP has no empty user messages)");
        const auto ordered = meta.properties.find("ordered");
        const bool unordered = ordered != meta.properties.end() && ordered->second == "false";
        s->queued_bytes_ += data.size();
        s->pending_.push_back({meta.id, std::move(data), meta.deadline, meta.niceness, unordered,
                               meta.immediate, send_seq_++});
        if (state_ == state::established) write_pending();
    } catch (...) {
        fail_later({std::make_error_code(std::errc::not_enough_memory),
                    "sctp: out of memory while sending"});
    }
}

void sctp_association::close_stream(const std::shared_ptr<sctp_stream>& s) noexcept {
    upper_call guard(in_upper_call_);
    try {
        s->close_requested_ = true;
        if (!s->started_) {
            // close() promises on_closed even to a flow never started (an incoming stream
            // closed instead of accepted): it gets that, without on_ready or messages.
            s->started_ = true;
            s->ready_ = true;
            s->inbox_.clear();
            s->inbox_bytes_ = 0;
        }
        if (!other_open_streams(s.get())) {
            // The last open stream: the association ends (SHUTDOWN once everything queued is in
            // usrsctp), as a one-stream association always did.
            if (state_ == state::idle) return finish_stream(s, {});
            shutdown_requested_ = true;
            return maybe_shutdown();
        }
        s->close_by_reset_ = true;
        if (state_ != state::established) {
            if (!s->pending_.empty()) return; // sent, then reset, once the association is up
            // Nothing of it reached the peer: its id is free at once.
            if (auto it = slots_.find(s->id_); it != slots_.end() && it->second.raw == s.get())
                slots_.erase(it);
            return finish_stream(s, {});
        }
        if (s->pending_.empty()) request_reset(s->id_);
        // else write_pending resets it once its queue is in usrsctp
    } catch (...) {
        fail_later(internal_error("close"));
    }
}

void sctp_association::abort_stream(std::uint16_t id, const sctp_stream* who) noexcept {
    upper_call guard(in_upper_call_);
    try {
        for (auto it = held_.begin(); it != held_.end();)
            it = it->second.raw == who ? held_.erase(it) : std::next(it);
        auto it = slots_.find(id);
        if (it == slots_.end() || it->second.raw != who) return;
        it->second.flow.reset();
        it->second.raw = nullptr;
        if (state_ == state::done) return;
        if (other_open_streams(who)) {
            // One of several: reset it and drop what still arrives on it, silently.
            if (state_ == state::established) return request_reset(id);
            if (state_ == state::idle || state_ == state::connecting) slots_.erase(it);
            return;
        }
        // The last open stream: ABORT, as a one-stream association always did. Streams still
        // closing end with the abort.
        close_sockets(true);
        flush();
        if (lower_ && !lower_closed_) lower_->close(); // the ABORT still goes out
        end_all({std::make_error_code(std::errc::connection_aborted),
                 "sctp: the association with " + peer() +
                     " was aborted (abort() on its last open stream)"});
    } catch (...) {
    }
}

std::shared_ptr<sdk::flow> sctp_association::fork() noexcept {
    try {
        if (state_ == state::done || state_ == state::shutting_down || shutdown_requested_ ||
            peer_closed_)
            return nullptr;
        // Before SCTP_COMM_UP the count asked for; ids beyond what the peer grants end then.
        const unsigned count =
            state_ == state::established ? summary_.outbound_streams : settings_.streams;
        for (unsigned id = client() ? 0 : 1; id < count; id += 2) {
            const auto sid = static_cast<std::uint16_t>(id);
            if (slots_.count(sid)) continue;
            auto s = std::make_shared<sctp_stream>(shared_from_this(), sid, false);
            auto& sl = slots_[sid];
            sl.flow = s;
            sl.raw = s.get();
            log(sdk::log_level::debug, "stream " + std::to_string(sid) + " opened to " + peer());
            return s;
        }
        log(sdk::log_level::info, "no free " + std::string(client() ? "even" : "odd") +
                                      " stream id below " + std::to_string(count) + " with " +
                                      peer() + ": fork refused");
        return nullptr;
    } catch (...) {
        return nullptr;
    }
}

sdk::flow_info sctp_association::info() const noexcept {
    sdk::flow_info i;
    const auto below = lower_->info();
    i.kind = sdk::edge::message;
    i.local = below.local;
    i.remote = below.remote;
    i.max_message_size = settings_.max_message_size;
    i.capabilities = sdk::cap_ordered | sdk::cap_expires_in_flight;
    return i;
}

// ---- lower side -------------------------------------------------------------------------------

void sctp_association::on_ready() noexcept {
    if (state_ == state::done || !client()) return;
    try {
        sdk::flow_error err;
        if (!open_client(err)) return fail(err);
        flush(); // the INIT
    } catch (...) {
        fail(internal_error("on_ready"));
    }
}

void sctp_association::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
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

void sctp_association::on_closed(const sdk::flow_error& e) noexcept {
    lower_closed_ = true;
    if (state_ == state::done) return;
    try {
        if (e) return fail({e.code, "sctp: the datagram flow below failed: " + e.reason});
        fail({std::make_error_code(std::errc::connection_aborted),
              "sctp: the datagram flow below closed before the association ended"});
    } catch (...) {
        end_all(internal_error("on_closed"));
    }
}

void sctp_association::on_packets(std::vector<sdk::byte_buffer> packets) noexcept {
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

void sctp_association::flush() {
    if (!registered_) return;
    on_packets(stack_->take_packets(key()));
}

void sctp_association::on_socket_event() noexcept {
    if (state_ == state::done) return;
    try {
        if (listen_ && !sock_) try_accept();
        if (state_ == state::done || !sock_) return flush();
        read_all();
        if (state_ == state::done) return;
        if (state_ == state::established) write_pending();
        if (state_ == state::done) return;
        release_held_if_acked();
        arm_held_timer();
        flush();
    } catch (...) {
        fail(internal_error("a socket event"));
    }
}

// ---- sockets ----------------------------------------------------------------------------------

bool sctp_association::configure(struct socket* so, sdk::flow_error& err) {
    const int on = 1;
    if (usrsctp_set_non_blocking(so, 1) != 0 ||
        usrsctp_set_upcall(so, &sctp_stack::upcall, key()) != 0) {
        err = errno_error(errno, "cannot set up a socket");
        return false;
    }
    bool ok = set_option(so, IPPROTO_SCTP, SCTP_RECVRCVINFO, on) &&
              // Each message leaves at once: the scheduler above decides, not Nagle. This also
              // covers `immediate`, so there is no per-message switch.
              set_option(so, IPPROTO_SCTP, SCTP_NODELAY, on);
    sctp_initmsg init{};
    init.sinit_num_ostreams = settings_.streams;
    init.sinit_max_instreams = settings_.streams;
    ok = ok && set_option(so, IPPROTO_SCTP, SCTP_INITMSG, init);
    const int sndbuf = send_buffer_for(settings_.max_message_size);
    ok = ok && set_option(so, SOL_SOCKET, SO_SNDBUF, sndbuf);
    // RFC 6525 outgoing stream resets, asked and answered: how a stream closes.
    sctp_assoc_value reset{};
    reset.assoc_id = SCTP_FUTURE_ASSOC;
    reset.assoc_value = SCTP_ENABLE_RESET_STREAM_REQ;
    ok = ok && set_option(so, IPPROTO_SCTP, SCTP_ENABLE_STREAM_RESET, reset);
    // Niceness is the stream's priority (SCTP_SS_VALUE per stream, set before each send).
    sctp_assoc_value ss{};
    ss.assoc_id = SCTP_FUTURE_ASSOC;
    ss.assoc_value = SCTP_SS_PRIORITY;
    ok = ok && set_option(so, IPPROTO_SCTP, SCTP_PLUGGABLE_SS, ss);
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

bool sctp_association::open_listener(sdk::flow_error& err) {
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

bool sctp_association::open_client(sdk::flow_error& err) {
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

void sctp_association::try_accept() {
    struct socket* s = usrsctp_accept(listen_, nullptr, nullptr);
    if (!s) return; // EWOULDBLOCK: the association is not up yet
    sock_ = s;
    sdk::flow_error err;
    if (!configure(sock_, err)) return fail(err);
    // One association per lower flow: further INITs to this address get no listener (a
    // restarting peer's INIT reaches the association itself).
    usrsctp_set_upcall(listen_, nullptr, nullptr);
    usrsctp_close(listen_);
    listen_ = nullptr;
    established();
}

void sctp_association::note_assoc_info(const std::byte* info, std::size_t len, std::uint16_t out,
                                       std::uint16_t in) {
    for (std::size_t i = 0; i < len; ++i) {
        const auto v = static_cast<unsigned char>(info[i]);
        if (v == SCTP_ASSOC_SUPPORTS_PR) summary_.peer_supports_pr = true;
        if (v == SCTP_ASSOC_SUPPORTS_RE_CONFIG) summary_.peer_supports_reconfig = true;
    }
    if (out && in) {
        summary_.outbound_streams = out;
        summary_.inbound_streams = in;
        counts_known_ = true;
    }
}

void sctp_association::established() {
    if (state_ != state::connecting) return;
    state_ = state::established;
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    if (!counts_known_) {
        sctp_status st{};
        socklen_t len = sizeof st;
        if (usrsctp_getsockopt(sock_, IPPROTO_SCTP, SCTP_STATUS, &st, &len) == 0) {
            summary_.outbound_streams = st.sstat_outstrms;
            summary_.inbound_streams = st.sstat_instrms;
        }
    }
    log(sdk::log_level::debug, "association up with " + peer() + ": " +
                                   std::to_string(summary_.outbound_streams) + " out / " +
                                   std::to_string(summary_.inbound_streams) + " in streams");
    // Streams forked while connecting beyond what the peer granted cannot be used.
    std::vector<std::shared_ptr<sctp_stream>> beyond, ready;
    for (auto it = slots_.begin(); it != slots_.end();) {
        auto s = it->second.flow.lock();
        if (s && !s->done_ && it->first >= summary_.outbound_streams) {
            beyond.push_back(s);
            it = slots_.erase(it);
            continue;
        }
        if (s && !s->done_ && s->started_ && !s->ready_) ready.push_back(s);
        ++it;
    }
    for (auto& s : beyond)
        finish_stream(s, {std::make_error_code(std::errc::no_stream_resources),
                          "sctp: stream " + std::to_string(s->id_) + " is beyond the " +
                              std::to_string(summary_.outbound_streams) +
                              " outbound streams negotiated with " + peer()});
    for (auto& s : ready) {
        if (state_ != state::established) return;
        if (!s->done_ && !s->ready_) mark_ready(s);
    }
    if (state_ != state::established) return;
    write_pending();
    if (state_ != state::established) return;
    maybe_shutdown();
}

void sctp_association::mark_ready(const std::shared_ptr<sctp_stream>& s) {
    s->ready_ = true;
    if (auto ev = s->events_.lock()) ev->on_ready();
    // What arrived before it was started, in order (more may arrive while this runs).
    while (!s->inbox_.empty() && !s->done_ && !s->aborted_) {
        auto m = std::move(s->inbox_.front());
        s->inbox_.pop_front();
        s->inbox_bytes_ -= std::min(s->inbox_bytes_, m.size());
        if (auto ev = s->events_.lock()) ev->on_received(std::move(m), {});
    }
}

void sctp_association::restarted() {
    // The peer restarted (a new INIT from the same address and port, RFC 9260 5.2.4): usrsctp
    // reinitialised the association in place. Every stream of the old one ends; the new one's
    // stream 0 goes first to whoever took incoming streams.
    ++summary_.restarts;
    log(sdk::log_level::info, "the peer " + peer() + " restarted the association");
    auto target = first_open_events();
    std::vector<std::shared_ptr<sctp_stream>> old;
    for (auto& [id, sl] : slots_)
        if (auto s = sl.flow.lock()) old.push_back(s);
    slots_.clear();
    partial_.clear();
    peer_closed_ = false;
    auto fresh = std::make_shared<sctp_stream>(shared_from_this(), 0, true);
    auto& sl = slots_[0];
    sl.flow = fresh;
    sl.raw = fresh.get();
    if (target)
        target->on_incoming_flow(fresh);
    else
        fresh->abort();
    fresh.reset();
    const sdk::flow_error e{std::make_error_code(std::errc::connection_reset),
                            "sctp: the peer " + peer() +
                                " restarted the association (a new INIT from the same address "
                                "and port, RFC 9260 5.2.4); messages in flight may be lost"};
    for (auto& s : old)
        finish_stream(s, e);
}

void sctp_association::read_all() {
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
        const std::uint16_t sid = info_type == SCTP_RECVV_RCVINFO ? rcv.rcv_sid : 0;
        auto& part = partial_[sid];
        if (part.size() + static_cast<std::size_t>(n) > settings_.max_message_size)
            return fail({std::make_error_code(std::errc::message_size),
                         "sctp: the peer sent a message larger than max-message-size (" +
                             std::to_string(settings_.max_message_size) +
                             " bytes); association aborted"});
        part.insert(part.end(), b, b + n);
        if (flags & MSG_EOR) {
            auto m = std::move(part);
            partial_.erase(sid);
            if (info_type == SCTP_RECVV_RCVINFO && (rcv.rcv_flags & SCTP_UNORDERED))
                ++summary_.unordered_received;
            deliver(sid, std::move(m));
        }
    }
}

void sctp_association::deliver(std::uint16_t sid, sdk::byte_buffer m) {
    auto it = slots_.find(sid);
    if (it == slots_.end()) return incoming(sid, std::move(m));
    auto s = it->second.flow.lock();
    if (!s || s->done_ || s->aborted_) return drop(sid, m.size());
    if (s->ready_) {
        if (auto ev = s->events_.lock()) ev->on_received(std::move(m), {});
        return;
    }
    if (!s->started_ && s->inbox_bytes_ + m.size() > settings_.max_message_size)
        return fail({std::make_error_code(std::errc::message_size),
                     "sctp: more than max-message-size (" +
                         std::to_string(settings_.max_message_size) + " bytes) arrived on stream " +
                         std::to_string(sid) +
                         " before its flow was started; association aborted"});
    s->inbox_bytes_ += m.size();
    s->inbox_.push_back(std::move(m));
}

void sctp_association::incoming(std::uint16_t sid, sdk::byte_buffer m) {
    if (shutdown_requested_ || peer_closed_ || state_ != state::established)
        return drop(sid, m.size());
    if (sid >= summary_.outbound_streams && !logged_beyond_) {
        logged_beyond_ = true;
        log(sdk::log_level::warning, "the peer " + peer() + " opened stream " +
                                         std::to_string(sid) + ", beyond our " +
                                         std::to_string(summary_.outbound_streams) +
                                         " outbound streams: replies on it will fail");
    }
    auto target = first_open_events();
    auto& sl = slots_[sid];
    if (!target) {
        // Nobody to hand it to: refused like an incoming flow that is aborted.
        log(sdk::log_level::info, "stream " + std::to_string(sid) + " opened by " + peer() +
                                      " refused: no open stream flow to hand it to");
        drop(sid, m.size());
        return request_reset(sid);
    }
    auto s = std::make_shared<sctp_stream>(shared_from_this(), sid, true);
    sl.flow = s;
    sl.raw = s.get();
    s->inbox_bytes_ = m.size();
    s->inbox_.push_back(std::move(m));
    ++summary_.incoming_streams;
    log(sdk::log_level::debug, "stream " + std::to_string(sid) + " opened by " + peer());
    target->on_incoming_flow(s);
    // If nobody kept it, its destructor refuses it (reset, later messages dropped).
}

void sctp_association::drop(std::uint16_t sid, std::size_t) {
    ++summary_.messages_dropped;
    auto it = slots_.find(sid);
    if (it != slots_.end()) {
        if (it->second.drop_logged) return;
        it->second.drop_logged = true;
    }
    log(sdk::log_level::info, "messages from " + peer() + " on stream " + std::to_string(sid) +
                                  " are dropped: its flow was refused, aborted or closed");
}

std::shared_ptr<sdk::flow_events> sctp_association::first_open_events() {
    // Lowest id first: stream 0 when it is open.
    for (auto& [id, sl] : slots_) {
        auto s = sl.flow.lock();
        if (!s || !s->open()) continue;
        if (auto ev = s->events_.lock()) return ev;
    }
    return nullptr;
}

bool sctp_association::other_open_streams(const sctp_stream* except) {
    for (auto& [id, sl] : slots_) {
        if (sl.raw == except) continue;
        auto s = sl.flow.lock();
        if (s && s->open()) return true;
    }
    return false;
}

void sctp_association::request_reset(std::uint16_t sid) {
    auto it = slots_.find(sid);
    if (it == slots_.end() || it->second.out_reset_requested) return;
    it->second.out_reset_requested = true;
    if (state_ != state::established || !sock_) return; // the association's end ends it
    alignas(sctp_reset_streams) std::byte buf[sizeof(sctp_reset_streams) + sizeof(std::uint16_t)]{};
    auto* r = reinterpret_cast<sctp_reset_streams*>(buf);
    r->srs_flags = SCTP_STREAM_RESET_OUTGOING;
    r->srs_number_streams = 1;
    std::memcpy(buf + offsetof(sctp_reset_streams, srs_stream_list), &sid, sizeof sid);
    // usrsctp sends the request once what is queued on the stream has left (RESET_PENDING).
    if (usrsctp_setsockopt(sock_, IPPROTO_SCTP, SCTP_RESET_STREAMS, buf, sizeof buf) != 0) {
        const int e = errno;
        retire(sid, e == EOPNOTSUPP
                        ? "the peer does not support stream reset (RFC 6525)"
                        : std::string("usrsctp refused the reset: ") + std::strerror(e));
        return;
    }
    log(sdk::log_level::debug,
        "stream " + std::to_string(sid) + " reset (outgoing) towards " + peer());
    flush();
}

void sctp_association::retire(std::uint16_t sid, const std::string& why) {
    auto it = slots_.find(sid);
    if (it == slots_.end()) return;
    auto& sl = it->second;
    sl.retired = true;
    sl.out_reset_done = true;
    log(sdk::log_level::warning,
        "stream " + std::to_string(sid) + " to " + peer() + " cannot be reset (" + why +
            "): it is closed on this side and left unused; the peer is not told, and what it "
            "still sends on it is dropped");
    check_slot(sid);
}

void sctp_association::check_slot(std::uint16_t sid) {
    auto it = slots_.find(sid);
    if (it == slots_.end()) return;
    auto& sl = it->second;
    if (!sl.out_reset_done || !(sl.in_reset || sl.retired)) return;
    auto s = sl.flow.lock();
    if (sl.retired) {
        sl.flow.reset();
        sl.raw = nullptr;
    } else {
        slots_.erase(it); // reset both ways: the id is free again
        log(sdk::log_level::debug,
            "stream " + std::to_string(sid) + " with " + peer() + " closed both ways");
    }
    if (s && !s->done_) finish_stream(s, {});
}

void sctp_association::on_stream_reset(std::uint16_t flags,
                                       const std::vector<std::uint16_t>& list) {
    std::vector<std::uint16_t> ids = list;
    if (ids.empty()) // all streams
        for (auto& [id, sl] : slots_)
            ids.push_back(id);
    if (flags & (SCTP_STREAM_RESET_DENIED | SCTP_STREAM_RESET_FAILED)) {
        if (flags & SCTP_STREAM_RESET_OUTGOING_SSN)
            for (auto id : ids)
                retire(id, flags & SCTP_STREAM_RESET_DENIED ? "the peer denied the reset"
                                                            : "the reset failed");
        return;
    }
    if (flags & SCTP_STREAM_RESET_OUTGOING_SSN) {
        for (auto id : ids) {
            auto it = slots_.find(id);
            if (it == slots_.end()) continue;
            it->second.out_reset_done = true;
            check_slot(id);
        }
        return;
    }
    if (flags & SCTP_STREAM_RESET_INCOMING_SSN) {
        for (auto id : ids) {
            // The peer closed its side of the stream: to the flow, the peer closing. What was
            // not yet handed to usrsctp can no longer go; our side is reset in answer.
            ++summary_.streams_reset_in;
            partial_.erase(id);
            auto& sl = slots_[id];
            sl.in_reset = true;
            if (auto s = sl.flow.lock(); s && !s->done_ && !s->peer_closed_) {
                s->peer_closed_ = true;
                log(sdk::log_level::debug,
                    "the peer " + peer() + " closed stream " + std::to_string(id));
                const sdk::flow_error gone{std::make_error_code(std::errc::broken_pipe),
                                           "sctp: the peer closed stream " + std::to_string(id) +
                                               " before this was sent"};
                for (auto& p : std::exchange(s->pending_, {}))
                    s->queue_error(p.id, gone);
                s->queued_bytes_ = 0;
            }
            request_reset(id);
            check_slot(id);
        }
    }
}

void sctp_association::on_send_failed(const sdk::byte_buffer& note) {
    if (note.size() < sizeof(sctp_send_failed_event)) return;
    sctp_send_failed_event f{};
    std::memcpy(&f, note.data(), sizeof f);
    const auto ctx = f.ssfe_info.snd_context;
    auto it = ctx ? held_.find(ctx) : held_.end();
    if (it == held_.end()) {
        // A message without a deadline (the association is failing), or another fragment of a
        // message already reported.
        if (!ctx && f.ssfe_error == 0) ++summary_.messages_abandoned;
        return;
    }
    auto h = it->second;
    held_.erase(it);
    auto s = h.stream.lock();
    if (!s || s->done_) return;
    s->queued_bytes_ -= std::min(s->queued_bytes_, h.bytes);
    if (f.ssfe_error == 0 && std::chrono::steady_clock::now() + ttl_slack >= h.deadline) {
        ++summary_.messages_abandoned;
        log(sdk::log_level::debug, "a message to " + peer() + " on stream " +
                                       std::to_string(s->id_) +
                                       " was abandoned (its PR-SCTP lifetime ran out)");
        return s->queue_expired(h.id);
    }
    s->queue_error(h.id, {std::make_error_code(std::errc::connection_reset),
                          "sctp: usrsctp dropped this message before the peer had it (error " +
                              std::to_string(f.ssfe_error) + ")"});
}

void sctp_association::handle_notification(const sdk::byte_buffer& note) {
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
        const bool got_abort =
            info_len >= 4 && static_cast<unsigned char>(info[0]) == abort_chunk_type;
        switch (sac.sac_state) {
        case SCTP_COMM_UP:
            note_assoc_info(info, info_len, sac.sac_outbound_streams, sac.sac_inbound_streams);
            return established();
        case SCTP_RESTART:
            note_assoc_info(info, info_len, sac.sac_outbound_streams, sac.sac_inbound_streams);
            return restarted();
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
        return on_send_failed(note);
    case SCTP_SENDER_DRY_EVENT:
        dry_seen_ = true; // released after this read pass (release_held_if_acked)
        return;
    case SCTP_STREAM_RESET_EVENT: {
        if (note.size() < sizeof(sctp_stream_reset_event)) return;
        sctp_stream_reset_event r{};
        std::memcpy(&r, note.data(), sizeof r);
        const std::size_t len = std::min<std::size_t>(r.strreset_length, note.size());
        std::vector<std::uint16_t> ids((len - sizeof r) / sizeof(std::uint16_t));
        if (!ids.empty())
            std::memcpy(ids.data(), note.data() + sizeof r, ids.size() * sizeof(std::uint16_t));
        return on_stream_reset(r.strreset_flags, ids);
    }
    case SCTP_PARTIAL_DELIVERY_EVENT: {
        if (note.size() < sizeof(sctp_pdapi_event)) return;
        sctp_pdapi_event p{};
        std::memcpy(&p, note.data(), sizeof p);
        // The rest of a partly delivered message will not come: forget the part.
        if (p.pdapi_indication == SCTP_PARTIAL_DELIVERY_ABORTED)
            partial_.erase(static_cast<std::uint16_t>(p.pdapi_stream));
        return;
    }
    case SCTP_REMOTE_ERROR:
        return log(sdk::log_level::warning, "the peer " + peer() + " reported an error");
    default:
        return;
    }
}

// ---- sending ----------------------------------------------------------------------------------

void sctp_association::write_pending() {
    const auto now = std::chrono::steady_clock::now();
    while (state_ == state::established && sock_) {
        // The most urgent front message of any stream; among equals, the oldest. Each stream
        // keeps its own order.
        std::shared_ptr<sctp_stream> best;
        slot* best_slot = nullptr;
        for (auto& [id, sl] : slots_) {
            auto s = sl.flow.lock();
            if (!s || s->done_ || s->pending_.empty()) continue;
            const auto& f = s->pending_.front();
            if (best) {
                const auto& b = best->pending_.front();
                if (std::pair(f.niceness, f.seq) >= std::pair(b.niceness, b.seq)) continue;
            }
            best = std::move(s);
            best_slot = &sl;
        }
        if (!best) break;
        auto& p = best->pending_.front();
        if (p.deadline && *p.deadline <= now) {
            // Its lifetime ended while it waited: it never reaches the wire.
            best->queued_bytes_ -= std::min(best->queued_bytes_, p.data.size());
            best->queue_expired(p.id);
            best->pending_.pop_front();
            continue;
        }
        if (best->id_ >= summary_.outbound_streams) {
            best->queued_bytes_ -= std::min(best->queued_bytes_, p.data.size());
            best->queue_error(p.id,
                              {std::make_error_code(std::errc::no_stream_resources),
                               "sctp: stream " + std::to_string(best->id_) + " is beyond the " +
                                   std::to_string(summary_.outbound_streams) +
                                   " outbound streams negotiated"});
            best->pending_.pop_front();
            continue;
        }
        const auto value = ss_value_for(p.niceness);
        if (best_slot->ss_value != value) {
            sctp_stream_value sv{};
            sv.assoc_id = SCTP_FUTURE_ASSOC;
            sv.stream_id = best->id_;
            sv.stream_value = value;
            if (set_option(sock_, IPPROTO_SCTP, SCTP_SS_VALUE, sv))
                best_slot->ss_value = value;
            else
                log(sdk::log_level::debug, "SCTP_SS_VALUE on stream " + std::to_string(best->id_) +
                                               " failed: " + std::strerror(errno));
        }
        sctp_sendv_spa spa{};
        spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
        spa.sendv_sndinfo.snd_sid = best->id_;
        if (p.unordered) spa.sendv_sndinfo.snd_flags |= SCTP_UNORDERED;
        // Nagle is off for every message; `immediate` also asks the peer to SACK at once.
        if (p.immediate) spa.sendv_sndinfo.snd_flags |= SCTP_SACK_IMMEDIATELY;
        std::uint32_t context = 0;
        if (p.deadline) {
            // PR-SCTP timed reliability: the sender abandons it on the wire after this long,
            // and reports it with this context (SCTP_SEND_FAILED_EVENT).
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(*p.deadline - now).count();
            spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
            spa.sendv_prinfo.pr_policy = SCTP_PR_SCTP_TTL;
            spa.sendv_prinfo.pr_value = static_cast<std::uint32_t>(std::max<long long>(left, 1));
            do
                context = next_context_++;
            while (context == 0 || held_.count(context));
            spa.sendv_sndinfo.snd_context = context;
        }
        const ssize_t n = usrsctp_sendv(sock_, p.data.data(), p.data.size(), nullptr, 0, &spa,
                                        sizeof spa, SCTP_SENDV_SPA, 0);
        if (n < 0) {
            const int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK) break; // the upcall says when there is room
            const auto err = errno_error(e, "send failed");
            return in_upper_call_ ? fail_later(err) : fail(err);
        }
        if (context) {
            held_[context] = {best, best.get(), p.id, *p.deadline, p.data.size()};
            dry_seen_ = false;
            arm_held_timer();
        } else {
            best->queued_bytes_ -= std::min(best->queued_bytes_, p.data.size());
            best->queue_sent(p.id);
        }
        best->pending_.pop_front();
    }
    flush();
    // Streams closed while others live: reset once their queue is in usrsctp.
    std::vector<std::uint16_t> to_reset;
    for (auto& [id, sl] : slots_) {
        auto s = sl.flow.lock();
        if (s && s->close_by_reset_ && s->pending_.empty() && !sl.out_reset_requested)
            to_reset.push_back(id);
    }
    for (auto id : to_reset)
        if (state_ == state::established) request_reset(id);
    maybe_shutdown();
}

void sctp_association::release_held_if_acked() {
    if (held_.empty() || !sock_) return;
    // Held messages are released as sent once nothing is left in usrsctp: everything handed
    // over was acknowledged (or abandoned, which SCTP_SEND_FAILED_EVENT reported first, since
    // the socket was read to its end before this).
    sndbuf_use use{};
    socklen_t len = sizeof use;
    if (usrsctp_getsockopt(sock_, IPPROTO_SCTP, get_sndbuf_use, &use, &len) == 0) {
        if (use.total_sndbuf != 0) return;
    } else if (!dry_seen_) {
        return;
    }
    dry_seen_ = false;
    for (auto& [ctx, h] : std::exchange(held_, {})) {
        auto s = h.stream.lock();
        if (!s || s->done_) continue;
        s->queued_bytes_ -= std::min(s->queued_bytes_, h.bytes);
        s->queue_sent(h.id);
    }
}

void sctp_association::arm_held_timer() {
    if (held_.empty() || state_ == state::done) {
        if (held_timer_armed_) {
            boost::system::error_code ignored;
            held_timer_.cancel(ignored);
            held_timer_armed_ = false;
        }
        return;
    }
    // usrsctp 0.9.5 abandons a PR-SCTP message from a timer (at the retransmission after its
    // lifetime) and queues SCTP_SEND_FAILED_EVENT without waking the socket (its timeout
    // handler calls the upcall only when the association fails). So, once a held message's
    // lifetime has passed, the socket is read every 50 ms until it is acknowledged or reported
    // abandoned. Acknowledgements arrive with packets, which do wake the socket.
    const auto now = std::chrono::steady_clock::now();
    auto when = std::chrono::steady_clock::time_point::max();
    for (const auto& [ctx, h] : held_)
        when = std::min(when, h.deadline);
    when = std::max(when, now + held_poll);
    if (held_timer_armed_ && held_timer_.expiry() <= when) return;
    held_timer_armed_ = true;
    held_timer_.expires_at(when);
    held_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        auto self = weak.lock();
        if (!self) return;
        self->held_timer_armed_ = false;
        if (self->state_ == state::done) return;
        self->on_socket_event();
        self->arm_held_timer();
    });
}

void sctp_association::maybe_shutdown() {
    if (!shutdown_requested_ || state_ != state::established || !sock_) return;
    for (auto& [id, sl] : slots_)
        if (auto s = sl.flow.lock(); s && !s->done_ && !s->pending_.empty()) return;
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

void sctp_association::peer_shut_down() {
    if (peer_closed_) return;
    peer_closed_ = true;
    log(sdk::log_level::debug, "the peer " + peer() + " shut the association down");
    // usrsctp answers SHUTDOWN-ACK once what we queued is delivered; SHUTDOWN_COMP follows.
    // What the upper side had not handed to usrsctp yet can no longer go.
    const sdk::flow_error gone{std::make_error_code(std::errc::broken_pipe),
                               "sctp: the peer shut the association down before this was sent"};
    for (auto& [id, sl] : slots_) {
        auto s = sl.flow.lock();
        if (!s || s->done_) continue;
        s->peer_closed_ = true;
        for (auto& p : std::exchange(s->pending_, {}))
            s->queue_error(p.id, gone);
        s->queued_bytes_ = 0;
    }
}

void sctp_association::shutdown_complete() {
    log(sdk::log_level::debug, "SHUTDOWN complete with " + peer());
    close_sockets(false);
    flush(); // the SHUTDOWN COMPLETE
    if (!lower_closed_) lower_->close();
    end_all({});
}

void sctp_association::on_handshake_timer() {
    if (state_ != state::connecting) return;
    fail({std::make_error_code(std::errc::timed_out),
          "sctp: no association with " + peer() + " after " +
              std::to_string(settings_.handshake_timeout.count()) + " ms" +
              (client() ? " (no answer to INIT)" : " (the peer never completed one)")});
}

void sctp_association::close_sockets(bool send_abort) {
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

void sctp_association::fail(const sdk::flow_error& e) {
    if (state_ == state::done) return;
    if (in_upper_call_) return fail_later(e);
    close_sockets(true);
    flush(); // the ABORT, if the association was still up
    if (!lower_closed_) lower_->close();
    end_all(e);
}

void sctp_association::fail_later(sdk::flow_error e) {
    try {
        boost::asio::post(executor_,
                          [self = shared_from_this(), e = std::move(e)] { self->fail(e); });
    } catch (...) {
    }
}

void sctp_association::end_all(const sdk::flow_error& e) {
    if (ended_) return;
    ended_ = true;
    state_ = state::done;
    boost::system::error_code ignored;
    handshake_timer_.cancel(ignored);
    held_timer_.cancel(ignored);
    close_sockets(!!e);
    if (e) log(sdk::log_level::debug, e.reason);
    std::vector<std::shared_ptr<sctp_stream>> all;
    for (auto& [id, sl] : slots_)
        if (auto s = sl.flow.lock()) all.push_back(s);
    slots_.clear();
    for (auto& s : all)
        finish_stream(s, e);
    held_.clear();
}

void sctp_association::finish_stream(const std::shared_ptr<sctp_stream>& s,
                                     const sdk::flow_error& e) {
    if (s->done_) return;
    std::vector<std::uint64_t> held;
    for (auto it = held_.begin(); it != held_.end();) {
        if (it->second.raw == s.get()) {
            held.push_back(it->second.id);
            it = held_.erase(it);
        } else {
            ++it;
        }
    }
    s->finish(e, std::move(held), in_upper_call_);
}

} // namespace post::plugins::sctp
