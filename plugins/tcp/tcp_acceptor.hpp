// A listening TCP socket that hands out one tcp_flow per accepted connection.
#pragma once

#include "tcp_common.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>

namespace post::plugins::tcp {

class tcp_acceptor final : public sdk::acceptor, public std::enable_shared_from_this<tcp_acceptor> {
public:
    /// Bind and listen on `local`; nullptr and `err` filled when that fails.
    static std::shared_ptr<tcp_acceptor> open(const boost::asio::any_io_executor& ex,
                                              const tcp_settings& settings,
                                              const sdk::endpoint& local, sdk::flow_error& err);

    tcp_acceptor(const boost::asio::any_io_executor& ex, const tcp_settings& settings);

    void set_events(std::weak_ptr<sdk::acceptor_events> events) noexcept override;
    void start() noexcept override;
    void close() noexcept override;
    sdk::endpoint local_endpoint() const noexcept override;

private:
    void accept();

    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    tcp_settings settings_;
    std::weak_ptr<sdk::acceptor_events> events_;
    sdk::endpoint local_;
    boost::asio::ip::tcp::endpoint peer_; ///< Filled by the accept in progress.
    bool started_ = false;
    bool closed_ = false;
};

} // namespace post::plugins::tcp
