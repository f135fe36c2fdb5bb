// What a context owns, shared with every carrier and listener created from it, so that they
// can outlive the context object itself without dangling.
#pragma once

#include "interface_cache.hpp"
#include "policy_cache.hpp"

#include <post/association.hpp>
#include <post/config.hpp>
#include <post/context.hpp>
#include <post/plugin_registry.hpp>
#include <post/sdk/layer.hpp>
#include <post/trace.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace post::detail {

class address_watcher;

/// Something the context keeps alive until it finishes (an active carrier, an open listener),
/// so applications need not hold handles for their handlers to keep running.
class live_object {
public:
    virtual ~live_object() = default;
    /// Stop at once without events (the context is going away). Called on the destroying
    /// thread after the executor has stopped running this context's work.
    virtual void shutdown() noexcept = 0;
};

struct context_state : sdk::log_sink, std::enable_shared_from_this<context_state> {
    boost::asio::any_io_executor executor;
    host_config config;
    plugin_registry registry;
    interface_cache interfaces; ///< Regathered only after netlink reports a change.
    /// Carriers that can migrate hear of removed local addresses (created on first use, on
    /// the executor; only touched there).
    std::shared_ptr<address_watcher> addresses;
    policy_cache policies; ///< What initiated carriers derive from their policy, shared.

    mutable std::mutex mutex;
    std::map<std::string, std::shared_ptr<association>> associations;
    /// Replaced, never changed in place, so that emit() takes a reference under the lock
    /// instead of copying every handler for every event.
    using tracer_list = std::vector<std::function<void(const trace_event&)>>;
    std::shared_ptr<const tracer_list> tracers;
    std::atomic<bool> tracing{false}; ///< Any tracer: events are worth building.

    std::map<live_object*, std::shared_ptr<live_object>> live;

    std::filesystem::path association_file; ///< Empty: associations are not persisted.
    bool save_posted = false;               ///< Guarded by mutex.
    std::vector<std::string> warnings;      ///< Guarded by mutex.
    /// Make `a` save the file when it changes (no-op without persistence).
    void watch(association& a);
    void schedule_save();
    std::string save_now();

    void keep(std::shared_ptr<live_object> o);
    void release(live_object* o);
    void emit(trace_event e) const;
    void log(sdk::log_level level, std::string_view layer, std::string_view text) noexcept override;
    /// Layer messages become trace events: nothing reads them unless someone traces.
    bool enabled(sdk::log_level) const noexcept override {
        return tracing.load(std::memory_order_relaxed);
    }
};

struct kernel_access {
    static const std::shared_ptr<context_state>& state(const context& c) { return c.state_; }
};

} // namespace post::detail
