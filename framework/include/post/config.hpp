// Host-wide configuration (config/post.yaml): where plugins live, which to load, the system
// policy and logging.
#pragma once

#include <post/policy.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace post {

struct host_config {
    std::filesystem::path file; ///< Empty when built-in defaults are used.
    /// Plugin search path, relative entries already resolved against the config file's folder.
    std::vector<std::filesystem::path> plugin_path;
    /// Names of plugins to load; empty = every plugin found.
    std::vector<std::string> load;
    std::optional<policy> system_policy;
    std::string log_level = "warning";

    /// Throws policy_error (file:line:column, nearest key) on malformed files.
    static host_config load_file(const std::filesystem::path& file);
    static host_config parse(std::string_view yaml, const std::filesystem::path& file);
};

} // namespace post
