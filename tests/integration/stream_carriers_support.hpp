// What the multistreaming carrier tests (test_sctp_carriers, test_quic_carriers) share: an
// echo exchange on one carrier, carriers that each send their own messages and check their
// echoes, the kernel's stream and connection events counted from the trace.
#pragma once

#include "loopback_support.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace post::test {

/// Sends `texts` on one carrier and collects the echoes, then closes. Returns the failure, if
/// any, else the echoes; checks that the stack's top layer is `top`.
inline std::variant<error, std::vector<std::string>>
exchange(boost::asio::io_context& io, context& ctx, const remote& r, const policy& p,
         const std::vector<std::string>& texts, std::string_view top) {
    auto c = initiate(ctx, r, p);
    std::vector<std::string> echoes;
    std::optional<error> failure;
    bool closed = false;
    for (const auto& t : texts)
        c.send(message(std::string_view(t)));
    c.on_received([&](message m) {
        echoes.emplace_back(m.text());
        if (echoes.size() == texts.size()) c.close();
    });
    c.on_error([&](const error& e) { failure = e; });
    c.on_closed([&] { closed = true; });
    run_until(io, [&] { return closed || failure.has_value(); });
    if (failure) return *failure;
    BOOST_TEST(c.stack().front() == top);
    return echoes;
}

/// Counts what the kernel reports: new streams on a connection (forked/incoming) and new
/// connections (accepted).
struct trace_counts {
    int forked = 0;
    int incoming = 0;
    int accepted = 0;
    explicit trace_counts(context& ctx) {
        ctx.on_trace([this](const trace_event& e) {
            if (e.what == trace_event::kind::forked) ++forked;
            if (e.what == trace_event::kind::incoming) ++incoming;
            if (e.what == trace_event::kind::accepted &&
                e.detail.find("refused") == std::string::npos)
                ++accepted;
        });
    }
};

/// Each carrier sends its own messages and collects its echoes.
struct stream_client {
    std::vector<carrier> carriers;
    std::map<std::size_t, std::vector<std::string>> echoes;
    std::optional<error> failure;

    void add(carrier c) {
        const auto index = carriers.size();
        c.on_received([this, index](message m) { echoes[index].emplace_back(m.text()); });
        c.on_error([this](const error& e) { failure = e; });
        carriers.push_back(std::move(c));
    }
    void send_all(int per_carrier) {
        for (std::size_t i = 0; i < carriers.size(); ++i)
            for (int n = 0; n < per_carrier; ++n)
                carriers[i].send(message(std::string_view(label(i, n))));
    }
    static std::string label(std::size_t carrier_index, int n) {
        // Sizes differ so that boundaries matter; one message is larger than a datagram.
        return "c" + std::to_string(carrier_index) + "-" + std::to_string(n) + ":" +
               std::string(n == 1 ? 5000 : n * 3, 'x');
    }
    bool all_echoed(int per_carrier) const {
        if (carriers.empty()) return false;
        for (std::size_t i = 0; i < carriers.size(); ++i) {
            auto it = echoes.find(i);
            if (it == echoes.end() || it->second.size() < static_cast<std::size_t>(per_carrier))
                return false;
        }
        return true;
    }
    void check_echoes(int per_carrier) const {
        for (std::size_t i = 0; i < carriers.size(); ++i) {
            std::vector<std::string> want;
            for (int n = 0; n < per_carrier; ++n)
                want.push_back(label(i, n));
            BOOST_TEST(echoes.at(i) == want, boost::test_tools::per_element());
        }
    }
};

inline void wait_ready(boost::asio::io_context& io, carrier& c) {
    bool ready = false;
    std::optional<error> failure;
    c.async_wait_ready([&](boost::system::error_code ec) {
        ready = true;
        if (ec) failure = error{ec, ec.message()};
    });
    run_until(io, [&] { return ready; });
    BOOST_REQUIRE_MESSAGE(!failure, "carrier not ready: " << (failure ? failure->to_string() : ""));
}

} // namespace post::test
