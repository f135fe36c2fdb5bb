// RFC 8305 §3 name resolution with glibc's getaddrinfo_a: one request per family, so the AAAA
// and A lookups run at the same time on glibc's own threads (Asio's resolver has a single
// background thread and would do them one after the other).
//
// Lifetime: glibc calls back on a thread of its own, at a time we do not control, and a request
// that is already running cannot be cancelled. So each request lives in a `lookup` owned by a
// shared_ptr that the notification itself holds (`self`), and the notification never touches the
// resolver: under the lookup's mutex it posts the answer to the executor unless the resolver has
// detached it (cancel() or the destructor), and the posted handler reaches the resolver through a
// weak_ptr. Detaching takes the same mutex, so once cancel() or ~happy_resolver() has returned
// nothing more is posted; and while the resolver lives its executor's context does too (the
// resolver owns a timer on it), so posting under the mutex never reaches a dead io_context.
#include "resolver.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

namespace post::detail {

namespace asio = boost::asio;

struct happy_resolver::lookup {
    // Written by launch() before getaddrinfo_a, read-only afterwards.
    std::string host;
    bool ipv6 = false;
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point started;
    std::weak_ptr<happy_resolver> owner;
    addrinfo hints{};
    gaicb request{};
    sigevent notify{};
    /// The notification's own reference: taken by notified(), or dropped by stop() when
    /// gai_cancel removed the request before it ran (then no notification comes).
    std::shared_ptr<lookup> self;

    std::mutex mutex;
    asio::any_io_executor executor; ///< Guarded by mutex.
    bool detached = false;          ///< Guarded by mutex: set, nothing is posted any more.

    lookup() = default;
    lookup(const lookup&) = delete;
    lookup& operator=(const lookup&) = delete;
    ~lookup() {
        if (request.ar_result) ::freeaddrinfo(request.ar_result);
    }

    family_answer result() const;
    void stop();
    static void notified(sigval value);
};

family_answer happy_resolver::lookup::result() const {
    family_answer a;
    a.ipv6 = ipv6;
    a.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    const int rc = ::gai_error(const_cast<gaicb*>(&request));
    if (rc != 0) {
        a.error = ::gai_strerror(rc);
        return a;
    }
    for (const addrinfo* ai = request.ar_result; ai; ai = ai->ai_next) {
        asio::ip::address addr;
        if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
            sockaddr_in6 sa;
            std::memcpy(&sa, ai->ai_addr, sizeof sa);
            asio::ip::address_v6::bytes_type bytes;
            std::memcpy(bytes.data(), &sa.sin6_addr, bytes.size());
            addr = asio::ip::address_v6(bytes, sa.sin6_scope_id);
        } else if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
            sockaddr_in sa;
            std::memcpy(&sa, ai->ai_addr, sizeof sa);
            asio::ip::address_v4::bytes_type bytes;
            std::memcpy(bytes.data(), &sa.sin_addr, bytes.size());
            addr = asio::ip::address_v4(bytes);
        } else {
            continue;
        }
        // DNS may carry the same record twice, and /etc/hosts may list an address twice.
        if (std::find(a.addresses.begin(), a.addresses.end(), addr) == a.addresses.end())
            a.addresses.push_back(addr);
    }
    if (a.addresses.empty()) a.error = "no addresses";
    return a;
}

void happy_resolver::lookup::notified(sigval value) {
    // A C callback on a glibc thread: nothing may escape it.
    try {
        auto* raw = static_cast<lookup*>(value.sival_ptr);
        const std::shared_ptr<lookup> keep = std::move(raw->self); // freed when this returns
        family_answer a = keep->result();
        std::lock_guard<std::mutex> guard(keep->mutex);
        if (keep->detached) return;
        asio::post(keep->executor, [owner = keep->owner, generation = keep->generation,
                                    a = std::move(a)]() mutable {
            if (auto r = owner.lock()) r->answered(generation, std::move(a));
        });
    } catch (...) {
        // Out of memory: the answer is lost; the caller's connection timeout still applies.
    }
}

void happy_resolver::lookup::stop() {
    const int rc = ::gai_cancel(&request);
    {
        std::lock_guard<std::mutex> guard(mutex);
        detached = true;
        executor = {};
    }
    // Removed before it started: glibc sends no notification, so its reference goes here.
    // Otherwise (running or done) the notification comes, or came, and drops it itself.
    if (rc == EAI_CANCELED) self.reset();
}

happy_resolver::happy_resolver(asio::any_io_executor executor)
    : executor_(std::move(executor))
    , delay_timer_(executor_) {}

happy_resolver::~happy_resolver() {
    stop_lookups();
}

void happy_resolver::start(std::string host, std::chrono::milliseconds resolution_delay,
                           addresses_handler on_addresses, failure_handler on_failure,
                           answer_handler on_answer) {
    if (weak_from_this().expired())
        throw std::logic_error("happy_resolver::start: the resolver must be owned by a "
                               "std::shared_ptr (answers reach it through a weak_ptr)");
    if (!on_addresses || !on_failure)
        throw std::invalid_argument("happy_resolver::start: the addresses and failure handlers "
                                    "are required");
    if (host.empty()) throw std::invalid_argument("happy_resolver::start: empty host name");

    // A second start() replaces the first: its lookups are discarded.
    stop_lookups();
    delay_timer_.cancel();
    ++generation_;
    cancelled_ = false;
    v6_done_ = v4_done_ = failed_ = false;
    held_v4_.reset();
    given_.clear();
    v6_error_.clear();
    v4_error_.clear();
    resolution_delay_ = std::max(resolution_delay, std::chrono::milliseconds(0));
    on_addresses_ = std::move(on_addresses);
    on_failure_ = std::move(on_failure);
    on_answer_ = std::move(on_answer);
    work_ = asio::prefer(executor_, asio::execution::outstanding_work.tracked);
    started_ = std::chrono::steady_clock::now();
    // AAAA first: with both in flight the order hardly matters, but RFC 8305 §3 asks for it.
    launch(true, host);
    launch(false, host);
}

