// The layers the policy tests select from: a hand-written copy of what the tcp, udp and framing
// plugins declare, so the engine is tested without loading plugins.
#include <post/policy.hpp>

namespace post_test {

using post::sdk::edge;
using post::sdk::feature_effect;
using post::sdk::option_type;

std::vector<post::layer_info> test_catalog() {
    // Mirrors the declarations in plugins/{tcp,udp,framing}/*_plugin.cpp.
    static const post::sdk::option_spec tcp_options[] = {
        {"nodelay", option_type::boolean, "TCP_NODELAY", "true", 0, 0},
        {"keep-alive", option_type::duration, "Keep-alive idle time; 0 = off", "0s", 0, 0},
        {"reuse-address", option_type::boolean, "SO_REUSEADDR", "true", 0, 0},
        {"backlog", option_type::integer, "Listen backlog", "4096", 1, 1 << 20},
        {"notsent-lowat", option_type::integer, "TCP_NOTSENT_LOWAT", "0", 0, 2147483647},
    };
    static const post::sdk::option_spec udp_options[] = {
        {"max-message-size", option_type::integer, "Largest datagram; 0 = IP limit", "0", 0, 65527},
        {"max-peers", option_type::integer, "Remotes per listener", "1024", 1, 2147483647},
        {"reuse-address", option_type::boolean, "SO_REUSEADDR", "true", 0, 0},
    };
    static const post::sdk::option_spec framer_options[] = {
        {"max-message-size", option_type::integer, "Largest message", "16777216", 0, 4294967295},
    };

    post::layer_info tcp{"tcp", "tcp", "TCP sockets", edge::stream, edge::none, {}, {}};
    for (auto f : {"reliability", "preserve-order", "congestion-control", "full-checksum-send",
                   "full-checksum-recv", "keep-alive"})
        tcp.features[f] = feature_effect::provides;
    tcp.options.assign(std::begin(tcp_options), std::end(tcp_options));

    post::layer_info udp{"udp", "udp", "UDP sockets", edge::datagram, edge::none, {}, {}};
    udp.features["preserve-msg-boundaries"] = feature_effect::provides;
    udp.options.assign(std::begin(udp_options), std::end(udp_options));

    post::layer_info framer{"framer", "framing", "Message framing", edge::message, edge::stream,
                            {},       {}};
    framer.features["preserve-msg-boundaries"] = feature_effect::provides;
    framer.options.assign(std::begin(framer_options), std::end(framer_options));

    return {tcp, udp, framer};
}

} // namespace post_test
