// Helpers for driving protocol layers directly (no kernel) over real loopback sockets: event
// recorders for flows and acceptors, and a loop runner that waits for a condition, not a time.
#pragma once

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>

#include <post/sdk.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

// How Boost.Test prints SDK values in failure messages.
namespace post::sdk {
inline std::ostream& boost_test_print_type(std::ostream& os, const edge& e) {
    return os << to_string(e);
}
inline std::ostream& boost_test_print_type(std::ostream& os, const endpoint& e) {
    return os << e.to_string();
}
} // namespace post::sdk
BOOST_TEST_DONT_PRINT_LOG_VALUE(std::errc)

namespace post::test {

/// Runs `io` until `done()` holds; false after `limit` (the caller asserts on that).
template <class Pred>
bool run_until(boost::asio::io_context& io, Pred done,
               std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        io.restart();
        io.run_one_for(std::chrono::milliseconds(20));
    }
    return true;
}

inline sdk::byte_buffer bytes(std::string_view s) {
    sdk::byte_buffer b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        b[i] = std::byte(s[i]);
    return b;
}

inline std::string text(const sdk::byte_buffer& b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

/// A deterministic payload, different for every (size, seed).
inline sdk::byte_buffer pattern(std::size_t size, unsigned seed) {
    sdk::byte_buffer b(size);
    std::uint32_t x = 2654435761u * (seed + 1) + static_cast<std::uint32_t>(size);
    for (auto& v : b) {
        x = x * 1664525u + 1013904223u;
        v = std::byte(x >> 24);
    }
    return b;
}

inline sdk::send_meta meta(std::uint64_t id) {
    sdk::send_meta m;
    m.id = id;
    return m;
}

struct log_capture : sdk::log_sink {
    std::vector<std::string> lines;
    bool debug_wanted = true; ///< What enabled() answers for trace and debug.
    void log(sdk::log_level, std::string_view layer, std::string_view t) noexcept override {
        lines.push_back(std::string(layer) + ": " + std::string(t));
    }
    bool enabled(sdk::log_level level) const noexcept override {
        return debug_wanted || level > sdk::log_level::debug;
    }
    bool contains(std::string_view needle) const {
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

/// Records every event of one flow, in order.
struct flow_recorder : sdk::flow_events {
    bool started = true; ///< Set false by whoever starts the flow later.
    bool ready = false;
    int received_before_start = 0;
    int events_after_close = 0;
    std::vector<sdk::byte_buffer> messages; ///< Each on_received unit.
    std::vector<sdk::receive_meta> metas;
    sdk::byte_buffer stream; ///< All received bytes concatenated.
    std::vector<std::uint64_t> sent;
    std::vector<std::pair<std::uint64_t, sdk::flow_error>> send_errors;
    std::optional<sdk::flow_error> closed;
    std::vector<std::string> order; ///< "ready", "recv", "sent", "send_error", "closed".
    std::function<void(flow_recorder&, const sdk::byte_buffer&)> on_message;

    void note(const char* what) {
        if (closed) ++events_after_close;
        order.emplace_back(what);
    }
    void on_ready() noexcept override {
        note("ready");
        ready = true;
    }
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override {
        note("recv");
        if (!started) ++received_before_start;
        stream.insert(stream.end(), data.begin(), data.end());
        metas.push_back(meta);
        messages.push_back(std::move(data));
        if (on_message) on_message(*this, messages.back());
    }
    void on_sent(std::uint64_t id) noexcept override {
        note("sent");
        sent.push_back(id);
    }
    void on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept override {
        note("send_error");
        send_errors.emplace_back(id, e);
    }
    void on_closed(const sdk::flow_error& e) noexcept override {
        note("closed");
        closed = e;
    }
};

/// Accepts flows: optionally wraps each (e.g. with a framer), attaches a recorder, starts it.
struct acceptor_recorder : sdk::acceptor_events {
    struct accepted_flow {
        std::shared_ptr<sdk::flow> flow;
        std::shared_ptr<flow_recorder> events;
    };
    boost::asio::io_context* io = nullptr;
    std::function<std::shared_ptr<sdk::flow>(std::shared_ptr<sdk::flow>)> wrap;
    std::function<void(flow_recorder&, const sdk::byte_buffer&)> on_message;
    bool defer_start = false; ///< Start from a later executor turn, as a kernel might.
    std::vector<accepted_flow> accepted;
    std::optional<sdk::flow_error> closed;

    void on_accepted(std::shared_ptr<sdk::flow> f) noexcept override {
        if (wrap) f = wrap(std::move(f));
        auto rec = std::make_shared<flow_recorder>();
        rec->on_message = on_message;
        f->set_events(rec);
        accepted.push_back({f, rec});
        if (defer_start && io) {
            rec->started = false;
            boost::asio::post(*io, [f, rec] {
                rec->started = true;
                f->start();
            });
        } else {
            f->start();
        }
    }
    void on_closed(const sdk::flow_error& e) noexcept override { closed = e; }
};

/// The plugin's first layer (the tls plugin's second, dtls, is picked by name in its tests).
inline std::unique_ptr<sdk::layer> make_layer(const sdk::plugin_descriptor* d,
                                              boost::asio::io_context& io, sdk::options opts = {},
                                              sdk::log_sink* log = nullptr) {
    BOOST_REQUIRE(d != nullptr);
    BOOST_REQUIRE_GE(d->layer_count, 1u);
    sdk::layer_context ctx{io.get_executor(), std::move(opts), log};
    sdk::flow_error err;
    auto l = d->layers[0].create(ctx, err);
    BOOST_REQUIRE_MESSAGE(l, "create failed: " << err.reason);
    return l;
}

inline sdk::endpoint ep(const char* addr, std::uint16_t port = 0) {
    return {boost::asio::ip::make_address(addr), port};
}

} // namespace post::test
