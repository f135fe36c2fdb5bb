// Sink and responder: a listener whose accepted carriers feed one handler. They add no protocol
// machinery, so they behave the same over datagram stacks (the UDP layer gives each remote its
// own carrier) and over connection-oriented ones.
#include <utility>

#include <post/responder.hpp>
#include <post/sink.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <deque>
#include <map>
#include <stdexcept>

namespace post::detail {

namespace asio = boost::asio;

/// What sink and responder share: the listener and the carriers it accepted, so close() can
/// end them all. Runs on the context's executor.
class kind_base {
public:
    explicit kind_base(listener l)
        : listener_(std::move(l)) {}

    void track(carrier c) {
        auto* key = c.impl().get();
        carriers_.emplace(key, c);
    }
    void untrack(const carrier& c) { carriers_.erase(c.impl().get()); }
    void close_all() {
        asio::dispatch(listener_.get_executor(), [this, keep = listener_] {
            listener_.close();
            for (auto& [k, c] : std::exchange(carriers_, {}))
                c.close();
        });
    }
    listener& get_listener() { return listener_; }

protected:
    /// Accept carriers and hand each message they receive to `handle(self, message, carrier)`;
    /// a carrier is forgotten when it ends. Holds `self` weakly: the listener may outlive it.
    template <class Self, class Handle> void accept_into(std::weak_ptr<Self> weak, Handle handle) {
        listener_.on_carrier([weak, handle](carrier c) {
            auto self = weak.lock();
            if (!self) return c.abort();
            self->track(c);
            c.on_received([weak, handle, c](message m) {
                if (auto s = weak.lock()) handle(*s, std::move(m), c);
            });
            auto forget = [weak, c] {
                if (auto s = weak.lock()) s->untrack(c);
            };
            c.on_closed(forget);
            c.on_error([forget](const error&) { forget(); });
        });
    }

    listener listener_;
    std::map<const void*, carrier> carriers_;
};

class sink_impl : public kind_base, public std::enable_shared_from_this<sink_impl> {
public:
    static constexpr std::size_t max_waiting_bytes = 64u << 20;

    using kind_base::kind_base;

    void start() {
        accept_into(weak_from_this(), [](sink_impl& self, message m, const carrier& from) {
            if (!m.sender())
                if (auto p = from.path()) m.set_sender(p->remote);
            self.deliver(std::move(m));
        });
    }

    void deliver(message m) {
        if (!receivers_.empty()) {
            auto h = std::move(receivers_.front());
            receivers_.pop_front();
            h({}, std::move(m));
        } else if (on_received) {
            on_received(std::move(m));
        } else {
            waiting_bytes_ += m.size();
            waiting_.push_back(std::move(m));
            // Bounded: the oldest go first; a peer cannot make us hold more.
            while (waiting_bytes_ > max_waiting_bytes && !waiting_.empty()) {
                waiting_bytes_ -= waiting_.front().size();
                waiting_.pop_front();
                ++dropped_;
            }
        }
    }

    void receive(unique_function<void(boost::system::error_code, message)> h) {
        asio::dispatch(listener_.get_executor(),
                       [self = shared_from_this(), h = std::move(h)]() mutable {
                           if (!self->waiting_.empty()) {
                               auto m = std::move(self->waiting_.front());
                               self->waiting_.pop_front();
                               self->waiting_bytes_ -= m.size();
                               h({}, std::move(m));
                           } else if (self->closed_) {
                               h(make_error_code(errc::closed), message{});
                           } else {
                               self->receivers_.push_back(std::move(h));
                           }
                       });
    }

    void set_handler(std::function<void(message)> h) {
        on_received = std::move(h);
        asio::post(listener_.get_executor(), [self = shared_from_this()] {
            while (self->on_received && !self->waiting_.empty()) {
                auto m = std::move(self->waiting_.front());
                self->waiting_.pop_front();
                self->waiting_bytes_ -= m.size();
                self->on_received(std::move(m));
            }
        });
    }

