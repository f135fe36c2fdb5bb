// The context: one per application (or per component). It owns the plugin registry, the host
// configuration and system policy, and the association cache, and runs on one Asio executor.
#pragma once

#include <post/association.hpp>
#include <post/carrier.hpp>
#include <post/config.hpp>
#include <post/listener.hpp>
#include <post/plugin_registry.hpp>
#include <post/policy.hpp>
#include <post/remote.hpp>
#include <post/trace.hpp>

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace post {

namespace detail {
struct kernel_access;
struct context_state;
} // namespace detail

struct context_options {
    /// Host configuration file. Unset: $POST_CONFIG, then etc/post/post.yaml next to the
    /// program's prefix (build/etc/post/post.yaml in a build tree), then the installed one.
    std::optional<std::filesystem::path> config_file;
    /// Searched before the configuration's path (after $POST_PLUGIN_PATH).
    std::vector<std::filesystem::path> plugin_path;
    bool load_plugins = true;
    bool use_environment = true; ///< Honour POST_CONFIG and POST_PLUGIN_PATH.
    /// Persist associations (TLS session tickets, racing winners) here, so that the next run
    /// resumes (docs/associations.md). Unset: nothing is persisted. The file is read when the
    /// context is created, written (mode 0600) when associations change and when it is
    /// destroyed. A file that cannot be used is ignored with a warning (context::warnings()).
    std::optional<std::filesystem::path> association_file;
};

/// $XDG_STATE_HOME/post/associations.json, else ~/.local/state/post/associations.json; empty
/// when neither variable is set.
std::filesystem::path default_association_file();

class context {
public:
    explicit context(boost::asio::io_context& io, context_options options = {});
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;

    boost::asio::any_io_executor get_executor() const;
    plugin_registry& plugins() noexcept;
    const host_config& config() const noexcept;

    /// The application policy merged under the system policy.
    merged_policy effective(const policy& application) const;

    /// The association for a remote (created on first use). Carriers to the same remote share
    /// it.
    std::shared_ptr<association> association_for(const remote& r);
    std::size_t association_count() const;
    /// Write the association file now (it is also written as associations change). Returns an
    /// empty string, or why it failed; does nothing without context_options::association_file.
    std::string save_associations() const;

    /// Problems found while setting up that did not stop it (an unusable association file).
    std::vector<std::string> warnings() const;

    /// Observe establishment and transient events.
    void on_trace(std::function<void(const trace_event&)> h);
    void emit(trace_event e) const;

private:
    std::shared_ptr<detail::context_state> state_;
    friend struct detail::kernel_access;
};

/// Start establishing a carrier to `r`; events arrive through its handlers.
carrier initiate(context& ctx, const remote& r, const policy& p = policy::defaults());
/// As above, from `from`: its address (only candidates of that family are tried), port and
/// interface (only that interface's addresses), each when set. A pinned address that is not
/// this host's, or that the policy's interface rules exclude, fails establishment with why.
carrier initiate(context& ctx, const remote& r, const local& from,
                 const policy& p = policy::defaults());

/// Completion signature: void(boost::system::error_code, carrier). The carrier is ready on
/// success; on failure carrier::last_error() holds the reason listing every attempt.
template <class CompletionToken>
auto async_initiate(context& ctx, const remote& r, const policy& p, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code, carrier)>(
        [&ctx](auto handler, remote r, policy p) {
            carrier c = initiate(ctx, r, p);
            auto done = detail::erase_handler<boost::system::error_code, carrier>(
                std::move(handler), ctx.get_executor());
            auto shared = std::make_shared<decltype(done)>(std::move(done));
            c.async_wait_ready(
                [c, shared](boost::system::error_code ec) mutable { (*shared)(ec, c); });
        },
        token, r, p);
}

/// The constraint a remote's URL scheme puts on stacks: `tcp://` needs layer tcp, `udp://`
/// needs udp, and so on; none without a scheme.
stack_constraint constraint_for(const remote& r);
/// What a URL scheme asks of the stack: tcp:// and udp:// are plain (no tls/dtls), tls:// is
/// TLS over TCP, dtls:// DTLS over UDP, https:// TLS over TCP (port 443), http:// plain TCP
/// (port 80); any other scheme names a layer it needs.
stack_constraint constraint_for_scheme(std::string_view scheme);

/// Listen on `l` with every stack the policy allows (the best-ranked one per bottom layer).
/// Throws policy_error for a bad policy, boost::system::system_error when nothing could be
/// bound (the message lists why for each stack and address).
listener listen(context& ctx, const local& l, const policy& p = policy::defaults(),
                const stack_constraint& constraint = {});

} // namespace post
