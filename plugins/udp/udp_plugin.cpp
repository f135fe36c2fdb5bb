// The `udp` plugin: its descriptor, option schema and layer factory.
#include "udp_client_flow.hpp"
#include "udp_server.hpp"

#include <cstdint>
#include <limits>

namespace post::plugins::udp {
namespace {

class udp_layer final : public sdk::layer {
public:
    udp_layer(boost::asio::any_io_executor ex, udp_settings s)
        : executor_(std::move(ex))
        , settings_(s) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!sdk::check_bottom_open(lower, p, "udp", err)) return nullptr;
            return std::make_shared<udp_client_flow>(executor_, settings_, p);
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

    std::shared_ptr<sdk::acceptor> listen(const sdk::endpoint& local,
                                          sdk::flow_error& err) noexcept override {
        try {
            auto s = std::make_shared<udp_server_socket>(executor_, settings_);
            if (!s->bind(local, err)) return nullptr;
            return std::make_shared<udp_acceptor>(std::move(s));
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    boost::asio::any_io_executor executor_;
    udp_settings settings_;
};

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        const auto max_size = ctx.opts.get_or<std::int64_t>("max-message-size", 0);
        const auto max_peers = ctx.opts.get_or<std::int64_t>("max-peers", 1024);
        if (max_size < 0 || max_peers < 1) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "udp: max-message-size must be >= 0 and max-peers >= 1"};
            return nullptr;
        }
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "udp: no executor"};
            return nullptr;
        }
        udp_settings s;
        s.max_message_size = static_cast<std::size_t>(max_size);
        s.max_peers = static_cast<std::size_t>(max_peers);
        s.reuse_address = ctx.opts.get_or<bool>("reuse-address", true);
        s.gso = ctx.opts.get_or<bool>("gso", true);
        s.log = ctx.log;
        return std::make_unique<udp_layer>(ctx.executor, s);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

constexpr sdk::feature_entry features[] = {
    {"preserve-msg-boundaries", sdk::feature_effect::provides},
};

constexpr sdk::option_spec options[] = {
    {"max-message-size", sdk::option_type::integer,
     "Largest datagram payload a send accepts; 0 = the IP limit (65507 IPv4, 65527 IPv6), "
     "larger values are capped to it",
     "0", 0, 65527},
    {"max-peers", sdk::option_type::integer,
     "Most remotes one listening socket serves at once; datagrams from further remotes are "
     "dropped",
     "1024", 1, std::numeric_limits<std::int32_t>::max()},
    {"reuse-address", sdk::option_type::boolean, "Set SO_REUSEADDR before binding", "true"},
    {"gso", sdk::option_type::boolean,
     "Send a train of datagrams from the layer above (a QUIC connection's packets) with UDP "
     "GSO, one system call per up to 64 datagrams; false, or when the kernel refuses GSO: "
     "sendmmsg with one entry per datagram",
     "true"},
};

const sdk::layer_descriptor layers[] = {{
    "udp",
    "UDP datagrams over the operating system's sockets",
    sdk::edge::datagram,
    sdk::edge::none,
    features,
    std::size(features),
    options,
    std::size(options),
    &create,
}};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "udp";
    d.version = "0.1.0";
    d.license = "same as Post Sockets";
    d.description = "UDP client flows and demultiplexing listeners (datagram edge)";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::udp

POST_PLUGIN(udp, post::plugins::udp::descriptor)
