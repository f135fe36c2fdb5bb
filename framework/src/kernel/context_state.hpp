// What a context owns, shared with every carrier and listener created from it, so that they
// can outlive the context object itself without dangling.
#pragma once

#include <post/association.hpp>
#include <post/config.hpp>
#include <post/context.hpp>
#include <post/plugin_registry.hpp>
#include <post/sdk/layer.hpp>
#include <post/trace.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace post::detail {

struct context_state : sdk::log_sink {
    boost::asio::any_io_executor executor;
    host_config config;
    plugin_registry registry;

    mutable std::mutex mutex;
    std::map<std::string, std::shared_ptr<association>> associations;
    std::vector<std::function<void(const trace_event&)>> tracers;

    void emit(trace_event e) const;
    void log(sdk::log_level level, std::string_view layer, std::string_view text) noexcept override;
};

struct kernel_access {
    static const std::shared_ptr<context_state>& state(const context& c) { return c.state_; }
};

} // namespace post::detail
