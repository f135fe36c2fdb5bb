#include "bench_support.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace post_tool::bench {

std::string error_reason(boost::system::error_code ec, const post::carrier& c) {
    if (auto e = c.last_error(); e && *e) return e->to_string();
    return ec.message();
}

void post_workload::throughput(std::chrono::duration<double> duration,
                               std::shared_ptr<once_promise<double>> result) {
    struct state {
        post::carrier c;
        std::shared_ptr<once_promise<double>> result;
        std::vector<std::byte> payload = std::vector<std::byte>(bulk_size, std::byte{0x5a});
        clock_type::time_point start, deadline;
        int in_flight = 0;
        std::uint64_t sent = 0;
        bool ended = false;
    };
    auto st = std::make_shared<state>();
    st->result = std::move(result);
    st->c = post::initiate(ctx, remote, policy);
    auto fill = [st] {
        while (!st->ended && st->in_flight < bulk_window) {
            if (clock_type::now() >= st->deadline) {
                st->ended = true;
                st->c.send(post::message(std::string_view("e")));
                break;
            }
            st->c.send(post::message(st->payload));
            ++st->in_flight;
            ++st->sent;
        }
    };
    st->c.on_sent([st, fill](post::message_id) {
        if (st->in_flight > 0) --st->in_flight;
        fill();
    });
    st->c.on_received([st](post::message) {
        double s = seconds_since(st->start);
        st->result->set(st->sent * bulk_size * 8 / s / 1e9);
        // The state and the carrier refer to each other until the process ends: a handler
        // may not replace itself, and one carrier per phase is not worth more machinery.
        st->c.close();
    });
    st->c.on_error([st](const post::error& e) { st->result->fail(e.to_string()); });
    st->c.async_wait_ready([st, fill, duration](boost::system::error_code ec) {
        if (ec) return st->result->fail(error_reason(ec, st->c));
        st->start = clock_type::now();
        st->deadline = st->start + std::chrono::duration_cast<clock_type::duration>(duration);
        fill();
    });
}

void post_workload::round_trips(int count, std::shared_ptr<once_promise<latency>> result) {
    struct state {
        post::carrier c;
        std::shared_ptr<once_promise<latency>> result;
        std::vector<double> us;
        int remaining = 0, measured = 0;
        clock_type::time_point t0;
    };
    auto st = std::make_shared<state>();
    st->result = std::move(result);
    st->measured = count;
    st->remaining = count + warmup_round_trips;
    st->us.reserve(count);
    st->c = post::initiate(ctx, remote, policy);
    auto ping = [st] {
        st->t0 = clock_type::now();
        st->c.send(post::message(std::vector<std::byte>(ping_size, std::byte{1})));
    };
    st->c.on_received([st, ping](post::message) {
        double us = seconds_since(st->t0) * 1e6;
        if (st->remaining-- <= st->measured) st->us.push_back(us); // after the warm-up
        if (st->remaining > 0) return ping();
        st->result->set(percentiles(std::move(st->us)));
        st->c.close();
    });
    st->c.on_error([st](const post::error& e) { st->result->fail(e.to_string()); });
    st->c.async_wait_ready([st, ping](boost::system::error_code ec) {
        if (ec) return st->result->fail(error_reason(ec, st->c));
        ping();
    });
}

std::uint16_t free_udp_port(const char* who) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string(who) + ": socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error(std::string(who) + ": cannot find a free UDP port");
    return ntohs(a.sin_port);
}

} // namespace post_tool::bench
