// The `checksum` layer: a message-to-message layer that appends a CRC-32 to every message it
// sends and verifies and strips it from every message it receives. A mismatch means the bytes
// below were damaged (or the peer does not speak this layer): the flow closes with a protocol
// error naming both values, and nothing damaged reaches the application.
//
// Wire format: <payload><crc32(payload), 4 bytes, big-endian>.
//
// SDK contract followed here (framework/include/post/sdk/):
// - ownership: the upper side owns this flow (shared_ptr), this flow owns the lower flow, and
//   the lower flow only holds a weak_ptr back to us (set_events), so no cycle keeps a closed
//   stack alive;
// - threading: every call and event happens on the context's executor; events this layer
//   raises while the layer above is calling into it are posted, never delivered re-entrantly;
// - errors: nothing throws across the boundary. Every entry point is noexcept and catches
//   allocation failures itself.
// Boost.Asio 1.74 with g++ 12 needs <utility> before any Asio header (the SDK includes some).
#include <utility>

#include <post/sdk.hpp>

#include <boost/asio/post.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <system_error>

namespace checksum_plugin {

namespace sdk = post::sdk;

// --- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as in zlib and Ethernet) ----------

constexpr std::array<std::uint32_t, 256> make_crc_table() noexcept {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit)
            c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        table[i] = c;
    }
    return table;
}

constexpr auto crc_table = make_crc_table();

std::uint32_t crc32(const std::byte* data, std::size_t size) noexcept {
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < size; ++i)
        c = crc_table[(c ^ std::to_integer<std::uint32_t>(data[i])) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

constexpr std::size_t trailer_size = 4;

std::string hex32(std::uint32_t v) {
    char text[11];
    std::snprintf(text, sizeof text, "0x%08x", v);
    return text;
}

sdk::flow_error protocol_error(std::string reason) noexcept {
    // The SDK carries std::error_code so that plugins need not link the kernel; EPROTO is the
    // portable "peer sent something malformed".
    return {std::make_error_code(std::errc::protocol_error), std::move(reason)};
}

// --- the flow ---------------------------------------------------------------------------------

class checksum_flow final : public sdk::flow,
                            public sdk::flow_events,
                            public std::enable_shared_from_this<checksum_flow> {
public:
    /// Wraps `lower` and registers for its events. Returns nullptr when out of memory.
    static std::shared_ptr<checksum_flow> wrap(boost::asio::any_io_executor ex,
                                               std::shared_ptr<sdk::flow> lower) noexcept {
        try {
            auto f = std::make_shared<checksum_flow>(std::move(ex), lower);
            lower->set_events(f);
            return f;
        } catch (const std::exception&) {
            return nullptr;
        }
    }

    checksum_flow(boost::asio::any_io_executor ex, std::shared_ptr<sdk::flow> lower) noexcept
        : executor_(std::move(ex))
        , lower_(std::move(lower)) {}

    // sdk::flow: called by the layer above.

    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept override {
        upper_ = std::move(events);
    }

    void start() noexcept override {
        if (!closed_) lower_->start();
    }

    void send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept override {
        if (closed_) {
            post_send_error(meta.id, {std::make_error_code(std::errc::not_connected),
                                      "checksum: send on a closed flow"});
            return;
        }
        try {
            const std::uint32_t c = crc32(data.data(), data.size());
            data.reserve(data.size() + trailer_size);
            for (int shift = 24; shift >= 0; shift -= 8)
                data.push_back(static_cast<std::byte>((c >> shift) & 0xFFu));
        } catch (const std::exception&) {
            post_send_error(meta.id, {std::make_error_code(std::errc::not_enough_memory),
                                      "checksum: out of memory adding the CRC-32 trailer"});
            return;
        }
        lower_->send(std::move(data), meta);
    }

    void close() noexcept override {
        if (!closed_) lower_->close(); // on_closed arrives from below once queued data is out
    }

    void abort() noexcept override {
        closed_ = true;
        upper_.reset(); // "no further events are delivered"
        lower_->abort();
    }

    sdk::flow_info info() const noexcept override {
        sdk::flow_info i = lower_->info();
        i.kind = sdk::edge::message;
        // The trailer takes room in every unit below.
        if (i.max_message_size > trailer_size)
            i.max_message_size -= trailer_size;
        else if (i.max_message_size != 0)
            i.max_message_size = 1; // a degenerate lower layer; never report "unlimited"
        return i;
    }

    // The lower flow's count includes our 4-byte trailers; close enough for back-pressure.
    std::size_t queued_bytes() const noexcept override { return lower_->queued_bytes(); }

    std::shared_ptr<sdk::flow> fork() noexcept override {
        if (closed_) return nullptr;
        auto lower = lower_->fork();
        if (!lower) return nullptr;
        return wrap(executor_, std::move(lower));
    }

    // sdk::flow_events: called by the flow below, on the executor, never from inside one of our
    // own calls into it, so relaying upward directly is safe.

    void on_ready() noexcept override {
        if (auto up = live_upper()) up->on_ready();
    }

    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override {
        if (closed_) return;
        // A lower layer only delivers parts when asked to; should one do so anyway, collect the
        // parts, since the trailer can only be checked on the whole message.
        if (meta.partial || !partial_.empty()) {
            try {
                partial_.insert(partial_.end(), data.begin(), data.end());
            } catch (const std::exception&) {
                fail(protocol_error("checksum: out of memory collecting a partial message"));
                return;
            }
            if (meta.partial) return;
            data = std::move(partial_);
            partial_.clear();
        }
        ++received_;
        if (data.size() < trailer_size) {
            fail(protocol_error("checksum: message " + std::to_string(received_) + " has " +
                                std::to_string(data.size()) +
                                " bytes, fewer than its 4-byte CRC-32 trailer"));
            return;
        }
        const std::size_t payload = data.size() - trailer_size;
        std::uint32_t carried = 0;
        for (std::size_t i = payload; i < data.size(); ++i)
            carried = (carried << 8) | std::to_integer<std::uint32_t>(data[i]);
        const std::uint32_t computed = crc32(data.data(), payload);
        if (carried != computed) {
            fail(protocol_error(
                "checksum: CRC-32 mismatch in message " + std::to_string(received_) + " (" +
                std::to_string(payload) + " bytes): carried " + hex32(carried) + ", computed " +
                hex32(computed) + "; the data was damaged or the peer does not use this layer"));
            return;
        }
        data.resize(payload);
        sdk::receive_meta up_meta = meta;
        up_meta.partial = false;
        if (auto up = live_upper()) up->on_received(std::move(data), up_meta);
    }

    void on_sent(std::uint64_t id) noexcept override {
        if (auto up = live_upper()) up->on_sent(id);
    }

    void on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept override {
        if (auto up = live_upper()) up->on_send_error(id, e);
    }

    void on_closed(const sdk::flow_error& e) noexcept override {
        if (closed_) return;
        closed_ = true;
        if (auto up = upper_.lock()) up->on_closed(e);
    }

    void on_incoming_flow(std::shared_ptr<sdk::flow> incoming) noexcept override {
        // A peer-opened stream of a multistreaming layer below: it carries checksummed
        // messages too, so it gets its own checksum flow.
        auto up = live_upper();
        auto wrapped = up ? wrap(executor_, incoming) : nullptr;
        if (!wrapped) {
            incoming->abort();
            return;
        }
        up->on_incoming_flow(std::move(wrapped));
    }

private:
    std::shared_ptr<sdk::flow_events> live_upper() const noexcept {
        return closed_ ? nullptr : upper_.lock();
    }

    /// Close because of what the peer sent: drop the lower flow and tell the layer above once.
    void fail(const sdk::flow_error& e) noexcept {
        if (closed_) return;
        closed_ = true;
        lower_->abort();
        if (auto up = upper_.lock()) up->on_closed(e);
    }

    /// Called from inside send(): the layer above is on the stack, so the event goes through
    /// the executor instead of re-entering it.
    void post_send_error(std::uint64_t id, sdk::flow_error e) noexcept {
        try {
            boost::asio::post(executor_, [events = upper_, id, e = std::move(e)] {
                if (auto up = events.lock()) up->on_send_error(id, e);
            });
        } catch (const std::exception&) {
            // Out of memory while reporting: the message is lost without an event, which the
            // kernel's own send timeout still covers.
        }
    }

    boost::asio::any_io_executor executor_;
    std::shared_ptr<sdk::flow> lower_;
    std::weak_ptr<sdk::flow_events> upper_;
    sdk::byte_buffer partial_;
    std::uint64_t received_ = 0;
    bool closed_ = false;
};

// --- the layer and its descriptor -------------------------------------------------------------

class checksum_layer final : public sdk::layer {
public:
    explicit checksum_layer(boost::asio::any_io_executor ex) noexcept
        : executor_(std::move(ex)) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params&,
                                    sdk::flow_error& err) noexcept override {
        if (!lower) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "checksum: needs a message layer below it (it cannot be a bottom layer)"};
            return nullptr;
        }
        auto f = checksum_flow::wrap(executor_, std::move(lower));
        if (!f)
            err = {std::make_error_code(std::errc::not_enough_memory),
                   "checksum: out of memory creating a flow"};
        return f;
    }

