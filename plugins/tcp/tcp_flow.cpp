#include "tcp_flow.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace post::plugins::tcp {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// How long close() waits for the peer's FIN after sending ours before it closes anyway.
constexpr std::chrono::seconds close_grace{2};
// A gathering write takes queued buffers until one of these limits is reached.
constexpr std::size_t max_gather_buffers = 64;
constexpr std::size_t max_gather_bytes = 256 * 1024;

sdk::flow_error internal_error(const char* where) {
    return {std::make_error_code(std::errc::state_not_recoverable),
            std::string("tcp: internal error in ") + where};
}

} // namespace

tcp_flow::tcp_flow(const asio::any_io_executor& ex, tcp_settings settings, sdk::open_params p)
    : socket_(ex)
    , grace_timer_(ex)
    , settings_(settings)
    , params_(std::move(p))
    , remote_(params_.remote) {}

tcp_flow::tcp_flow(tcp::socket socket, tcp_settings settings, sdk::endpoint local,
                   sdk::endpoint remote)
    : socket_(std::move(socket))
    , grace_timer_(socket_.get_executor())
    , settings_(settings)
    , local_(local)
    , remote_(remote) {
    params_.side = sdk::role::server;
    boost::system::error_code ec;
    if (local_.address.is_unspecified()) local_ = to_sdk(socket_.local_endpoint(ec));
    params_.remote = remote_;
}

template <class F> void tcp_flow::defer(F f) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), f = std::move(f)]() mutable {
        try {
            f();
        } catch (...) {
            self->finish(internal_error("a deferred step"));
        }
    });
}

void tcp_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void tcp_flow::start() noexcept {
    try {
        if (state_ != state::idle) return;
        if (params_.side == sdk::role::client) {
            state_ = state::connecting;
            // With Fast Open, what the upper side sends right after start() may still ride in
            // the SYN: connect one executor turn later. Without it, nothing is gained by
            // waiting, so the SYN leaves now (its completion, like any error, is reported
            // later: no event comes from inside start()).
            if (settings_.fast_open)
                defer([this] { connect(false); });
            else
                connect(true);
        } else {
            state_ = state::open;
            defer([this] { become_open(); });
        }
    } catch (...) {
        // Only allocation can fail here, before any attempt went out; report nothing (no event
        // may come from inside start()): the establishment deadline ends the attempt.
        boost::system::error_code ignored;
        socket_.close(ignored);
        state_ = state::done;
    }
}

void tcp_flow::connect(bool in_start) {
    if (state_ != state::connecting) return;
    auto fail = [this, in_start](sdk::flow_error e) {
        if (in_start)
            defer([this, e = std::move(e)] { finish(e); });
        else
            finish(e);
    };
    const tcp::endpoint remote = to_asio(params_.remote);
    boost::system::error_code ec;
    socket_.open(remote.protocol(), ec);
    if (ec) return fail(make_error(ec, "socket for " + params_.remote.to_string() + " failed"));
    // Before connecting, so that the window scale the handshake announces fits it.
    if (settings_.receive_buffer > 0) {
        socket_.set_option(asio::socket_base::receive_buffer_size(settings_.receive_buffer), ec);
        if (ec)
            settings_.write_log(sdk::log_level::warning, "cannot set SO_RCVBUF: " + ec.message());
        ec.clear();
    }
    if (params_.local) {
        if (settings_.reuse_address) socket_.set_option(tcp::socket::reuse_address(true), ec);
        socket_.bind(to_asio(*params_.local), ec);
        if (ec) return fail(make_error(ec, "bind to " + params_.local->to_string() + " failed"));
    }
    if (settings_.fast_open && !queue_.empty() && queue_.front().idempotent &&
        connect_with_data(remote))
        return;
    connect_pending_ = true;
    socket_.async_connect(remote, [self = shared_from_this()](const boost::system::error_code& e) {
        self->connect_pending_ = false;
        try {
            self->on_connected(e);
        } catch (...) {
            self->finish(internal_error("connect"));
        }
    });
}

