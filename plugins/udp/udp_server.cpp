#include "udp_server.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include <cerrno>

#include <sys/socket.h>

namespace post::plugins::udp {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {
// Datagrams held for a flow the kernel has not started yet; more are dropped, as the network
// would drop them on a full socket buffer.
constexpr std::size_t max_inbox = 256;
// A flood of datagrams from new remotes beyond max-peers would flood the log as well.
constexpr std::uint64_t drop_log_interval = 1000;
} // namespace

// ---- udp_server_socket -------------------------------------------------------------------

udp_server_socket::udp_server_socket(const asio::any_io_executor& ex, const udp_settings& settings)
    : executor_(ex)
    , socket_(ex)
    , settings_(settings)
    , gso_{settings_.gso, false}
    , receive_buffer_(receive_buffer_size) {}

bool udp_server_socket::bind(const sdk::endpoint& local, sdk::flow_error& err) {
    const udp::endpoint ep = to_asio(local);
    const std::string where = "udp listen on " + local.to_string() + " failed";
    boost::system::error_code ec;
    socket_.open(ep.protocol(), ec);
    if (ec) return err = make_error(ec, where + ": socket"), false;
    grow_receive_buffer(socket_);
    // An IPv6 any-address socket takes only IPv6, so a v4 socket can share the port.
    if (ep.address().is_v6() && ep.address().is_unspecified())
        socket_.set_option(asio::ip::v6_only(true), ec);
    if (!ec && settings_.reuse_address) socket_.set_option(udp::socket::reuse_address(true), ec);
    if (ec) return err = make_error(ec, where + ": setsockopt"), false;
    socket_.bind(ep, ec);
    if (ec) return err = make_error(ec, where + ": bind"), false;
    local_ = to_sdk(socket_.local_endpoint(ec));
    max_message_size_ = settings_.limit_for(ep.address());
    return true;
}

void udp_server_socket::set_acceptor_events(std::weak_ptr<sdk::acceptor_events> events) {
    acceptor_events_ = std::move(events);
}

void udp_server_socket::start_receiving() {
    if (receiving_ || !socket_.is_open()) return;
    receiving_ = true;
    receive();
}

void udp_server_socket::receive() {
    socket_.async_receive_from(
        asio::buffer(receive_buffer_), sender_,
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
            if (ec == asio::error::operation_aborted || !self->socket_.is_open()) return;
            try {
                if (ec)
                    // ICMP errors can surface here for an earlier send_to; they concern one
                    // remote, not the socket, so keep serving the others.
                    self->settings_.write_log(sdk::log_level::debug, "udp receive on " +
                                                                         self->local_.to_string() +
                                                                         ": " + ec.message());
                else
                    self->dispatch(n);
                // Then what else is already queued, in this handler (see receive_burst), once a
                // flow of this socket has sent a train (QUIC): SCTP associations ended
                // unreliably when bursts were read for them (test_sctp_carriers).
                for (std::size_t i = 0;
                     self->bursts_ && i < receive_burst && self->socket_.is_open(); ++i) {
                    socklen_t len = static_cast<socklen_t>(self->sender_.capacity());
                    const ssize_t r = ::recvfrom(
                        self->socket_.native_handle(), self->receive_buffer_.data(),
                        self->receive_buffer_.size(), MSG_DONTWAIT, self->sender_.data(), &len);
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0) break; // EAGAIN, or an ICMP error: as above, not the socket's
                    self->sender_.resize(len);
                    self->dispatch(static_cast<std::size_t>(r));
                }
            } catch (...) {
                self->settings_.write_log(sdk::log_level::warning,
                                          "udp: dropped a datagram (out of memory)");
            }
            if (self->socket_.is_open()) self->receive();
        });
}

void udp_server_socket::dispatch(std::size_t n) {
    sdk::byte_buffer data(receive_buffer_.begin(), receive_buffer_.begin() + n);
    if (auto it = flows_.find(sender_); it != flows_.end()) {
        if (auto f = it->second.lock()) return f->deliver(std::move(data));
        flows_.erase(it);
    }
    auto events = acceptor_events_.lock();
    if (!listening_ || !events) return; // no one takes new remotes any more
    if (flows_.size() >= settings_.max_peers)
        std::erase_if(flows_, [](const auto& kv) { return kv.second.expired(); });
    if (flows_.size() >= settings_.max_peers) {
        if (dropped_++ % drop_log_interval == 0)
            settings_.write_log(sdk::log_level::warning,
                                "udp " + local_.to_string() +
                                    ": dropped a datagram from new remote " +
                                    to_sdk(sender_).to_string() + ": max-peers (" +
                                    std::to_string(settings_.max_peers) + ") reached (" +
                                    std::to_string(dropped_) + " dropped so far)");
        return;
    }
    auto f = std::make_shared<udp_server_flow>(shared_from_this(), sender_);
    flows_[sender_] = f;
    f->deliver(std::move(data)); // held until the kernel starts the flow
    events->on_accepted(std::move(f));
}

