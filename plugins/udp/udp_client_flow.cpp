#include "udp_client_flow.hpp"

#include "udp_segments.hpp"

#include <boost/asio/post.hpp>

#include <cerrno>

#include <sys/socket.h>

namespace post::plugins::udp {

namespace asio = boost::asio;
using asio::ip::udp;

udp_client_flow::udp_client_flow(const asio::any_io_executor& ex, udp_settings settings,
                                 sdk::open_params p)
    : socket_(ex)
    , settings_(settings)
    , params_(std::move(p))
    , max_message_size_(settings_.limit_for(params_.remote.address))
    , gso_{settings_.gso, false}
    , receive_buffer_(receive_buffer_size) {}

template <class F> void udp_client_flow::defer(F f) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), f = std::move(f)]() mutable {
        try {
            f();
        } catch (...) {
            self->finish(
                {std::make_error_code(std::errc::state_not_recoverable), "udp: internal error"});
        }
    });
}

void udp_client_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void udp_client_flow::start() noexcept {
    if (state_ != state::idle || close_requested_) return;
    try {
        state_ = state::open;
        defer([this] { open_socket(); });
    } catch (...) {
        state_ = state::done;
    }
}

void udp_client_flow::open_socket() {
    if (state_ != state::open) return;
    const udp::endpoint remote = to_asio(params_.remote);
    boost::system::error_code ec;
    socket_.open(remote.protocol(), ec);
    if (ec)
        return finish(make_error(ec, "udp socket for " + params_.remote.to_string() + " failed"));
    grow_receive_buffer(socket_);
    if (params_.local) {
        if (settings_.reuse_address) socket_.set_option(udp::socket::reuse_address(true), ec);
        socket_.bind(to_asio(*params_.local), ec);
        if (ec)
            return finish(make_error(ec, "udp bind to " + params_.local->to_string() + " failed"));
    }
    // Connecting a UDP socket only records the default peer: it does not block, and it makes
    // the kernel report ICMP errors for that peer (ECONNREFUSED) on this socket.
    socket_.connect(remote, ec);
    if (ec)
        return finish(make_error(ec, "udp connect to " + params_.remote.to_string() + " failed"));
    local_ = to_sdk(socket_.local_endpoint(ec));
    if (auto ev = events_.lock()) ev->on_ready();
    if (state_ != state::open) return;
    receive();
    write();
}

void udp_client_flow::receive() {
    socket_.async_receive(
        asio::buffer(receive_buffer_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
            try {
                if (ec) {
                    self->received(ec, {});
                    return;
                }
                if (!self->bursts_) {
                    // One datagram per receive. Layers that do not batch (usrsctp's sctp) ended
                    // associations unreliably when bursts were read ahead for them (cli_sctp's
                    // restart, test_sctp_carriers' listener stop: lost `closed` events, cause
                    // not yet found), so only a flow that has sent trains reads bursts.
                    if (self->received({}, sdk::byte_buffer(self->receive_buffer_.begin(),
                                                            self->receive_buffer_.begin() +
                                                                static_cast<std::ptrdiff_t>(n))))
                        self->receive();
                    return;
                }
                // Then what else is already queued (up to receive_burst datagrams). Each one is
                // handed up in its own executor turn, posted in arrival order before anything
                // the layer above posts while handling them: a QUIC connection's single write
                // pass then runs after the whole burst, while layers that expect one datagram
                // per turn (usrsctp's output, posted per input) see exactly that.
                std::vector<sdk::byte_buffer> burst;
                burst.emplace_back(self->receive_buffer_.begin(),
                                   self->receive_buffer_.begin() + static_cast<std::ptrdiff_t>(n));
                boost::system::error_code error;
                while (burst.size() <= receive_burst) {
                    const ssize_t r =
                        ::recv(self->socket_.native_handle(), self->receive_buffer_.data(),
                               self->receive_buffer_.size(), MSG_DONTWAIT);
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    if (r < 0) {
                        error = boost::system::error_code(errno, boost::system::system_category());
                        break;
                    }
                    burst.emplace_back(self->receive_buffer_.begin(),
                                       self->receive_buffer_.begin() + r);
                }
                const std::size_t count = burst.size();
                for (std::size_t i = 0; i < count; ++i) {
                    const bool last = i + 1 == count;
                    asio::post(self->socket_.get_executor(), [self, d = std::move(burst[i]), last,
                                                              error]() mutable {
                        try {
                            if (!self->received({}, std::move(d))) return;
                            if (!last) return;
                            if (error && !self->received(error, {})) return;
                            self->receive();
                        } catch (...) {
                            self->finish({std::make_error_code(std::errc::state_not_recoverable),
                                          "udp: internal error while receiving"});
                        }
                    });
                }
            } catch (...) {
                self->finish({std::make_error_code(std::errc::state_not_recoverable),
                              "udp: internal error while receiving"});
            }
        });
}

bool udp_client_flow::received(const boost::system::error_code& ec, sdk::byte_buffer data) {
    if (state_ != state::open) return false;
    if (ec == asio::error::connection_refused) {
        finish(make_error(ec, "udp peer " + params_.remote.to_string() + " is unreachable"));
        return false;
    }
    if (ec) {
        finish(make_error(ec, "udp receive from " + params_.remote.to_string() + " failed"));
        return false;
    }
    sdk::receive_meta meta;
    meta.from = params_.remote;
    if (auto ev = events_.lock()) ev->on_received(std::move(data), meta);
    return state_ == state::open;
}