bool tcp_flow::connect_with_data(const tcp::endpoint& remote) {
    // Only what was sent before the connection existed and may be replayed goes in the SYN: a
    // server may see SYN data twice (RFC 7413 §6.2).
    std::vector<iovec> iov;
    for (const auto& p : queue_) {
        if (!p.idempotent || iov.size() == max_gather_buffers) break;
        iov.push_back({const_cast<std::byte*>(p.data.data()), p.data.size()});
    }
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(remote.data());
    msg.msg_namelen = static_cast<socklen_t>(remote.size());
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return false;
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_FASTOPEN | MSG_NOSIGNAL);
    if (n < 0 && errno != EINPROGRESS) {
        // EOPNOTSUPP and friends: Fast Open is off in this kernel; connect the usual way.
        settings_.write_log(sdk::log_level::debug,
                            std::string("fast open unavailable: ") + std::strerror(errno));
        return false;
    }
    // What the SYN took leaves the queue now (reported sent once the connection is open); no
    // cookie yet means nothing went, and the data is written after the handshake as usual.
    const std::size_t taken = n > 0 ? static_cast<std::size_t>(n) : 0;
    settings_.write_log(sdk::log_level::debug,
                        taken > 0 ? "fast open: " + std::to_string(taken) + " bytes in the SYN"
                                  : std::string("fast open: no cookie yet, data follows the "
                                                "handshake"));
    take_sent_early(taken);
    socket_.async_wait(
        tcp::socket::wait_write, [self = shared_from_this()](const boost::system::error_code& e) {
            try {
                boost::system::error_code so = e;
                if (!so) {
                    asio::detail::socket_option::integer<SOL_SOCKET, SO_ERROR> sock_error;
                    self->socket_.get_option(sock_error, so);
                    if (!so && sock_error.value())
                        so = boost::system::error_code(sock_error.value(),
                                                       boost::system::system_category());
                }
                self->on_connected(so);
            } catch (...) {
                self->finish(internal_error("fast open connect"));
            }
        });
    return true;
}

void tcp_flow::take_sent_early(std::size_t n) {
    while (n > 0 && !queue_.empty()) {
        auto& front = queue_.front();
        const std::size_t k = std::min(n, front.data.size());
        n -= k;
        queued_bytes_ -= k;
        if (k == front.data.size()) {
            sent_early_.push_back(front.id);
            queue_.pop_front();
        } else {
            front.data.erase(front.data.begin(),
                             front.data.begin() + static_cast<std::ptrdiff_t>(k));
        }
    }
}

void tcp_flow::write_while_connecting() {
    std::vector<iovec> iov;
    for (const auto& p : queue_) {
        if (iov.size() == max_gather_buffers) break;
        iov.push_back({const_cast<std::byte*>(p.data.data()), p.data.size()});
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    // One try per connection, for the first send (a ClientHello, a request). A socket still in
    // SYN_SENT answers EAGAIN and the queue waits for the connect's completion, as everything
    // sent later does (gathered into the writes after it): on a real network the SYN-ACK is a
    // round trip away, and a burst of sends must not cost a system call each. Any other error
    // is the connect's own, which its completion reports.
    early_write_tried_ = true;
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) take_sent_early(static_cast<std::size_t>(n));
}

void tcp_flow::on_connected(const boost::system::error_code& ec) {
    if (state_ != state::connecting) return; // aborted meanwhile
    if (ec) return finish(make_error(ec, "connect to " + params_.remote.to_string() + " failed"));
    boost::system::error_code ignored;
    local_ = to_sdk(socket_.local_endpoint(ignored));
    state_ = state::open;
    become_open();
}

void tcp_flow::become_open() {
    if (state_ != state::open) return;
    apply_socket_options(socket_, settings_);
    if (auto ev = events_.lock()) ev->on_ready();
    if (state_ != state::open) return; // the upper side aborted from on_ready
    for (auto id : std::exchange(sent_early_, {})) {
        if (auto ev = events_.lock()) ev->on_sent(id);
        if (state_ != state::open) return;
    }
    read();
    write();
    maybe_shutdown();
}

void tcp_flow::apply_socket_options(tcp::socket& s, const tcp_settings& st) {
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(st.nodelay), ec);
    if (ec) st.write_log(sdk::log_level::warning, "cannot set TCP_NODELAY: " + ec.message());
    if (st.keep_alive.count() > 0) {
        // Idle time and probe interval both take the configured value (whole seconds, >= 1).
        const int secs = static_cast<int>(std::max<std::int64_t>(
            1, std::chrono::ceil<std::chrono::seconds>(st.keep_alive).count()));
        s.set_option(asio::socket_base::keep_alive(true), ec);
        if (!ec)
            s.set_option(asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>(secs), ec);
        if (!ec)
            s.set_option(asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>(secs),
                         ec);
        if (ec) st.write_log(sdk::log_level::warning, "cannot enable keep-alive: " + ec.message());
    }
    if (st.notsent_lowat > 0) {
        s.set_option(
            asio::detail::socket_option::integer<IPPROTO_TCP, TCP_NOTSENT_LOWAT>(st.notsent_lowat),
            ec);
        if (ec)
            st.write_log(sdk::log_level::warning, "cannot set TCP_NOTSENT_LOWAT: " + ec.message());
    }
}

