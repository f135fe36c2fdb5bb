// The `framing` plugin: layer `framer` (the post-frame protocol, docs/framing.md) and layer
// `length-prefix` (a 4-byte big-endian length before each message), both over a byte stream.
#include "length_prefix_flow.hpp"
#include "post_frame_flow.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace post::plugins::framing {
namespace {

constexpr std::int64_t default_max_message_size = 16 * 1024 * 1024;

/// The argument checks both layers share: a lower flow, and a stream one.
bool check_lower(const std::shared_ptr<sdk::flow>& lower, const char* name, sdk::flow_error& err) {
    if (!lower) {
        err = {std::make_error_code(std::errc::invalid_argument),
               std::string(name) + " needs a stream flow below it (it has no sockets of its own)"};
        return false;
    }
    if (const auto kind = lower->info().kind; kind != sdk::edge::stream) {
        err = {std::make_error_code(std::errc::invalid_argument),
               std::string(name) + " needs a stream flow below it, got a " +
                   std::string(sdk::to_string(kind)) + " flow"};
        return false;
    }
    return true;
}

class length_prefix_layer final : public sdk::layer {
public:
    length_prefix_layer(boost::asio::any_io_executor ex, std::uint64_t max_message_size,
                        sdk::log_sink* log)
        : executor_(std::move(ex))
        , max_message_size_(max_message_size)
        , log_(log) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params&,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!check_lower(lower, "length-prefix", err)) return nullptr;
            auto f = std::make_shared<length_prefix_flow>(executor_, std::move(lower),
                                                          max_message_size_, log_);
            f->attach();
            return f;
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    boost::asio::any_io_executor executor_;
    std::uint64_t max_message_size_;
    sdk::log_sink* log_;
};

class post_frame_layer final : public sdk::layer {
public:
    post_frame_layer(boost::asio::any_io_executor ex, post_frame_settings settings,
                     sdk::log_sink* log)
        : executor_(std::move(ex))
        , settings_(settings)
        , log_(log) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!check_lower(lower, "framer", err)) return nullptr;
            auto f = std::make_shared<post_frame_flow>(executor_, std::move(lower), p.side,
                                                       settings_, log_);
            f->attach();
            return f;
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    boost::asio::any_io_executor executor_;
    post_frame_settings settings_;
    sdk::log_sink* log_;
};

/// Reads an integer option and checks its range (the schema's bounds are advisory for callers
/// that build options by hand, such as tests).
bool integer_option(const sdk::layer_context& ctx, const char* layer, const char* name,
                    std::int64_t fallback, std::int64_t min, std::int64_t max, std::int64_t& out,
                    sdk::flow_error& err) {
    out = ctx.opts.get_or<std::int64_t>(name, fallback);
    if (out < min || out > max) {
        err = {std::make_error_code(std::errc::invalid_argument),
               std::string(layer) + ": " + name + " must be between " + std::to_string(min) +
                   " and " + std::to_string(max) + ", got " + std::to_string(out)};
        return false;
    }
    return true;
}

std::unique_ptr<sdk::layer> create_length_prefix(const sdk::layer_context& ctx,
                                                 sdk::flow_error& err) noexcept {
    try {
        std::int64_t max = 0;
        if (!integer_option(ctx, "length-prefix", "max-message-size", default_max_message_size, 0,
                            max_frame_length, max, err))
            return nullptr;
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "length-prefix: no executor"};
            return nullptr;
        }
        return std::make_unique<length_prefix_layer>(ctx.executor, static_cast<std::uint64_t>(max),
                                                     ctx.log);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

// Large enough that bulk data moves in few system calls (with 64 KiB, one message per write and
// executor turn cost a quarter of the throughput); links where urgency matters set it lower
// together with tcp's notsent-lowat (docs/policy.md).
constexpr std::int64_t default_send_window = 1 << 20;

