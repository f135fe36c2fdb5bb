// The `tcp` plugin: its descriptor, option schema and layer factory.
#include "tcp_acceptor.hpp"
#include "tcp_flow.hpp"

#include <cstdint>
#include <limits>

namespace post::plugins::tcp {
namespace {

class tcp_layer final : public sdk::layer {
public:
    tcp_layer(boost::asio::any_io_executor ex, tcp_settings s)
        : executor_(std::move(ex))
        , settings_(s) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!sdk::check_bottom_open(lower, p, "tcp", err)) return nullptr;
            return std::make_shared<tcp_flow>(executor_, settings_, p);
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

    std::shared_ptr<sdk::acceptor> listen(const sdk::endpoint& local,
                                          sdk::flow_error& err) noexcept override {
        try {
            auto inner = tcp_acceptor::open(executor_, settings_, local, err);
            if (!inner) return nullptr;
            // The pending accept keeps `inner` alive, so hand out a separate owner whose end
            // closes the listening socket: dropping the acceptor stops listening, as
            // destroying an Asio acceptor would.
            auto* raw = inner.get();
            return std::shared_ptr<sdk::acceptor>(
                raw, [inner = std::move(inner)](sdk::acceptor*) mutable noexcept {
                    inner->close();
                    inner.reset();
                });
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    boost::asio::any_io_executor executor_;
    tcp_settings settings_;
};

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        tcp_settings s;
        s.nodelay = ctx.opts.get_or<bool>("nodelay", true);
        s.keep_alive = ctx.opts.get_or<std::chrono::milliseconds>("keep-alive", {});
        s.reuse_address = ctx.opts.get_or<bool>("reuse-address", true);
        const auto backlog = ctx.opts.get_or<std::int64_t>("backlog", 4096);
        const auto lowat = ctx.opts.get_or<std::int64_t>("notsent-lowat", 0);
        const auto rcvbuf = ctx.opts.get_or<std::int64_t>("receive-buffer", 0);
        s.fast_open = ctx.opts.get_or<bool>("fast-open", false);
        s.log = ctx.log;
        if (backlog < 1 || backlog > std::numeric_limits<int>::max() || lowat < 0 ||
            lowat > std::numeric_limits<int>::max() || s.keep_alive.count() < 0 || rcvbuf < 0 ||
            rcvbuf > std::numeric_limits<int>::max()) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "tcp: backlog must be >= 1, notsent-lowat, receive-buffer and keep-alive must "
                   "be >= 0"};
            return nullptr;
        }
        s.backlog = static_cast<int>(backlog);
        s.notsent_lowat = static_cast<int>(lowat);
        s.receive_buffer = static_cast<int>(rcvbuf);
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "tcp: no executor"};
            return nullptr;
        }
        return std::make_unique<tcp_layer>(ctx.executor, s);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

constexpr sdk::feature_entry features[] = {
    {"reliability", sdk::feature_effect::provides},
    {"preserve-order", sdk::feature_effect::provides},
    {"congestion-control", sdk::feature_effect::provides},
    {"full-checksum-send", sdk::feature_effect::provides},
    {"full-checksum-recv", sdk::feature_effect::provides},
    {"keep-alive", sdk::feature_effect::provides},
};

constexpr sdk::option_spec options[] = {
    {"nodelay", sdk::option_type::boolean, "Send small writes at once (TCP_NODELAY)", "true"},
    {"keep-alive", sdk::option_type::duration,
     "Idle time before keep-alive probes (SO_KEEPALIVE, TCP_KEEPIDLE/KEEPINTVL); 0 = off", "0s"},
    {"reuse-address", sdk::option_type::boolean, "Set SO_REUSEADDR before binding", "true"},
    {"backlog", sdk::option_type::integer, "Listen backlog", "4096", 1, 1 << 20},
    {"notsent-lowat", sdk::option_type::integer,
     "TCP_NOTSENT_LOWAT in bytes, keeping the kernel's unsent queue small; 0 = kernel default", "0",
     0, std::numeric_limits<std::int32_t>::max()},
    {"receive-buffer", sdk::option_type::integer,
     "SO_RCVBUF in bytes (the kernel doubles it): bounds what waits in our receive queue, so an "
     "urgent message is not stuck behind megabytes the application has not read yet; 0 = "
     "autotuning",
     "0", 0, std::numeric_limits<std::int32_t>::max()},
    {"fast-open", sdk::option_type::boolean,
     "TCP Fast Open (RFC 7413): a connection whose first bytes are idempotent sends them in the "
     "SYN once the kernel holds a cookie for the server; listeners accept data in the SYN. Needs "
     "net.ipv4.tcp_fastopen (1 client, 2 server, 3 both)",
     "false"},
};

const sdk::layer_descriptor layers[] = {{
    "tcp",
    "TCP over the operating system's sockets",
    sdk::edge::stream,
    sdk::edge::none,
    features,
    std::size(features),
    options,
    std::size(options),
    &create,
}};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "tcp";
    d.version = "0.1.0";
    d.license = "same as Post Sockets";
    d.description = "TCP client and server flows (stream edge)";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::tcp

POST_PLUGIN(tcp, post::plugins::tcp::descriptor)