void happy_resolver::launch(bool ipv6, const std::string& host) {
    auto l = std::make_shared<lookup>();
    l->host = host;
    l->ipv6 = ipv6;
    l->generation = generation_;
    l->started = started_;
    l->owner = weak_from_this();
    l->executor = executor_;
    // No AI_ADDRCONFIG: it would drop a family whose only addresses are loopback ones, and
    // establishment decides per path which family it can use anyway.
    l->hints.ai_family = ipv6 ? AF_INET6 : AF_INET;
    l->hints.ai_socktype = SOCK_STREAM; // one entry per address, not one per socket type
    l->request.ar_name = l->host.c_str();
    l->request.ar_service = nullptr;
    l->request.ar_request = &l->hints;
    l->notify.sigev_notify = SIGEV_THREAD;
    l->notify.sigev_notify_function = &lookup::notified;
    l->notify.sigev_value.sival_ptr = l.get();
    l->self = l;
    (ipv6 ? v6_ : v4_) = l;

    gaicb* list[] = {&l->request};
    const int rc = ::getaddrinfo_a(GAI_NOWAIT, list, 1, &l->notify);
    if (rc == 0) return;
    // Not queued, so no notification: answer the failure from here, still asynchronously.
    l->self.reset();
    family_answer a;
    a.ipv6 = ipv6;
    a.error = std::string("cannot start the lookup: ") + ::gai_strerror(rc);
    asio::post(executor_,
               [owner = weak_from_this(), generation = generation_, a = std::move(a)]() mutable {
                   if (auto r = owner.lock()) r->answered(generation, std::move(a));
               });
}

void happy_resolver::answered(std::uint64_t generation, family_answer a) {
    if (cancelled_ || generation != generation_) return;
    (a.ipv6 ? v6_done_ : v4_done_) = true;
    (a.ipv6 ? v6_error_ : v4_error_) = a.error;
    if (v6_done_ && v4_done_) work_ = {}; // nothing left outside Asio; the timer is Asio's
    if (on_answer_) {
        auto handler = on_answer_; // a copy: the handler may cancel(), which clears the member
        handler(a);
        if (cancelled_ || generation != generation_) return;
    }

    if (a.ipv6) {
        if (!a.addresses.empty()) {
            // The AAAA answer goes first; an A answer held back for it comes along behind.
            std::vector<asio::ip::address> addresses = a.addresses;
            if (held_v4_) {
                addresses.insert(addresses.end(), held_v4_->addresses.begin(),
                                 held_v4_->addresses.end());
                held_v4_.reset();
                delay_timer_.cancel();
            }
            hand_over(std::move(addresses), a);
        } else {
            release_held(); // no AAAA to wait for
        }
    } else if (!a.addresses.empty()) {
        if (v6_done_ || resolution_delay_.count() == 0) {
            hand_over(a.addresses, a);
        } else {
            // The delay counts from the A answer's arrival (its elapsed time), not from when the
            // executor got round to it.
            delay_timer_.expires_at(started_ + a.elapsed + resolution_delay_);
            held_v4_ = std::move(a);
            delay_timer_.async_wait(
                [owner = weak_from_this(), generation](const boost::system::error_code& ec) {
                    if (ec) return;
                    auto r = owner.lock();
                    if (r && !r->cancelled_ && r->generation_ == generation) r->release_held();
                });
        }
    }
    if (cancelled_ || generation != generation_) return;

    if (v6_done_ && v4_done_ && given_.empty() && !held_v4_ && !failed_) {
        failed_ = true;
        auto handler = on_failure_;
        handler("AAAA: " + v6_error_ + "; A: " + v4_error_);
    }
}

void happy_resolver::release_held() {
    if (!held_v4_) return;
    family_answer a = std::move(*held_v4_);
    held_v4_.reset();
    delay_timer_.cancel();
    hand_over(a.addresses, a);
}

void happy_resolver::hand_over(std::vector<asio::ip::address> addresses,
                               const family_answer& answer) {
    std::vector<asio::ip::address> fresh;
    for (auto& addr : addresses)
        if (std::find(given_.begin(), given_.end(), addr) == given_.end() &&
            std::find(fresh.begin(), fresh.end(), addr) == fresh.end())
            fresh.push_back(std::move(addr));
    if (fresh.empty()) return;
    given_.insert(given_.end(), fresh.begin(), fresh.end());
    auto handler = on_addresses_;
    handler(std::move(fresh), answer);
}

void happy_resolver::cancel() {
    cancelled_ = true;
    stop_lookups();
    delay_timer_.cancel();
    held_v4_.reset();
    // Handlers often hold their owner, which holds this resolver: drop them to break the cycle.
    // A handler running right now is a copy (see answered()), so this does not destroy it.
    on_addresses_ = nullptr;
    on_failure_ = nullptr;
    on_answer_ = nullptr;
}

void happy_resolver::stop_lookups() {
    for (auto* l : {&v6_, &v4_}) {
        if (*l) (*l)->stop();
        l->reset();
    }
    work_ = {};
}

} // namespace post::detail