std::unique_ptr<sdk::layer> create_post_frame(const sdk::layer_context& ctx,
                                              sdk::flow_error& err) noexcept {
    try {
        post_frame_settings s;
        std::int64_t v = 0;
        if (!integer_option(ctx, "framer", "max-message-size", default_max_message_size, 0,
                            std::numeric_limits<std::int64_t>::max(), v, err))
            return nullptr;
        s.limits.max_message_size = static_cast<std::uint64_t>(v);
        if (!integer_option(ctx, "framer", "max-in-flight", 64, 1, 1 << 20, v, err)) return nullptr;
        s.limits.max_in_flight = static_cast<std::size_t>(v);
        if (!integer_option(ctx, "framer", "partial-delivery", 0, 0,
                            std::numeric_limits<std::int64_t>::max(), v, err))
            return nullptr;
        s.limits.partial_delivery = static_cast<std::uint64_t>(v);
        if (!integer_option(ctx, "framer", "chunk-size", 16 * 1024, 1, post_frame::max_chunk_size,
                            v, err))
            return nullptr;
        s.chunk_size = static_cast<std::size_t>(v);
        if (!integer_option(ctx, "framer", "send-window", default_send_window, 1, 1 << 30, v, err))
            return nullptr;
        // At least one chunk, or nothing could ever go down.
        s.send_window = std::max(static_cast<std::size_t>(v), s.chunk_size);
        s.acks = ctx.opts.get_or<bool>("acks", true);
        const auto fallback = ctx.opts.get_or<std::string>("fallback", "error");
        if (fallback != "error" && fallback != "raw") {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "framer: fallback must be 'error' or 'raw', got '" + fallback + "'"};
            return nullptr;
        }
        s.fallback_raw = fallback == "raw";
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "framer: no executor"};
            return nullptr;
        }
        return std::make_unique<post_frame_layer>(ctx.executor, s, ctx.log);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

constexpr sdk::feature_entry features[] = {
    {"preserve-msg-boundaries", sdk::feature_effect::provides},
};

constexpr sdk::option_spec length_prefix_options[] = {
    {"max-message-size", sdk::option_type::integer,
     "Largest message sent or accepted, in bytes; a longer frame from the peer ends the flow "
     "with a protocol error",
     "16777216", 0, 4294967295},
};

constexpr sdk::option_spec post_frame_options[] = {
    {"max-message-size", sdk::option_type::integer,
     "Largest message sent or accepted, in bytes; a peer announcing a longer one ends the flow "
     "with a protocol error",
     "16777216", 0, std::numeric_limits<std::int64_t>::max()},
    {"max-in-flight", sdk::option_type::integer,
     "Messages the peer may have partially sent at once; one more is a protocol error", "64", 1,
     1 << 20},
    {"chunk-size", sdk::option_type::integer,
     "Largest chunk of a message in one frame, in bytes: an urgent message waits for at most "
     "about two of them",
     "16384", 1, static_cast<std::int64_t>(post_frame::max_chunk_size)},
    {"send-window", sdk::option_type::integer,
     "Bytes handed to the layer below and not yet sent: larger moves bulk data faster, smaller "
     "lets an urgent message overtake sooner (on a slow link set it, and tcp notsent-lowat, to "
     "a few chunks)",
     "1048576", 1, 1 << 30},
    {"partial-delivery", sdk::option_type::integer,
     "Deliver messages longer than this many bytes in parts as they arrive; 0 = always whole", "0",
     0, std::numeric_limits<std::int64_t>::max()},
    {"acks", sdk::option_type::boolean,
     "Ask the peer to acknowledge each message it delivers (the acked event)", "true"},
    {"fallback", sdk::option_type::string,
     "When the peer does not speak post-frame: error (close with a protocol error) or raw "
     "(carry the bytes unframed, without message boundaries)",
     "error"},
};

const sdk::layer_descriptor layers[] = {
    {
        "framer",
        "post-frame: interleaved, prioritised, acknowledged messages over a byte stream",
        sdk::edge::message,
        sdk::edge::stream,
        features,
        std::size(features),
        post_frame_options,
        std::size(post_frame_options),
        &create_post_frame,
    },
    {
        "length-prefix",
        "Length-prefixed messages (4-byte big-endian length) over a byte stream",
        sdk::edge::message,
        sdk::edge::stream,
        features,
        std::size(features),
        length_prefix_options,
        std::size(length_prefix_options),
        &create_length_prefix,
    },
};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "framing";
    d.version = "0.2.0";
    d.license = "same as Post Sockets";
    d.description = "Message framing over stream layers";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::framing

POST_PLUGIN(framing, post::plugins::framing::descriptor)
