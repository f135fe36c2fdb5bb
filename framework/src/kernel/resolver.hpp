// Resolving a name as RFC 8305 §3 asks: AAAA and A queries in parallel; an AAAA answer is used
// at once, an A answer that comes first waits up to the resolution delay for the AAAA one, and
// whatever comes later is still handed over so establishment can add it to the race.
#pragma once

#include <utility>
// <utility> before Asio (g++ 12 with Boost 1.74).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post::detail {

/// One family's answer, for traces and for the error when nothing resolved.
struct family_answer {
    bool ipv6 = false;
    std::vector<boost::asio::ip::address> addresses; ///< In the resolver's order.
    std::string error;                               ///< Empty on success with addresses.
    std::chrono::microseconds elapsed{0};            ///< From start().
};

class happy_resolver final : public std::enable_shared_from_this<happy_resolver> {
public:
    /// Addresses to race, in the order to add them. Called on the executor, once or more:
    /// every call adds to what earlier calls gave. `answer` is the family answer that
    /// released them (for the A answer held back by the resolution delay: the A answer).
    using addresses_handler = std::function<void(std::vector<boost::asio::ip::address> addresses,
                                                 const family_answer& answer)>;
    /// Both families failed or gave nothing; `why` names each family's error, e.g.
    /// "AAAA: Name or service not known; A: Name or service not known". Called at most once,
    /// and never after the addresses handler gave any address.
    using failure_handler = std::function<void(const std::string& why)>;
    /// Each family's answer as it arrives (also an empty or failed one), for traces.
    using answer_handler = std::function<void(const family_answer& answer)>;

    explicit happy_resolver(boost::asio::any_io_executor executor);
    ~happy_resolver();

    /// Look up `host` (a name, not a literal; /etc/hosts and DNS as nsswitch says). Handlers
    /// run on the executor; none runs after cancel(). The private members below are a sketch:
    /// the implementation may change them.
    void start(std::string host, std::chrono::milliseconds resolution_delay,
               addresses_handler on_addresses, failure_handler on_failure,
               answer_handler on_answer = {});
    /// Stop: no handler runs afterwards. Lookups already in getaddrinfo finish in the
    /// background and are discarded.
    void cancel();

private:
    struct lookup; // one getaddrinfo_a request and its completion (resolver.cpp)
    void launch(bool ipv6, const std::string& host);
    void answered(std::uint64_t generation, family_answer a);
    void release_held();
    void hand_over(std::vector<boost::asio::ip::address> addresses, const family_answer& answer);
    void stop_lookups();

    boost::asio::any_io_executor executor_;
    /// Tracks outstanding work while a lookup is pending: getaddrinfo_a runs outside Asio, so
    /// without it io_context::run() could return before the answers come.
    boost::asio::any_io_executor work_;
    boost::asio::steady_timer delay_timer_;
    std::chrono::steady_clock::time_point started_;
    std::chrono::milliseconds resolution_delay_{50};
    addresses_handler on_addresses_;
    failure_handler on_failure_;
    answer_handler on_answer_;
    std::shared_ptr<lookup> v6_, v4_;
    std::optional<family_answer> held_v4_;        ///< A answer waiting for the resolution delay.
    std::vector<boost::asio::ip::address> given_; ///< Handed over so far (for de-duplication).
    std::string v6_error_, v4_error_;
    std::uint64_t generation_ = 0; ///< Answers of an earlier start() are ignored.
    bool v6_done_ = false, v4_done_ = false, failed_ = false, cancelled_ = true;
};

} // namespace post::detail
