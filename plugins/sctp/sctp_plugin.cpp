// The `sctp` plugin: layer `sctp`, SCTP (usrsctp, no threads, AF_CONN) over a lower datagram
// flow, for the client and the server role. The descriptor and the layer's factory.
#include "sctp_association.hpp"
#include "sctp_options.hpp"
#include "sctp_stack.hpp"
#include "sctp_stream.hpp"

#include <iterator>

namespace post::plugins::sctp {
namespace {

class sctp_layer final : public sdk::layer {
public:
    sctp_layer(boost::asio::any_io_executor ex, std::shared_ptr<sctp_stack> stack, sctp_settings s)
        : executor_(std::move(ex))
        , stack_(std::move(stack))
        , settings_(s) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!lower) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "sctp needs a datagram flow below it (it has no sockets of its own)"};
                return nullptr;
            }
            if (const auto kind = lower->info().kind; kind != sdk::edge::datagram) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "sctp needs a datagram flow below it, got a " +
                           std::string(sdk::to_string(kind)) + " flow"};
                return nullptr;
            }
            // Stream 0 of a new association; fork() on it adds streams to the same one.
            return sctp_association::open(executor_, stack_, settings_, std::move(lower), p);
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    boost::asio::any_io_executor executor_;
    std::shared_ptr<sctp_stack> stack_;
    sctp_settings settings_;
};

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        sctp_settings s;
        if (!parse_settings(ctx.opts, s, err)) return nullptr;
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "sctp: no executor"};
            return nullptr;
        }
        s.log = ctx.log;
        auto stack = sctp_stack::acquire(err);
        if (!stack) return nullptr;
        return std::make_unique<sctp_layer>(ctx.executor, std::move(stack), s);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

// Multistreaming: fork() opens a stream of the same association, peer streams arrive through
// on_incoming_flow. No zero-rtt-msg. The checksum is CRC32c over every packet, both ways.
constexpr sdk::feature_entry features[] = {
    {"reliability", sdk::feature_effect::provides},
    {"multistreaming", sdk::feature_effect::provides},
    {"preserve-msg-boundaries", sdk::feature_effect::provides},
    {"preserve-order", sdk::feature_effect::provides},
    {"congestion-control", sdk::feature_effect::provides},
    {"per-msg-reliability", sdk::feature_effect::provides},
    {"full-checksum-send", sdk::feature_effect::provides},
    {"full-checksum-recv", sdk::feature_effect::provides},
};

const sdk::layer_descriptor layers[] = {
    {
        "sctp",
        "SCTP (usrsctp, no threads) over datagrams, e.g. SCTP over UDP (RFC 6951): reliable, "
        "ordered messages with congestion control; PR-SCTP lifetimes; multistreaming (one flow per "
        "stream, niceness as stream priority)",
        sdk::edge::message,
        sdk::edge::datagram,
        features,
        std::size(features),
        option_schema().data(),
        option_schema().size(),
        &create,
    },
};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "sctp";
    d.version = "0.2.0";
    d.license = "same as Post Sockets";
    d.description = "SCTP over datagram layers (usrsctp in its no-threads AF_CONN mode)";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::sctp

POST_PLUGIN(sctp, post::plugins::sctp::descriptor)