void udp_server_socket::send_to(const std::shared_ptr<udp_server_flow>& flow, sdk::byte_buffer data,
                                std::uint64_t id, std::size_t segment_size, bool wants_bursts) {
    if (wants_bursts) bursts_ = true;
    queue_.push_back({flow->remote(), std::move(data), id, flow, segment_size});
    write();
}

void udp_server_socket::write() {
    while (!writing_ && !queue_.empty()) {
        auto& front = queue_.front();
        auto f = front.flow.lock();
        if (!f || !socket_.is_open()) { // the flow went away: its datagrams go with it
            queue_.pop_front();
            continue;
        }
        writing_ = true;
        if (front.segment_size != 0) return send_train_now();
        socket_.async_send_to(asio::buffer(front.data), front.to,
                              [self = shared_from_this()](const boost::system::error_code& ec,
                                                          std::size_t) { self->write_done(ec); });
    }
}

void udp_server_socket::send_train_now() {
    auto& front = queue_.front();
    train t{front.data,      front.segment_size,
            front.to.data(), static_cast<socklen_t>(front.to.size()),
            front.offset,    max_message_size_};
    const auto ec = send_train(socket_.native_handle(), t, gso_, settings_);
    front.offset = t.offset;
    if (ec == asio::error::would_block) {
        socket_.async_wait(udp::socket::wait_write,
                           [self = shared_from_this()](const boost::system::error_code& e) {
                               if (e || !self->socket_.is_open() || self->queue_.empty())
                                   return self->write_done(e ? e : asio::error::operation_aborted);
                               self->send_train_now();
                           });
        return;
    }
    // Reported from a later turn, as async_send_to would: never inside the flow's send().
    asio::post(executor_, [self = shared_from_this(), ec] { self->write_done(ec); });
}

void udp_server_socket::write_done(const boost::system::error_code& ec) {
    writing_ = false;
    if (queue_.empty()) return maybe_close();
    auto done = std::move(queue_.front());
    queue_.pop_front();
    try {
        if (auto fl = done.flow.lock()) fl->send_done(done.id, done.data.size(), ec);
        write();
    } catch (...) {
    }
    maybe_close();
}

void udp_server_socket::forget(const udp::endpoint& remote, const udp_server_flow* flow) {
    if (auto it = flows_.find(remote); it != flows_.end()) {
        auto f = it->second.lock();
        if (!f || f.get() == flow) flows_.erase(it);
    }
    maybe_close();
}

void udp_server_socket::stop_listening() {
    listening_ = false;
    acceptor_events_.reset();
    maybe_close();
}

void udp_server_socket::maybe_close() {
    if (listening_ || writing_ || !queue_.empty()) return;
    std::erase_if(flows_, [](const auto& kv) { return kv.second.expired(); });
    if (!flows_.empty()) return;
    boost::system::error_code ec;
    socket_.close(ec); // ends the receive loop, which releases the last reference
}

// ---- udp_server_flow ---------------------------------------------------------------------

udp_server_flow::udp_server_flow(std::shared_ptr<udp_server_socket> socket, udp::endpoint remote)
    : socket_(std::move(socket))
    , remote_(remote) {}

udp_server_flow::~udp_server_flow() {
    try {
        if (!finished_ && !aborted_) socket_->forget(remote_, this);
    } catch (...) {
    }
}

template <class F> void udp_server_flow::defer(F f) {
    asio::post(socket_->executor(), [self = shared_from_this(), f = std::move(f)]() mutable {
        try {
            f();
        } catch (...) {
            self->finish(
                {std::make_error_code(std::errc::state_not_recoverable), "udp: internal error"});
        }
    });
}

void udp_server_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    events_ = std::move(events);
}

void udp_server_flow::start() noexcept {
    if (state_ != state::idle || close_requested_) return;
    try {
        state_ = state::open;
        defer([this] {
            if (state_ != state::open) return;
            if (auto ev = events_.lock()) ev->on_ready();
            while (state_ == state::open && !inbox_.empty()) {
                auto d = std::move(inbox_.front());
                inbox_.pop_front();
                deliver(std::move(d));
            }
        });
    } catch (...) {
        state_ = state::done;
    }
}