void tcp_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    try {
        if (state_ == state::done) return;
        if (close_requested_ || send_shut_) {
            defer([this, id = meta.id] {
                if (state_ == state::done) return;
                if (auto ev = events_.lock())
                    ev->on_send_error(id, {std::make_error_code(std::errc::broken_pipe),
                                           "tcp: send after close()"});
            });
            return;
        }
        queued_bytes_ += data.size();
        queue_.push_back({std::move(data), meta.id, meta.idempotent});
        if (state_ == state::open)
            write();
        else if (connect_pending_ && !early_write_tried_)
            write_while_connecting();
    } catch (...) {
        defer([this, id = meta.id] {
            if (auto ev = events_.lock(); ev && state_ != state::done)
                ev->on_send_error(id, {std::make_error_code(std::errc::not_enough_memory),
                                       "tcp: cannot queue the data"});
        });
    }
}

void tcp_flow::write() {
    if (writing_ || queue_.empty() || state_ != state::open) return;
    std::vector<asio::const_buffer> buffers;
    std::size_t bytes = 0;
    for (const auto& p : queue_) {
        if (buffers.size() == max_gather_buffers || (bytes >= max_gather_bytes && !buffers.empty()))
            break;
        buffers.emplace_back(p.data.data(), p.data.size());
        bytes += p.data.size();
    }
    in_flight_ = buffers.size();
    writing_ = true;
    asio::async_write(
        socket_, buffers,
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
            try {
                self->writing_ = false;
                if (self->state_ == state::done) return;
                if (ec)
                    return self->finish(
                        make_error(ec, "write to " + self->remote_.to_string() + " failed"));
                std::vector<std::uint64_t> ids;
                ids.reserve(self->in_flight_);
                for (std::size_t i = 0; i < self->in_flight_; ++i) {
                    self->queued_bytes_ -= self->queue_.front().data.size();
                    ids.push_back(self->queue_.front().id);
                    self->queue_.pop_front();
                }
                self->in_flight_ = 0;
                self->write(); // keep the socket busy before telling the upper side
                for (auto id : ids) {
                    if (self->state_ == state::done) return;
                    if (auto ev = self->events_.lock()) ev->on_sent(id);
                }
                self->maybe_shutdown();
            } catch (...) {
                self->finish(internal_error("write"));
            }
        });
}

void tcp_flow::read() {
    socket_.async_read_some(
        asio::buffer(read_buffer_.get(), read_buffer_size),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
            try {
                if (self->state_ == state::done) return;
                if (ec == asio::error::eof) {
                    self->peer_eof_ = true;
                    if (self->send_shut_) return self->finish({});
                    // The peer finished sending: finish our side too (queued data first).
                    self->close_requested_ = true;
                    return self->maybe_shutdown();
                }
                if (ec)
                    return self->finish(
                        make_error(ec, "read from " + self->remote_.to_string() + " failed"));
                sdk::byte_buffer chunk(self->read_buffer_.get(), self->read_buffer_.get() + n);
                if (auto ev = self->events_.lock()) {
                    self->delivering_ = true;
                    ev->on_received(std::move(chunk), {});
                    self->delivering_ = false;
                }
                if (self->state_ == state::done) return;
                // Released from the handler: nothing more is read; the socket closes now, or
                // once the queued sends are written.
                if (self->release_) return self->maybe_shutdown();
                if (self->close_requested_ && !self->send_shut_)
                    return self->read_before_shutdown();
                self->read();
            } catch (...) {
                self->finish(internal_error("read"));
            }
        });
}

