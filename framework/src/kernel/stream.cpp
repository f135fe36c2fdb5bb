// post::stream: a carrier's received chunks become a byte stream with a read-side buffer; each
// write is one message to the stack's top layer, whose wire is plain bytes.
#include <utility>

#include "carrier_impl.hpp"
#include "stream_state.hpp"

#include <post/stream.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <map>
#include <mutex>
#include <stdexcept>

namespace post {

namespace asio = boost::asio;
using completion = detail::unique_function<void(boost::system::error_code, std::size_t)>;

namespace detail {

class stream_state : public std::enable_shared_from_this<stream_state> {
public:
    explicit stream_state(post::carrier c)
        : carrier_(std::move(c)) {}

    const post::carrier& carrier() const noexcept { return carrier_; }

    void read_some(std::vector<asio::mutable_buffer> buffers, completion h) {
        asio::dispatch(carrier_.get_executor(), [self = shared_from_this(), b = std::move(buffers),
                                                 h = std::move(h)]() mutable {
            if (asio::buffer_size(b) == 0) return h({}, 0);
            if (self->offset_ < self->leftover_.size()) return h({}, self->take(b));
            self->receive_into(std::move(b), std::move(h));
        });
    }

    void write_some(std::vector<std::byte> bytes, completion h) {
        const std::size_t n = bytes.size();
        if (n == 0) {
            // As Asio streams do: an empty write completes at once (from the executor).
            asio::dispatch(carrier_.get_executor(), [h = std::move(h)]() mutable { h({}, 0); });
            return;
        }
        // The message is the bytes themselves: a stream-top stack writes them as they are.
        post::carrier c = carrier_;
        c.async_send(message(std::move(bytes)),
                     [n, h = std::move(h)](boost::system::error_code ec, message_id) mutable {
                         h(ec, ec ? 0 : n);
                     });
    }

private:
    // Runs on the executor only, as does everything touching leftover_.
    void receive_into(std::vector<asio::mutable_buffer> b, completion h) {
        post::carrier c = carrier_;
        c.async_receive([self = shared_from_this(), b = std::move(b),
                         h = std::move(h)](boost::system::error_code ec, message m) mutable {
            if (ec) return h(self->end_code(ec), 0);
            if (m.size() == 0) return self->receive_into(std::move(b), std::move(h));
            self->leftover_ = std::move(m.payload());
            self->offset_ = 0;
            h({}, self->take(b));
        });
    }

    std::size_t take(const std::vector<asio::mutable_buffer>& b) {
        const std::size_t n = asio::buffer_copy(
            b, asio::buffer(leftover_.data() + offset_, leftover_.size() - offset_));
        offset_ += n;
        if (offset_ == leftover_.size()) {
            leftover_.clear();
            offset_ = 0;
        }
        return n;
    }

    /// A receive fails with errc::closed once the carrier ended and its inbox is empty: that
    /// is the end of the stream after a clean close, and the carrier's error otherwise.
    boost::system::error_code end_code(boost::system::error_code ec) const {
        if (ec != make_error_code(errc::closed)) return ec;
        auto last = carrier_.last_error();
        if (!last || !last->code) return asio::error::eof;
        return last->code;
    }

    post::carrier carrier_;
    std::vector<std::byte> leftover_; ///< The rest of the last chunk, not yet read.
    std::size_t offset_ = 0;
};

namespace {

/// Which carriers have a stream, so that morphing twice gives the same one and a carrier from
/// initiate_stream() can be morphed again while it is still establishing.
struct registry_entry {
    std::weak_ptr<carrier_impl> carrier;
    std::weak_ptr<stream_state> stream;
};

std::mutex registry_mutex;
std::map<const carrier_impl*, registry_entry> registry;

/// Call with registry_mutex held. Returns the live entry for `impl`, after pruning dead ones.
registry_entry* lookup(const std::shared_ptr<carrier_impl>& impl) {
    for (auto it = registry.begin(); it != registry.end();) {
        if (it->second.carrier.expired())
            it = registry.erase(it);
        else
            ++it;
    }
    auto it = registry.find(impl.get());
    if (it == registry.end() || it->second.carrier.lock() != impl) return nullptr;
    return &it->second;
}

std::string stack_label(const std::vector<std::string>& names) {
    std::string s = "[";
    for (std::size_t i = 0; i < names.size(); ++i)
        s += (i ? ", " : "") + names[i];
    return s + "]";
}

/// Why a carrier over `names` cannot become a stream; empty when it can.
std::string refusal(const post::carrier& c, const std::vector<std::string>& names) {
    if (names.empty())
        return "cannot morph a carrier into a byte stream while it establishes a message "
               "stack; ask for a stream stack with initiate_stream() or "
               "stack_constraint::stream_top";
    const auto catalog = c.impl()->ctx().registry.catalog();
    for (const auto& l : catalog) {
        if (l.name != names.front()) continue;
        if (l.upper == sdk::edge::stream) return {};
        return "cannot morph the carrier over " + stack_label(names) +
               " into a byte stream: its top layer " + l.name + " offers a " +
               std::string(sdk::to_string(l.upper)) +
               " edge, not a stream; a message carrier whose framing is active cannot change "
               "its wire (ask for a stream stack with initiate_stream() or "
               "stack_constraint::stream_top)";
    }
    return "cannot morph the carrier over " + stack_label(names) + ": layer " + names.front() +
           " is not loaded";
}

stream make_registered(const post::carrier& c, registry_entry* existing) {
    auto state = std::make_shared<stream_state>(c);
    if (existing)
        existing->stream = state;
    else
        registry[c.impl().get()] = {c.impl(), state};
    return stream(std::move(state));
}

} // namespace

stream stream_for_new_carrier(carrier c) {
    std::lock_guard lock(registry_mutex);
    return make_registered(c, lookup(c.impl()));
}

} // namespace detail

namespace {
detail::stream_state& checked(const std::shared_ptr<detail::stream_state>& s) {
    if (!s) throw std::logic_error("operation on an empty post::stream");
    return *s;
}
} // namespace

stream::executor_type stream::get_executor() const {
    return checked(state_).carrier().get_executor();
}

void stream::read_some_with(std::vector<asio::mutable_buffer> buffers, completion h) const {
    checked(state_).read_some(std::move(buffers), std::move(h));
}

void stream::write_some_with(std::vector<std::byte> bytes, completion h) const {
    checked(state_).write_some(std::move(bytes), std::move(h));
}

void stream::close() {
    auto c = checked(state_).carrier();
    c.close();
}

void stream::abort() {
    auto c = checked(state_).carrier();
    c.abort();
}

carrier stream::carrier() const {
    return checked(state_).carrier();
}

stream morph(const carrier& c, error& e) {
    e = {};
    if (!c) {
        e = {make_error_code(errc::invalid_argument), "cannot morph an empty carrier"};
        return {};
    }
    std::lock_guard lock(detail::registry_mutex);
    auto* entry = detail::lookup(c.impl());
    if (entry) {
        if (auto s = entry->stream.lock()) return stream(std::move(s));
        // Registered by initiate_stream(): its candidates all offer a stream at the top.
        return detail::make_registered(c, entry);
    }
    if (auto why = detail::refusal(c, c.stack()); !why.empty()) {
        e = {make_error_code(errc::not_supported), std::move(why)};
        return {};
    }
    return detail::make_registered(c, nullptr);
}

stream morph(const carrier& c) {
    error e;
    auto s = morph(c, e);
    if (e) throw boost::system::system_error(e.code, e.reason);
    return s;
}

} // namespace post
