// The `http` plugin: layer `http1` (HTTP/1.1 requests and responses as messages over a byte
// stream, docs/http.md), parsed by Debian's http-parser.
#include "http1_flow.hpp"

#include <cstdint>
#include <limits>

namespace post::plugins::http {
namespace {

constexpr std::int64_t default_max_message_size = 16 * 1024 * 1024;
constexpr std::int64_t default_max_header_size = 64 * 1024;
/// http-parser's own bound on a header block (HTTP_MAX_HEADER_SIZE, 80 KiB in Debian's build):
/// a larger option could never take effect.
constexpr std::int64_t parser_max_header_size = 80 * 1024;

/// The Host field for a request that names no :authority: the name the application asked
/// for (or the address), with the port unless it is a scheme's default.
std::string default_authority(const sdk::open_params& p) {
    std::string host = p.host_name;
    if (host.empty())
        host = p.remote.address.is_v6() ? "[" + p.remote.address.to_string() + "]"
                                        : p.remote.address.to_string();
    else if (host.find(':') != std::string::npos && host.front() != '[')
        host = "[" + host + "]";
    if (p.remote.port != 80 && p.remote.port != 443 && p.remote.port != 0)
        host += ":" + std::to_string(p.remote.port);
    return host;
}

class http1_layer final : public sdk::layer {
public:
    http1_layer(boost::asio::any_io_executor ex, http1_limits limits, sdk::log_sink* log)
        : executor_(std::move(ex))
        , limits_(limits)
        , log_(log) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!lower) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "http1 needs a stream flow below it (it has no sockets of its own)"};
                return nullptr;
            }
            if (const auto kind = lower->info().kind; kind != sdk::edge::stream) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "http1 needs a stream flow below it, got a " +
                           std::string(sdk::to_string(kind)) + " flow"};
                return nullptr;
            }
            auto f = std::make_shared<http1_flow>(executor_, std::move(lower), p.side,
                                                  default_authority(p), limits_, log_);
            f->attach();
            return f;
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    boost::asio::any_io_executor executor_;
    http1_limits limits_;
    sdk::log_sink* log_;
};

bool integer_option(const sdk::layer_context& ctx, const char* name, std::int64_t fallback,
                    std::int64_t min, std::int64_t max, std::int64_t& out, sdk::flow_error& err) {
    out = ctx.opts.get_or<std::int64_t>(name, fallback);
    if (out < min || out > max) {
        err = {std::make_error_code(std::errc::invalid_argument),
               std::string("http1: ") + name + " must be between " + std::to_string(min) + " and " +
                   std::to_string(max) + ", got " + std::to_string(out)};
        return false;
    }
    return true;
}

std::unique_ptr<sdk::layer> create_http1(const sdk::layer_context& ctx,
                                         sdk::flow_error& err) noexcept {
    try {
        http1_limits limits;
        std::int64_t v = 0;
        if (!integer_option(ctx, "max-message-size", default_max_message_size, 0,
                            std::numeric_limits<std::int64_t>::max(), v, err))
            return nullptr;
        limits.max_body = static_cast<std::uint64_t>(v);
        if (!integer_option(ctx, "max-header-size", default_max_header_size, 256,
                            parser_max_header_size, v, err))
            return nullptr;
        limits.max_header = static_cast<std::uint32_t>(v);
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "http1: no executor"};
            return nullptr;
        }
        return std::make_unique<http1_layer>(ctx.executor, limits, ctx.log);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

constexpr sdk::feature_entry features[] = {
    {"preserve-msg-boundaries", sdk::feature_effect::provides},
};

constexpr sdk::option_spec http1_options[] = {
    {"max-message-size", sdk::option_type::integer,
     "Largest body sent or accepted, in bytes; a longer one from the peer ends the flow with a "
     "protocol error",
     "16777216", 0, std::numeric_limits<std::int64_t>::max()},
    {"max-header-size", sdk::option_type::integer,
     "Largest header block (start line and fields) accepted, in bytes; at most 81920 "
     "(http-parser's own bound)",
     "65536", 256, parser_max_header_size},
};

const sdk::layer_descriptor layers[] = {
    {
        "http1",
        "HTTP/1.1 requests and responses as messages over a byte stream",
        sdk::edge::message,
        sdk::edge::stream,
        features,
        std::size(features),
        http1_options,
        std::size(http1_options),
        &create_http1,
    },
};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "http";
    d.version = "0.1.0";
    d.license = "same as Post Sockets";
    d.description = "HTTP messages over stream layers";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::http

POST_PLUGIN(http, post::plugins::http::descriptor)