    void close() {
        asio::dispatch(listener_.get_executor(), [self = shared_from_this()] {
            self->closed_ = true;
            for (auto& r : std::exchange(self->receivers_, {}))
                r(make_error_code(errc::closed), message{});
        });
        close_all();
    }

    std::function<void(message)> on_received;
    std::atomic<std::uint64_t> dropped_{0};

private:
    std::deque<message> waiting_;
    std::size_t waiting_bytes_ = 0;
    std::deque<unique_function<void(boost::system::error_code, message)>> receivers_;
    bool closed_ = false;
};

class responder_impl : public kind_base, public std::enable_shared_from_this<responder_impl> {
public:
    using kind_base::kind_base;

    void start() {
        accept_into(weak_from_this(), [](responder_impl& self, message m, const carrier& from) {
            self.deliver(std::move(m), from);
        });
    }

    void deliver(message m, const carrier& from) {
        if (on_received)
            on_received(std::move(m), reply_to(from));
        else
            waiting_.emplace_back(std::move(m), from);
    }

    void set_handler(std::function<void(message, reply_to)> h) {
        on_received = std::move(h);
        asio::post(listener_.get_executor(), [self = shared_from_this()] {
            while (self->on_received && !self->waiting_.empty()) {
                auto [m, c] = std::move(self->waiting_.front());
                self->waiting_.pop_front();
                self->on_received(std::move(m), reply_to(c));
            }
        });
    }

    std::function<void(message, reply_to)> on_received;

private:
    // Until a handler is set; each accepted carrier's own inbox bound applies upstream.
    std::deque<std::pair<message, carrier>> waiting_;
};

} // namespace post::detail

namespace post {

namespace {
template <class Impl> Impl& checked(const std::shared_ptr<Impl>& impl, const char* what) {
    if (!impl) throw std::logic_error(std::string("operation on an empty post::") + what);
    return *impl;
}
} // namespace

sink open_sink(context& ctx, const local& l, const policy& p, const stack_constraint& constraint) {
    auto impl = std::make_shared<detail::sink_impl>(listen(ctx, l, p, constraint));
    impl->start();
    return sink(impl);
}

sink& sink::on_received(std::function<void(message)> h) {
    checked(impl_, "sink").set_handler(std::move(h));
    return *this;
}
sink& sink::on_error(std::function<void(const error&)> h) {
    checked(impl_, "sink").get_listener().on_error(std::move(h));
    return *this;
}
void sink::receive_with(detail::unique_function<void(boost::system::error_code, message)> h) {
    checked(impl_, "sink").receive(std::move(h));
}
std::vector<sdk::endpoint> sink::local_endpoints() const {
    return checked(impl_, "sink").get_listener().local_endpoints();
}
std::uint64_t sink::dropped() const {
    return checked(impl_, "sink").dropped_.load();
}
void sink::close() {
    checked(impl_, "sink").close();
}
boost::asio::any_io_executor sink::get_executor() const {
    return checked(impl_, "sink").get_listener().get_executor();
}

responder open_responder(context& ctx, const local& l, const policy& p,
                         const stack_constraint& constraint) {
    auto impl = std::make_shared<detail::responder_impl>(listen(ctx, l, p, constraint));
    impl->start();
    return responder(impl);
}

responder& responder::on_received(std::function<void(message, reply_to)> h) {
    checked(impl_, "responder").set_handler(std::move(h));
    return *this;
}
responder& responder::on_error(std::function<void(const error&)> h) {
    checked(impl_, "responder").get_listener().on_error(std::move(h));
    return *this;
}
std::vector<sdk::endpoint> responder::local_endpoints() const {
    return checked(impl_, "responder").get_listener().local_endpoints();
}
std::vector<std::vector<std::string>> responder::stacks() const {
    return checked(impl_, "responder").get_listener().stacks();
}
void responder::close() {
    checked(impl_, "responder").close_all();
}
boost::asio::any_io_executor responder::get_executor() const {
    return checked(impl_, "responder").get_listener().get_executor();
}

} // namespace post
