#include "h3_layer.hpp"

#include "h3_flow.hpp"
#include "quic_connection.hpp"

#include <limits>

namespace post::plugins::quic {
namespace {

constexpr std::int64_t default_max_message_size = 16 * 1024 * 1024;
constexpr std::int64_t default_max_header_size = 64 * 1024;

/// :authority for a request that names none: the name the application asked for (or the
/// address), with the port unless it is 443.
std::string default_authority(const sdk::open_params& p) {
    std::string host = p.host_name;
    if (host.empty())
        host = p.remote.address.is_v6() ? "[" + p.remote.address.to_string() + "]"
                                        : p.remote.address.to_string();
    else if (host.find(':') != std::string::npos && host.front() != '[')
        host = "[" + host + "]";
    if (p.remote.port != 443 && p.remote.port != 0) host += ":" + std::to_string(p.remote.port);
    return host;
}

class h3_layer final : public sdk::layer {
public:
    explicit h3_layer(h3_limits limits)
        : limits_(limits) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            // HTTP/3 needs the whole connection (its control and QPACK streams, stream ids,
            // raw stream bytes): only the quic layer of this plugin, directly below, gives it.
            auto stream = std::dynamic_pointer_cast<quic_stream>(lower);
            if (!stream) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "h3 runs only directly over the quic layer ([h3, quic, udp])"};
                return nullptr;
            }
            auto& conn = stream->connection();
            auto session =
                std::make_shared<h3_session>(conn, p.side, default_authority(p), limits_);
            conn.set_application(session);
            auto f = std::make_shared<h3_flow>(std::move(stream), std::move(session));
            f->attach();
            return f;
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

private:
    h3_limits limits_;
};

} // namespace

const std::vector<sdk::option_spec>& h3_option_schema() {
    static const std::vector<sdk::option_spec> schema = {
        {"max-message-size", sdk::option_type::integer,
         "Largest body sent or accepted, in bytes; a longer one from the peer closes the "
         "connection (H3_EXCESSIVE_LOAD)",
         "16777216", 0, std::numeric_limits<std::int64_t>::max()},
        {"max-header-size", sdk::option_type::integer,
         "Largest field section accepted (SETTINGS_MAX_FIELD_SECTION_SIZE: names, values and 32 "
         "bytes per field)",
         "65536", 256, 16 * 1024 * 1024},
    };
    return schema;
}

std::unique_ptr<sdk::layer> create_h3(const sdk::layer_context& ctx,
                                      sdk::flow_error& err) noexcept {
    try {
        // The kernel has checked both against h3_option_schema()'s bounds (a policy outside
        // them is refused with the option's name), so they are taken as they are.
        h3_limits limits;
        limits.max_body = static_cast<std::uint64_t>(
            ctx.opts.get_or<std::int64_t>("max-message-size", default_max_message_size));
        limits.max_header = static_cast<std::uint64_t>(
            ctx.opts.get_or<std::int64_t>("max-header-size", default_max_header_size));
        return std::make_unique<h3_layer>(limits);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

} // namespace post::plugins::quic
