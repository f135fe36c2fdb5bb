// A protocol layer: configured once per policy, it opens flows (active), wraps lower flows,
// and, for bottom layers, listens.
#pragma once

#include <post/sdk/flow.hpp>
#include <post/sdk/options.hpp>
#include <post/sdk/session_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace post::sdk {

enum class role : std::uint8_t { client, server };

enum class log_level : std::uint8_t { trace, debug, info, warning, error };

/// Where a layer reports what it decided (handshakes, fallbacks). Thread: the executor.
class log_sink {
public:
    virtual ~log_sink() = default;
    virtual void log(log_level level, std::string_view layer, std::string_view text) noexcept = 0;
    /// ABI 4.4: whether a message of `level` would go anywhere now, so that a layer need not
    /// build the text of one nobody reads (on every connection, that adds up). The default
    /// answers true.
    virtual bool enabled(log_level) const noexcept { return true; }
};

/// Everything a layer instance gets when it is created.
struct layer_context {
    boost::asio::any_io_executor executor;
    options opts;            ///< Validated against the layer's schema, defaults filled in.
    log_sink* log = nullptr; ///< Never null when the kernel creates a layer.
};

struct open_params {
    role side = role::client;
    endpoint remote;               ///< The peer's resolved address.
    std::optional<endpoint> local; ///< Bind here first when set.
    std::string host_name;         ///< The name the application asked for (SNI, verification).
    /// ABI 2.1: the association's store for this remote (active opens; null when accepting).
    std::shared_ptr<session_store> session;
    /// ABI 4.1: which way the application will send (active opens; `bidirectional` when
    /// accepting). Multistreaming layers open a one-way stream where they can (QUIC); others
    /// may ignore it and open a bidirectional flow.
    flow_direction direction = flow_direction::bidirectional;
};

class acceptor_events {
public:
    virtual ~acceptor_events() = default;
    /// A new passive flow; the kernel wraps it with the upper layers and calls start().
    virtual void on_accepted(std::shared_ptr<flow> accepted) noexcept = 0;
    virtual void on_closed(const flow_error& e) noexcept = 0;
};

/// A bottom layer listening on a local endpoint.
class acceptor {
public:
    virtual ~acceptor() = default;
    virtual void set_events(std::weak_ptr<acceptor_events> events) noexcept = 0;
    virtual void start() noexcept = 0;
    virtual void close() noexcept = 0;
    virtual endpoint local_endpoint() const noexcept = 0;
};

class layer {
public:
    virtual ~layer() = default;

    /// Bottom layers (lower edge `none`) get `lower == nullptr` and open towards `p.remote`.
    /// Other layers wrap `lower`, which is not yet started: their start() starts it.
    /// On failure return nullptr and fill `err`.
    virtual std::shared_ptr<flow> open(std::shared_ptr<flow> lower, const open_params& p,
                                       flow_error& err) noexcept = 0;

    /// Bottom layers only: accept flows on `local`. Others leave the default.
    virtual std::shared_ptr<acceptor> listen(const endpoint& local, flow_error& err) noexcept {
        (void)local;
        err = {std::make_error_code(std::errc::operation_not_supported),
               "this layer cannot listen on its own; it needs a layer below it"};
        return nullptr;
    }

    /// Whether this instance, as configured, can take the server role (ABI 4.2). A layer that
    /// needs something only a server uses (a certificate) answers false and says why in `err`,
    /// so a listener leaves its stack out before binding instead of refusing every peer. The
    /// kernel asks only plugins built for 4.2 or later. The default: it can.
    virtual bool can_serve(flow_error& err) const noexcept {
        (void)err;
        return true;
    }
};

} // namespace post::sdk