void tcp_flow::read_before_shutdown() {
    // The upper side closed while handling what just arrived (a TLS layer answering the
    // peer's close_notify, say). A peer that has finished usually sent its FIN right behind
    // that data: seeing it now closes the socket at once, so our FIN follows our last bytes
    // without a shutdown, a grace timer, or the peer waking twice. This read replaces the
    // one read() would have started (Asio tries a receive at once as well).
    // A few reads at most: a peer that keeps sending must not hold the executor here.
    for (int reads = 0; state_ == state::open && !send_shut_; ++reads) {
        if (reads == 8) {
            maybe_shutdown();
            break;
        }
        const ssize_t n =
            ::recv(socket_.native_handle(), read_buffer_.get(), read_buffer_size, MSG_DONTWAIT);
        if (n > 0) {
            sdk::byte_buffer chunk(read_buffer_.get(), read_buffer_.get() + n);
            if (auto ev = events_.lock()) ev->on_received(std::move(chunk), {});
            continue;
        }
        if (n == 0) {
            peer_eof_ = true;
            return maybe_shutdown(); // finishes now, or once the queued sends are written
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return finish(
                make_error(boost::system::error_code(errno, boost::system::system_category()),
                           "read from " + remote_.to_string() + " failed"));
        maybe_shutdown();
        break;
    }
    if (state_ == state::open) read();
}

void tcp_flow::close() noexcept {
    try {
        if (state_ == state::done || close_requested_) return;
        close_requested_ = true;
        if (state_ == state::idle) {
            state_ = state::connecting; // so finish() below is not skipped by a late start()
            defer([this] { finish({}); });
            return;
        }
        if (state_ == state::open) defer([this] { maybe_shutdown(); });
        // connecting: maybe_shutdown() runs once the connection is open.
    } catch (...) {
        abort();
    }
}

void tcp_flow::release() noexcept {
    try {
        if (state_ == state::done || release_) return;
        release_ = true;
        if (close_requested_) {
            // Closing already (half-closed, say): stop waiting for the peer.
            if (state_ == state::open && !delivering_) defer([this] { maybe_shutdown(); });
            return;
        }
        close_requested_ = true;
        if (state_ == state::idle) {
            state_ = state::connecting; // so finish() below is not skipped by a late start()
            defer([this] { finish({}); });
            return;
        }
        // From inside on_received, the read handler closes when the upper side returns.
        if (state_ == state::open && !delivering_) defer([this] { maybe_shutdown(); });
    } catch (...) {
        abort();
    }
}

void tcp_flow::maybe_shutdown() {
    if (state_ != state::open || !close_requested_ || writing_ || !queue_.empty()) return;
    // The peer already finished, or the upper side does not wait for it (release): closing the
    // socket sends our FIN after the data written, with no shutdown first.
    if (peer_eof_ || release_) return finish({});
    if (send_shut_) return;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    send_shut_ = true;
    if (ec) return finish(make_error(ec, "shutdown towards " + remote_.to_string() + " failed"));
    grace_timer_.expires_after(close_grace);
    grace_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
        if (e || self->state_ == state::done) return;
        self->settings_.write_log(sdk::log_level::debug,
                                  "peer " + self->remote_.to_string() +
                                      " did not finish within the close grace period; closing");
        self->finish({});
    });
}

void tcp_flow::abort() noexcept {
    const bool was_done = state_ == state::done;
    state_ = state::done;
    aborted_ = true;
    events_.reset();
    if (was_done) return;
    boost::system::error_code ec;
    if (socket_.is_open()) {
        // An abort resets the connection instead of a graceful FIN.
        socket_.set_option(asio::socket_base::linger(true, 0), ec);
        socket_.close(ec);
    }
    grace_timer_.cancel(ec);
    queue_.clear();
    queued_bytes_ = 0;
}

void tcp_flow::finish(const sdk::flow_error& e) {
    if (state_ == state::done) return;
    state_ = state::done;
    auto ev = events_.lock();
    events_.reset();
    boost::system::error_code ec;
    socket_.close(ec);
    grace_timer_.cancel(ec);
    std::vector<std::uint64_t> unsent;
    for (const auto& p : queue_)
        unsent.push_back(p.id);
    queue_.clear();
    queued_bytes_ = 0;
    if (ev) sdk::report_end(*ev, e, unsent, [this] { return !aborted_; });
}

std::chrono::microseconds tcp_flow::smoothed_rtt() const noexcept {
    // The kernel's estimate for this connection (tcpi_rtt, microseconds); zero before the
    // connection exists or when the socket refuses.
    if (!socket_.is_open()) return {};
    tcp_info ti{};
    socklen_t len = sizeof ti;
    if (::getsockopt(const_cast<boost::asio::ip::tcp::socket&>(socket_).native_handle(),
                     IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return {};
    return std::chrono::microseconds(ti.tcpi_rtt);
}

sdk::flow_info tcp_flow::info() const noexcept {
    sdk::flow_info i;
    i.kind = sdk::edge::stream;
    i.capabilities = sdk::cap_ordered | sdk::cap_release;
    // Before the connection is attempted, idempotent sends may still ride in the SYN.
    if (settings_.fast_open && params_.side == sdk::role::client &&
        (state_ == state::idle || (state_ == state::connecting && !socket_.is_open())))
        i.capabilities |= sdk::cap_early_data;
    i.local = local_;
    i.remote = remote_;
    return i;
}

} // namespace post::plugins::tcp
