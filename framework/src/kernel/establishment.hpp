// Establishment for one initiate, the paper's four phases: gather the locals the policy allows,
// resolve the remote (AAAA and A in parallel, RFC 8305 §3), pair locals × addresses × candidate
// stacks into ordered groups, and race them (RFC 8305 §5: one group per attempt delay, a stack
// delay before a lower-ranked stack, at most N in flight). The first transient to become ready
// wins; every other attempt is aborted. What won and what failed is remembered in the
// association and orders the next race to the same remote.
#pragma once

#include "carrier_impl.hpp"
#include "resolver.hpp"

#include <post/interfaces.hpp>

#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post::detail {

class establishment final : public std::enable_shared_from_this<establishment> {
public:
    establishment(std::weak_ptr<carrier_impl> owner, std::shared_ptr<context_state> ctx, remote r,
                  std::shared_ptr<prepared_policy> prepared, post::local bind = {});

    void start();
    void cancel();
    void on_ready(transient_impl& t);
    void on_closed(transient_impl& t, const sdk::flow_error& e);

private:
    struct candidate {
        std::size_t stack_index = 0;
        boost::asio::ip::address address;
        std::optional<local_candidate> local; ///< Bind here; none: the kernel's routing picks.
        int tier = 0;  ///< Stacks of equal rank share a tier; lower tiers race first.
        int group = 0; ///< Candidates of one group start together.
    };
    struct attempt_record {
        std::string label;
        std::string outcome; ///< Empty while running.
    };

    bool gather(const merged_policy& policy);
    void add_addresses(std::vector<boost::asio::ip::address> addresses);
    std::vector<std::optional<local_candidate>> locals_for(const boost::asio::ip::address& a);
    void apply_history();
    void start_learned_winner();
    void launch_next();
    void launch(const candidate& c);
    void arm_attempt_timer();
    void fail(error e);
    void check_exhausted();
    void trace(trace_event::kind k, std::vector<std::string> stack, std::string detail);
    std::shared_ptr<stack_instance> stack_for(std::size_t index, error& err);

    std::weak_ptr<carrier_impl> owner_;
    std::shared_ptr<context_state> ctx_;
    remote remote_;
    std::shared_ptr<prepared_policy> prepared_; ///< Shared with other carriers of the policy.
    const std::vector<candidate_stack>& stacks_;
    std::vector<int> tiers_; ///< Per stack.
    post::local bind_;       ///< What the application pinned (address, port, interface).
    std::shared_ptr<const std::vector<interface_info>> interfaces_; ///< The context's snapshot.
    std::optional<gathered_locals> locals_; ///< Set when candidates bind to chosen locals.
    std::vector<candidate> queue_;
    std::size_t next_ = 0;
    int next_group_ = 0;
    std::chrono::steady_clock::time_point last_launch_{};
    std::vector<std::shared_ptr<transient_impl>> running_;
    std::vector<attempt_record> attempts_;
    std::shared_ptr<happy_resolver> resolver_;
    std::string resolve_error_;
    bool resolving_ = false;
    int answers_ = 0;          ///< Family answers so far (2: resolving is over).
    bool timer_armed_ = false; ///< The attempt timer will start the next group.
    boost::asio::steady_timer attempt_timer_;
    boost::asio::steady_timer deadline_;
    bool done_ = false;
};

} // namespace post::detail
