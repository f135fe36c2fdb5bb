// The `framing` plugin: layer `framer` (length-prefixed messages over a stream).
#include "framer_flow.hpp"

#include <cstdint>

namespace post::plugins::framing {
namespace {

constexpr std::int64_t default_max_message_size = 16 * 1024 * 1024;

class framer_layer final : public sdk::layer {
public:
    framer_layer(boost::asio::any_io_executor ex, std::uint64_t max_message_size,
                 sdk::log_sink* log)
        : executor_(std::move(ex))
        , max_message_size_(max_message_size)
        , log_(log) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params&,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!lower) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "framer needs a stream flow below it (it has no sockets of its own)"};
                return nullptr;
            }
            if (const auto kind = lower->info().kind; kind != sdk::edge::stream) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "framer needs a stream flow below it, got a " +
                           std::string(sdk::to_string(kind)) + " flow"};
                return nullptr;
            }
            auto f =
                std::make_shared<framer_flow>(executor_, std::move(lower), max_message_size_, log_);
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

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        const auto max =
            ctx.opts.get_or<std::int64_t>("max-message-size", default_max_message_size);
        if (max < 0 || static_cast<std::uint64_t>(max) > max_frame_length) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "framer: max-message-size must be between 0 and 4294967295 (the 32-bit "
                   "length field), got " +
                       std::to_string(max)};
            return nullptr;
        }
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "framer: no executor"};
            return nullptr;
        }
        return std::make_unique<framer_layer>(ctx.executor, static_cast<std::uint64_t>(max),
                                              ctx.log);
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
     "Largest message sent or accepted, in bytes; a longer frame from the peer ends the flow "
     "with a protocol error",
     "16777216", 0, 4294967295},
};

const sdk::layer_descriptor layers[] = {{
    "framer",
    "Length-prefixed messages (4-byte big-endian length) over a byte stream",
    sdk::edge::message,
    sdk::edge::stream,
    features,
    std::size(features),
    options,
    std::size(options),
    &create,
}};

const sdk::plugin_descriptor descriptor = [] {
    sdk::plugin_descriptor d;
    d.name = "framing";
    d.version = "0.1.0";
    d.license = "same as Post Sockets";
    d.description = "Message framing over stream layers";
    d.layers = layers;
    d.layer_count = std::size(layers);
    return d;
}();

} // namespace
} // namespace post::plugins::framing

POST_PLUGIN(framing, post::plugins::framing::descriptor)
