#include "dtls_layer.hpp"

#include "dtls_flow.hpp"
#include "tls_settings.hpp"

namespace post::plugins::tls {
namespace {

class dtls_layer final : public sdk::layer {
public:
    dtls_layer(boost::asio::any_io_executor ex, std::shared_ptr<const tls_settings> s,
               dtls_options opts, std::shared_ptr<tls_context> client_ctx,
               std::shared_ptr<tls_context> server_ctx, sdk::log_sink* log)
        : executor_(std::move(ex))
        , settings_(std::move(s))
        , opts_(opts)
        , client_ctx_(std::move(client_ctx))
        , server_ctx_(std::move(server_ctx))
        , log_(log) {}

    std::shared_ptr<sdk::flow> open(std::shared_ptr<sdk::flow> lower, const sdk::open_params& p,
                                    sdk::flow_error& err) noexcept override {
        try {
            if (!lower) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "dtls needs a datagram flow below it (it has no sockets of its own)"};
                return nullptr;
            }
            if (const auto kind = lower->info().kind; kind != sdk::edge::datagram) {
                err = {std::make_error_code(std::errc::invalid_argument),
                       "dtls needs a datagram flow below it, got a " +
                           std::string(sdk::to_string(kind)) + " flow"};
                return nullptr;
            }
            auto ctx = p.side == sdk::role::client ? client_ctx_ : server_ctx_;
            if (!ctx) {
                err = no_server_certificate("dtls");
                return nullptr;
            }
            auto f = std::make_shared<dtls_flow>(executor_, std::move(ctx), settings_, opts_,
                                                 std::move(lower), p, log_);
            if (!f->init(err)) return nullptr;
            f->attach();
            return f;
        } catch (const std::exception& e) {
            err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
            return nullptr;
        }
    }

    bool can_serve(sdk::flow_error& err) const noexcept override {
        if (server_ctx_) return true;
        try {
            err = no_server_certificate("dtls");
        } catch (...) {
            err.code = std::make_error_code(std::errc::invalid_argument); // no memory for why
        }
        return false;
    }

private:
    boost::asio::any_io_executor executor_;
    std::shared_ptr<const tls_settings> settings_;
    dtls_options opts_;
    std::shared_ptr<tls_context> client_ctx_;
    std::shared_ptr<tls_context> server_ctx_; ///< Null without cert-file/key-file.
    sdk::log_sink* log_;
};

/// The shared tls code names its layer; these errors concern dtls options.
void rename(sdk::flow_error& err) {
    if (err.reason.rfind("tls: ", 0) == 0) err.reason.insert(0, "d");
}

} // namespace

std::unique_ptr<sdk::layer> create_dtls_layer(const sdk::layer_context& ctx,
                                              sdk::flow_error& err) noexcept {
    try {
        tls_settings s;
        if (!parse_settings(ctx.opts, s, err)) return rename(err), nullptr;
        // OpenSSL 3.0 speaks DTLS 1.2 at most; DTLS 1.0 is obsolete (RFC 8996). No tickets
        // and no early data: neither is part of what this layer offers.
        s.datagram = true;
        s.min_version = s.max_version = DTLS1_2_VERSION;
        s.ciphersuites.clear();
        s.session_tickets = false;
        s.early_data = false;
        if (!ctx.executor) {
            err = {std::make_error_code(std::errc::invalid_argument), "dtls: no executor"};
            return nullptr;
        }
        dtls_options o;
        const auto max_size = ctx.opts.get_or<std::int64_t>("max-message-size", 0);
        const auto mtu = ctx.opts.get_or<std::int64_t>("mtu", 1400);
        const auto timeout =
            ctx.opts.get_or<std::chrono::milliseconds>("handshake-timeout", o.handshake_timeout);
        if (max_size < 0 || max_size > static_cast<std::int64_t>(dtls_max_record_payload)) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "dtls: max-message-size must be between 0 and 16384 (one DTLS record), got " +
                       std::to_string(max_size)};
            return nullptr;
        }
        if (mtu < 256 || mtu > 65527) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "dtls: mtu must be between 256 and 65527, got " + std::to_string(mtu)};
            return nullptr;
        }
        if (timeout.count() <= 0) {
            err = {std::make_error_code(std::errc::invalid_argument),
                   "dtls: handshake-timeout must be above 0"};
            return nullptr;
        }
        o.max_message_size = static_cast<std::size_t>(max_size);
        o.mtu = static_cast<std::size_t>(mtu);
        o.handshake_timeout = timeout;
        // Built now, so a bad file or cipher list is reported when the policy is used.
        auto client_ctx = tls_context::get(sdk::role::client, s, err);
        if (!client_ctx) return rename(err), nullptr;
        std::shared_ptr<tls_context> server_ctx;
        if (!s.cert_file.empty()) {
            server_ctx = tls_context::get(sdk::role::server, s, err);
            if (!server_ctx) return rename(err), nullptr;
        }
        return std::make_unique<dtls_layer>(ctx.executor,
                                            std::make_shared<const tls_settings>(std::move(s)), o,
                                            std::move(client_ctx), std::move(server_ctx), ctx.log);
    } catch (const std::exception& e) {
        err = {std::make_error_code(std::errc::not_enough_memory), e.what()};
        return nullptr;
    }
}

} // namespace post::plugins::tls
