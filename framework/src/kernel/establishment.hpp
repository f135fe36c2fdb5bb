// Establishment for one initiate: resolve the remote, pair the candidate stacks with its
// addresses, and race them (staggered by the policy's attempt delay). The first transient to
// become ready wins and every other attempt is aborted.
#pragma once

#include "carrier_impl.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace post::detail {

class establishment final : public std::enable_shared_from_this<establishment> {
public:
    establishment(std::weak_ptr<carrier_impl> owner, std::shared_ptr<context_state> ctx, remote r,
                  std::vector<candidate_stack> stacks);

    void start();
    void cancel();
    void on_ready(transient_impl& t);
    void on_closed(transient_impl& t, const sdk::flow_error& e);

private:
    struct candidate {
        std::shared_ptr<stack_instance> stack;
        std::size_t stack_index = 0;
        boost::asio::ip::address address;
    };
    struct attempt_record {
        std::string label;
        std::string outcome; ///< Empty while running.
    };

    void resolved(std::vector<boost::asio::ip::address> addresses);
    void launch_next();
    void arm_attempt_timer();
    void fail(error e);
    void check_exhausted();
    void trace(trace_event::kind k, std::vector<std::string> stack, std::string detail);
    std::shared_ptr<stack_instance> stack_for(std::size_t index, error& err);

    std::weak_ptr<carrier_impl> owner_;
    std::shared_ptr<context_state> ctx_;
    remote remote_;
    std::vector<candidate_stack> stacks_;
    std::vector<std::shared_ptr<stack_instance>> instances_;
    std::vector<candidate> queue_;
    std::size_t next_ = 0;
    std::vector<std::shared_ptr<transient_impl>> running_;
    std::vector<attempt_record> attempts_;
    boost::asio::ip::tcp::resolver resolver_;
    boost::asio::steady_timer attempt_timer_;
    boost::asio::steady_timer deadline_;
    bool done_ = false;
};

} // namespace post::detail
