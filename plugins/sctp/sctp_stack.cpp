#include "sctp_stack.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <usrsctp.h>

#include <atomic>
#include <chrono>

namespace post::plugins::sctp {

namespace {

/// The one stack of this process (usrsctp has one), and whether usrsctp is initialised: when
/// usrsctp_finish refuses (sockets still exist inside it) the stack stays initialised and the
/// next instance reuses it instead of initialising it twice.
std::mutex global_mutex;
std::weak_ptr<sctp_stack> global_stack;
/// For the C callbacks, which run inside usrsctp (so they take no lock that a caller of usrsctp
/// may hold). Whoever calls usrsctp holds a reference to the stack, so it outlives the call.
std::atomic<sctp_stack*> current{nullptr};
bool usrsctp_ready = false;

constexpr auto tick_interval = std::chrono::milliseconds(10);

} // namespace

struct sctp_stack::timer_state {
    explicit timer_state(const boost::asio::any_io_executor& ex)
        : timer(ex) {}
    boost::asio::steady_timer timer;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool stopped = false;
};

sctp_stack::sctp_stack() = default;

std::shared_ptr<sctp_stack> sctp_stack::acquire(sdk::flow_error& err) {
    std::lock_guard lock(global_mutex);
    if (auto s = global_stack.lock()) return s;
    try {
        auto s = std::make_shared<sctp_stack>();
        if (!usrsctp_ready) {
            // Port 0: no UDP encapsulation socket of usrsctp's own; packets leave through
            // conn_output into our datagram layer. No debug output.
            usrsctp_init_nothreads(0, &sctp_stack::conn_output, nullptr);
            // Our peers over UDP check checksums; so do we (CRC32c on every packet both ways).
            usrsctp_sysctl_set_sctp_no_csum_on_loopback(0);
            // A packet for no association gets no ABORT back: a stray datagram to the port must
            // not make us answer (as echo_server and tsctp do).
            usrsctp_sysctl_set_sctp_blackhole(2);
            usrsctp_ready = true;
        }
        current = s.get();
        global_stack = s;
        return s;
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

sctp_stack::~sctp_stack() {
    {
        std::lock_guard lock(mutex_);
        if (timer_) timer_->stopped = true;
    }
    std::lock_guard lock(global_mutex);
    if (current == this) current = nullptr;
    // usrsctp_finish refuses while sockets exist (it returns -1): then usrsctp stays ready.
    if (usrsctp_ready && usrsctp_finish() == 0) usrsctp_ready = false;
}

void sctp_stack::add(void* key, boost::asio::any_io_executor ex,
                     std::weak_ptr<sctp_endpoint> target) {
    bool start = false;
    {
        std::lock_guard lock(mutex_);
        auto& e = entries_[key];
        e.executor = ex;
        e.target = std::move(target);
        start = !timer_;
    }
    usrsctp_register_address(key);
    if (start) start_timer(ex);
}

void sctp_stack::remove(void* key) {
    usrsctp_deregister_address(key);
    std::lock_guard lock(mutex_);
    entries_.erase(key);
    if (entries_.empty() && timer_) {
        timer_->stopped = true;
        boost::system::error_code ignored;
        timer_->timer.cancel(ignored);
        timer_.reset();
    }
}

std::size_t sctp_stack::flows() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::vector<sdk::byte_buffer> sctp_stack::take_packets(void* key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return {};
    return std::exchange(it->second.outbox, {});
}

int sctp_stack::conn_output(void* key, void* buffer, std::size_t length, std::uint8_t,
                            std::uint8_t) {
    // Inside usrsctp, with its locks held: queue only. Never call usrsctp from here.
    sctp_stack* s = current.load();
    if (!s) return 0;
    try {
        s->queue_packet(key, buffer, length);
    } catch (...) {
        // Out of memory: the packet is lost, as on a congested link; SCTP retransmits.
    }
    return 0;
}

void sctp_stack::upcall(struct socket*, void* key, int) {
    sctp_stack* s = current.load();
    if (!s) return;
    try {
        s->note_event(key);
    } catch (...) {
    }
}

void sctp_stack::queue_packet(void* key, const void* data, std::size_t length) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return; // the flow is gone: as if the link dropped it
    const auto* p = static_cast<const std::byte*>(data);
    it->second.outbox.emplace_back(p, p + length);
    post_delivery(key, it->second);
}

void sctp_stack::note_event(void* key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    it->second.event_pending = true;
    post_delivery(key, it->second);
}

void sctp_stack::post_delivery(void* key, entry& e) {
    if (e.delivery_posted) return;
    e.delivery_posted = true;
    boost::asio::post(e.executor, [weak = weak_from_this(), key] {
        if (auto self = weak.lock()) self->deliver(key);
    });
}

void sctp_stack::deliver(void* key) {
    std::vector<sdk::byte_buffer> packets;
    bool event = false;
    std::shared_ptr<sctp_endpoint> target;
    {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(key);
        if (it == entries_.end()) return;
        auto& e = it->second;
        e.delivery_posted = false;
        packets = std::exchange(e.outbox, {});
        event = std::exchange(e.event_pending, false);
        target = e.target.lock();
    }
    if (!target) return;
    if (!packets.empty()) target->on_packets(std::move(packets));
    if (event) target->on_socket_event();
}

void sctp_stack::start_timer(const boost::asio::any_io_executor& ex) {
    std::shared_ptr<timer_state> t;
    {
        std::lock_guard lock(mutex_);
        if (timer_ || entries_.empty()) return;
        timer_ = std::make_shared<timer_state>(ex);
        t = timer_;
    }
    t->timer.expires_after(tick_interval);
    t->timer.async_wait([weak = weak_from_this(), t](const boost::system::error_code& ec) {
        if (ec || t->stopped) return;
        if (auto self = weak.lock()) self->tick();
    });
}

void sctp_stack::tick() {
    std::shared_ptr<timer_state> t;
    {
        std::lock_guard lock(mutex_);
        t = timer_;
    }
    if (!t || t->stopped) return;
    const auto now = std::chrono::steady_clock::now();
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - t->last);
    if (elapsed.count() > 0) {
        // Only whole milliseconds are handed over; the rest counts towards the next tick.
        t->last += elapsed;
        usrsctp_handle_timers(static_cast<std::uint32_t>(elapsed.count()));
    }
    t->timer.expires_after(tick_interval);
    t->timer.async_wait([weak = weak_from_this(), t](const boost::system::error_code& ec) {
        if (ec || t->stopped) return;
        if (auto self = weak.lock()) self->tick();
    });
}

} // namespace post::plugins::sctp
