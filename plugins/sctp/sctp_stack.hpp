// The process-wide usrsctp instance. usrsctp keeps one global SCTP stack per process; this class
// initialises it in its no-threads mode (usrsctp_init_nothreads) while any layer or flow holds a
// reference, and shuts it down after the last one goes.
//
// Nothing here runs on a usrsctp thread (there are none in this mode): usrsctp calls back only
// from inside our own calls into it (connect, sendv, conninput, handle_timers, close...). Those
// callbacks (conn_output for packets, the socket upcall for readiness) must not call back into
// usrsctp, so they only queue: a packet goes to its flow's outbox and readiness sets a flag, and
// one task posted on that flow's executor hands them over. A flow that has just called usrsctp
// itself empties its outbox at once (flush), so its packets leave in order and without delay.
//
// Every flow is one AF_CONN "address": a key (the flow's own pointer) registered with usrsctp
// and with this registry, which maps it to the flow's executor and to a weak reference.
//
// The timer: while at least one flow is registered, a steady_timer on that flow's executor calls
// usrsctp_handle_timers every 10 ms with the time that really passed (retransmissions,
// delayed SACKs, heartbeats, shutdown guards). It stops when the last flow deregisters.
#pragma once

#include <utility>

#include <boost/asio/any_io_executor.hpp>

#include <post/sdk.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

struct socket; // usrsctp's socket, declared at global scope as usrsctp.h does

namespace post::plugins::sctp {

/// What a flow offers the registry; called on the flow's executor, outside usrsctp.
class sctp_endpoint {
public:
    virtual ~sctp_endpoint() = default;
    /// usrsctp wrote these packets (whole SCTP packets: common header and chunks).
    virtual void on_packets(std::vector<sdk::byte_buffer> packets) noexcept = 0;
    /// A socket of this flow became readable or writable (or changed state).
    virtual void on_socket_event() noexcept = 0;
};

class sctp_stack : public std::enable_shared_from_this<sctp_stack> {
public:
    /// The process's stack, initialised on first use. Null and `err` filled when usrsctp fails.
    static std::shared_ptr<sctp_stack> acquire(sdk::flow_error& err);
    ~sctp_stack();
    sctp_stack(const sctp_stack&) = delete;
    sctp_stack& operator=(const sctp_stack&) = delete;

    /// Register `key` with usrsctp and the registry; starts the timer on `ex` if it is idle.
    void add(void* key, boost::asio::any_io_executor ex, std::weak_ptr<sctp_endpoint> target);
    /// Forget `key` (usrsctp_deregister_address); its queued packets are dropped.
    void remove(void* key);
    /// Take what usrsctp queued for `key` so far (called right after our own usrsctp calls).
    std::vector<sdk::byte_buffer> take_packets(void* key);

    /// The upcall every socket of a flow gets, with the flow's key as argument.
    static void upcall(struct socket* so, void* key, int flags);

    /// Flows registered now (for tests).
    std::size_t flows() const;

    sctp_stack(); // use acquire()

private:
    struct entry {
        boost::asio::any_io_executor executor;
        std::weak_ptr<sctp_endpoint> target;
        std::vector<sdk::byte_buffer> outbox;
        bool delivery_posted = false;
        bool event_pending = false;
    };

    static int conn_output(void* key, void* buffer, std::size_t length, std::uint8_t tos,
                           std::uint8_t set_df);
    void queue_packet(void* key, const void* data, std::size_t length);
    void note_event(void* key);
    /// Under mutex_: post the delivery task for `key` unless one is pending.
    void post_delivery(void* key, entry& e);
    void deliver(void* key);

    void start_timer(const boost::asio::any_io_executor& ex);
    void tick();

    mutable std::mutex mutex_;
    std::map<void*, entry> entries_;
    struct timer_state;
    std::shared_ptr<timer_state> timer_; ///< Set while flows are registered.
};

} // namespace post::plugins::sctp