void udp_server_flow::deliver(sdk::byte_buffer data) {
    if (state_ == state::done) return;
    if (state_ == state::idle) {
        if (inbox_.size() < max_inbox) inbox_.push_back(std::move(data));
        return;
    }
    sdk::receive_meta meta;
    meta.from = to_sdk(remote_);
    if (auto ev = events_.lock()) ev->on_received(std::move(data), meta);
}

void udp_server_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    try {
        if (state_ == state::done) return;
        const std::size_t limit = socket_->max_message_size();
        // A train (segment_size) is one datagram when it fits in one segment.
        const std::size_t segment = meta.segment_size < data.size() ? meta.segment_size : 0;
        const std::size_t datagram = segment ? segment : data.size();
        if (close_requested_ || datagram > limit) {
            sdk::flow_error e = close_requested_
                                    ? sdk::flow_error{std::make_error_code(std::errc::broken_pipe),
                                                      "udp: send after close()"}
                                    : oversize_error(datagram, limit);
            defer([this, id = meta.id, e = std::move(e)] {
                if (state_ == state::done) return;
                if (auto ev = events_.lock()) ev->on_send_error(id, e);
            });
            return;
        }
        queued_bytes_ += data.size();
        ++pending_sends_;
        socket_->send_to(shared_from_this(), std::move(data), meta.id, segment,
                         meta.segment_size != 0);
    } catch (...) {
        // Allocation failure: end the flow (reported later, not from inside this call).
        try {
            defer([this] {
                finish({std::make_error_code(std::errc::not_enough_memory), "udp: out of memory"});
            });
        } catch (...) {
        }
    }
}

void udp_server_flow::send_done(std::uint64_t id, std::size_t size,
                                const boost::system::error_code& ec) {
    queued_bytes_ -= size;
    --pending_sends_;
    if (state_ == state::done) return;
    if (auto ev = events_.lock()) {
        if (ec)
            ev->on_send_error(
                id, make_error(ec, "udp send to " + to_sdk(remote_).to_string() + " failed"));
        else
            ev->on_sent(id);
    }
    if (close_requested_ && pending_sends_ == 0) finish({});
}

void udp_server_flow::close() noexcept {
    if (state_ == state::done || close_requested_) return;
    close_requested_ = true;
    try {
        defer([this] {
            if (pending_sends_ == 0) finish({});
        });
    } catch (...) {
        abort();
    }
}

void udp_server_flow::abort() noexcept {
    if (aborted_) return;
    aborted_ = true;
    state_ = state::done;
    events_.reset();
    inbox_.clear();
    try {
        socket_->forget(remote_, this);
    } catch (...) {
    }
}

void udp_server_flow::finish(const sdk::flow_error& e) {
    if (finished_ || aborted_) return;
    finished_ = true;
    state_ = state::done;
    inbox_.clear();
    auto ev = events_.lock();
    events_.reset();
    socket_->forget(remote_, this);
    if (ev) ev->on_closed(e);
}

sdk::flow_info udp_server_flow::info() const noexcept {
    sdk::flow_info i;
    i.kind = sdk::edge::datagram;
    i.local = socket_->local();
    i.remote = to_sdk(remote_);
    i.max_message_size = socket_->max_message_size();
    i.capabilities = sdk::cap_segmented_send;
    return i;
}

// ---- udp_acceptor ------------------------------------------------------------------------

udp_acceptor::udp_acceptor(std::shared_ptr<udp_server_socket> socket)
    : socket_(std::move(socket)) {}

udp_acceptor::~udp_acceptor() {
    try {
        if (!closed_) socket_->stop_listening();
    } catch (...) {
    }
}

void udp_acceptor::set_events(std::weak_ptr<sdk::acceptor_events> events) noexcept {
    events_ = events;
    socket_->set_acceptor_events(std::move(events));
}

void udp_acceptor::start() noexcept {
    if (closed_) return;
    try {
        socket_->start_receiving();
    } catch (...) {
        close();
    }
}

void udp_acceptor::close() noexcept {
    if (closed_) return;
    closed_ = true;
    try {
        socket_->stop_listening();
        if (auto ev = events_.lock()) asio::post(socket_->executor(), [ev] { ev->on_closed({}); });
    } catch (...) {
    }
    events_.reset();
}

sdk::endpoint udp_acceptor::local_endpoint() const noexcept {
    return socket_->local();
}

} // namespace post::plugins::udp
