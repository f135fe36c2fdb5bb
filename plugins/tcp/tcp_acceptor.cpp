#include "tcp_acceptor.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>

#include "tcp_flow.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

namespace post::plugins::tcp {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// After a resource error (EMFILE, ENOBUFS...) accepting again at once would spin.
constexpr std::chrono::milliseconds accept_retry_delay{100};
} // namespace

tcp_acceptor::tcp_acceptor(const asio::any_io_executor& ex, const tcp_settings& settings)
    : acceptor_(ex)
    , retry_timer_(ex)
    , settings_(settings) {}

std::shared_ptr<tcp_acceptor> tcp_acceptor::open(const asio::any_io_executor& ex,
                                                 const tcp_settings& settings,
                                                 const sdk::endpoint& local, sdk::flow_error& err) {
    auto self = std::make_shared<tcp_acceptor>(ex, settings);
    const tcp::endpoint ep = to_asio(local);
    const std::string where = "listen on " + local.to_string() + " failed";
    boost::system::error_code ec;
    auto& a = self->acceptor_;
    a.open(ep.protocol(), ec);
    if (ec) return err = make_error(ec, where + ": socket"), nullptr;
    // An IPv6 any-address listener takes only IPv6, so a v4 listener can share the port.
    if (ep.address().is_v6() && ep.address().is_unspecified())
        a.set_option(asio::ip::v6_only(true), ec);
    if (!ec && settings.reuse_address) a.set_option(tcp::acceptor::reuse_address(true), ec);
    // Accepted sockets inherit it (set before listen for the handshake's window scale).
    if (!ec && settings.receive_buffer > 0)
        a.set_option(asio::socket_base::receive_buffer_size(settings.receive_buffer), ec);
    if (ec) return err = make_error(ec, where + ": setsockopt"), nullptr;
    a.bind(ep, ec);
    if (ec) return err = make_error(ec, where + ": bind"), nullptr;
    a.listen(settings.backlog, ec);
    if (ec) return err = make_error(ec, where + ": listen"), nullptr;
    if (settings.fast_open) {
        // The queue of Fast Open connections not yet accepted; the kernel's sysctl must allow
        // the server side too, which is logged rather than fatal (plain connections still work).
        a.set_option(asio::detail::socket_option::integer<IPPROTO_TCP, TCP_FASTOPEN>(
                         std::min(settings.backlog, 1024)),
                     ec);
        if (ec)
            settings.write_log(sdk::log_level::warning,
                               "cannot enable TCP_FASTOPEN: " + ec.message());
        ec.clear();
    }
    self->local_ = to_sdk(a.local_endpoint(ec));
    return self;
}

void tcp_acceptor::set_events(std::weak_ptr<sdk::acceptor_events> events) noexcept {
    events_ = std::move(events);
}

void tcp_acceptor::start() noexcept {
    if (started_ || closed_) return;
    started_ = true;
    try {
        accept();
    } catch (...) {
        close();
    }
}

void tcp_acceptor::accept() {
    // accept() reports the peer's address, which saves a getpeername per connection.
    acceptor_.async_accept(peer_, [self = shared_from_this()](const boost::system::error_code& ec,
                                                              tcp::socket socket) {
        if (self->closed_) return;
        try {
            if (ec) {
                if (ec == asio::error::connection_aborted) return self->accept();
                self->settings_.write_log(sdk::log_level::warning,
                                          "accept on " + self->local_.to_string() +
                                              " failed: " + ec.message() + "; retrying");
                self->retry_timer_.expires_after(accept_retry_delay);
                self->retry_timer_.async_wait([self](const boost::system::error_code& e) {
                    if (!e && !self->closed_) self->accept();
                });
                return;
            }
            auto f = std::make_shared<tcp_flow>(std::move(socket), self->settings_, self->local_,
                                                to_sdk(self->peer_));
            self->accept(); // keep accepting while the upper side sets the new flow up
            if (auto ev = self->events_.lock())
                ev->on_accepted(std::move(f));
            else
                f->abort();
        } catch (...) {
            // Out of memory: drop this connection, keep listening.
            if (!self->closed_) self->accept();
        }
    });
}

void tcp_acceptor::close() noexcept {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    retry_timer_.cancel(ec);
    auto ev = events_.lock();
    events_.reset();
    if (!ev) return;
    try {
        asio::post(acceptor_.get_executor(), [ev] { ev->on_closed({}); });
    } catch (...) {
    }
}

sdk::endpoint tcp_acceptor::local_endpoint() const noexcept {
    return local_;
}

} // namespace post::plugins::tcp