void udp_client_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    try {
        if (state_ == state::done) return;
        // A train (segment_size) is one datagram when it fits in one segment.
        const std::size_t segment = meta.segment_size < data.size() ? meta.segment_size : 0;
        const std::size_t datagram = segment ? segment : data.size();
        if (close_requested_ || datagram > max_message_size_) {
            sdk::flow_error e = close_requested_
                                    ? sdk::flow_error{std::make_error_code(std::errc::broken_pipe),
                                                      "udp: send after close()"}
                                    : oversize_error(datagram, max_message_size_);
            defer([this, id = meta.id, e = std::move(e)] {
                if (state_ == state::done) return;
                if (auto ev = events_.lock()) ev->on_send_error(id, e);
            });
            return;
        }
        queued_bytes_ += data.size();
        // Any send marked as a train (even one datagram long) comes from a layer that wants
        // bursts read (QUIC); a downloading client never sends a longer one.
        if (meta.segment_size) bursts_ = true;
        queue_.push_back({std::move(data), meta.id, segment});
        write();
    } catch (...) {
        // Allocation failure: the unit is lost; end the flow (reported later, not from here).
        try {
            defer([this] {
                finish({std::make_error_code(std::errc::not_enough_memory), "udp: out of memory"});
            });
        } catch (...) {
        }
    }
}

void udp_client_flow::write() {
    // Until open_socket() has run the socket is closed; the queue waits for it.
    if (writing_ || queue_.empty() || state_ != state::open || !socket_.is_open()) return;
    writing_ = true;
    if (queue_.front().segment_size != 0) return send_train_now();
    socket_.async_send(asio::buffer(queue_.front().data),
                       [self = shared_from_this()](const boost::system::error_code& ec,
                                                   std::size_t) { self->write_done(ec); });
}

void udp_client_flow::send_train_now() {
    auto& front = queue_.front();
    train t{front.data, front.segment_size, nullptr, 0, front.offset, max_message_size_};
    const auto ec = send_train(socket_.native_handle(), t, gso_, settings_);
    front.offset = t.offset;
    if (ec == asio::error::would_block) {
        socket_.async_wait(udp::socket::wait_write,
                           [self = shared_from_this()](const boost::system::error_code& e) {
                               try {
                                   if (e || self->state_ != state::open) return self->write_done(e);
                                   self->send_train_now();
                               } catch (...) {
                                   self->finish({std::make_error_code(std::errc::not_enough_memory),
                                                 "udp: out of memory while sending"});
                               }
                           });
        return;
    }
    // Reported from a later turn, as async_send would: never inside the caller's send().
    asio::post(socket_.get_executor(), [self = shared_from_this(), ec] { self->write_done(ec); });
}

void udp_client_flow::write_done(const boost::system::error_code& ec) {
    try {
        writing_ = false;
        if (state_ != state::open) return;
        if (ec == asio::error::connection_refused)
            return finish(
                make_error(ec, "udp peer " + params_.remote.to_string() + " is unreachable"));
        auto sent = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= sent.data.size();
        write();
        if (auto ev = events_.lock()) {
            if (ec)
                ev->on_send_error(
                    sent.id,
                    make_error(ec, "udp send to " + params_.remote.to_string() + " failed"));
            else
                ev->on_sent(sent.id);
        }
        if (state_ == state::open && close_requested_ && !writing_ && queue_.empty()) finish({});
    } catch (...) {
        finish({std::make_error_code(std::errc::state_not_recoverable),
                "udp: internal error while sending"});
    }
}

void udp_client_flow::close() noexcept {
    if (state_ == state::done || close_requested_) return;
    close_requested_ = true;
    try {
        // Datagrams already queued still go out; then the flow closes.
        defer([this] {
            if (state_ == state::done) return;
            if (state_ == state::idle || (!writing_ && queue_.empty())) finish({});
        });
    } catch (...) {
        abort();
    }
}

void udp_client_flow::abort() noexcept {
    aborted_ = true;
    state_ = state::done;
    events_.reset();
    boost::system::error_code ec;
    socket_.close(ec);
    queue_.clear();
    queued_bytes_ = 0;
}

void udp_client_flow::finish(const sdk::flow_error& e) {
    if (finished_ || aborted_) return;
    finished_ = true;
    state_ = state::done;
    auto ev = events_.lock();
    events_.reset();
    boost::system::error_code ec;
    socket_.close(ec);
    std::vector<std::uint64_t> unsent;
    for (const auto& p : queue_)
        unsent.push_back(p.id);
    queue_.clear();
    queued_bytes_ = 0;
    if (ev) sdk::report_end(*ev, e, unsent, [this] { return !aborted_; });
}

sdk::flow_info udp_client_flow::info() const noexcept {
    sdk::flow_info i;
    i.kind = sdk::edge::datagram;
    i.local = local_;
    i.remote = params_.remote;
    i.max_message_size = max_message_size_;
    i.capabilities = sdk::cap_segmented_send;
    return i;
}

} // namespace post::plugins::udp