private:
    boost::asio::any_io_executor executor_;
};

std::unique_ptr<sdk::layer> create(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept {
    try {
        const auto algorithm = ctx.opts.get_or<std::string>("algorithm", "crc32");
        if (algorithm != "crc32") {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "checksum: unsupported algorithm '" + algorithm +
                       "'; the only algorithm is 'crc32'"};
            return nullptr;
        }
        return std::make_unique<checksum_layer>(ctx.executor);
    } catch (const std::exception&) {
        err = {std::make_error_code(std::errc::not_enough_memory),
               "checksum: out of memory creating the layer"};
        return nullptr;
    }
}

constexpr sdk::feature_entry features[] = {
    {"full-checksum-send", sdk::feature_effect::provides},
    {"full-checksum-recv", sdk::feature_effect::provides},
};

constexpr sdk::option_spec option_schema[] = {
    {"algorithm", sdk::option_type::string, "checksum algorithm; only \"crc32\" is supported",
     "crc32", 0, 0},
};

constexpr sdk::layer_descriptor layers[] = {{
    "checksum",
    "CRC-32 trailer on every message; a damaged message closes the flow",
    sdk::edge::message,
    sdk::edge::message,
    features,
    std::size(features),
    option_schema,
    std::size(option_schema),
    &create,
}};

const sdk::plugin_descriptor descriptor{
    .name = "checksum",
    .version = "1.0.0",
    .license = "MIT",
    .description = "Example third-party plugin: end-to-end CRC-32 over each message",
    .layers = layers,
    .layer_count = std::size(layers),
};

} // namespace checksum_plugin

POST_PLUGIN(checksum, checksum_plugin::descriptor)
