// Loads protocol plugins with Boost.DLL, checks their ABI, and creates layers from them.
#pragma once

#include <post/policy.hpp>
#include <post/sdk/abi.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace post {

struct loaded_plugin {
    std::filesystem::path file; ///< Empty for statically linked plugins.
    std::string name, version, license, description;
    std::uint16_t abi_major = 0, abi_minor = 0;
    std::vector<layer_info> layers;
};

struct refused_plugin {
    std::filesystem::path file;
    std::string reason;
};

class plugin_registry {
public:
    plugin_registry();
    ~plugin_registry();
    plugin_registry(const plugin_registry&) = delete;
    plugin_registry& operator=(const plugin_registry&) = delete;

    /// Load every `*.so` in `dir` (non-recursive, in name order). Refusals are recorded, never
    /// thrown. `only`: when non-empty, plugins with other names are skipped.
    void load_directory(const std::filesystem::path& dir,
                        const std::vector<std::string>& only = {});
    /// Load one file. Returns false and records why when it is refused.
    bool load_file(const std::filesystem::path& file);
    /// Register a plugin linked into the program (POST_PLUGIN_STATIC builds).
    bool add_static(const sdk::plugin_descriptor* descriptor);

    const std::vector<loaded_plugin>& plugins() const noexcept { return plugins_; }
    const std::vector<refused_plugin>& refused() const noexcept { return refused_; }
    /// Every layer of every loaded plugin, for the policy engine.
    std::vector<layer_info> catalog() const;
    const layer_info* find_layer(const std::string& name) const;

    /// Create a configured layer. The returned object keeps its plugin's library loaded.
    std::shared_ptr<sdk::layer> create_layer(const std::string& name, const sdk::layer_context& ctx,
                                             sdk::flow_error& err) const;
    /// Whether `l`, a layer created as `name`, can take the server role (sdk::layer::can_serve);
    /// true for plugins built before ABI 4.2, which cannot say. On false, `err` says why.
    bool can_serve(const std::string& name, const sdk::layer& l, sdk::flow_error& err) const;
    /// Keep a flow's plugin library loaded for as long as the flow lives.
    std::shared_ptr<sdk::flow> pin(const std::string& layer, std::shared_ptr<sdk::flow> f) const;

    /// Time spent loading, for `post bench`.
    std::chrono::microseconds load_time() const noexcept { return load_time_; }

private:
    struct entry;
    bool admit(const sdk::plugin_descriptor* d, const std::filesystem::path& file,
               std::shared_ptr<void> library);

    std::vector<loaded_plugin> plugins_;
    std::vector<refused_plugin> refused_;
    std::map<std::string, std::shared_ptr<entry>> layers_; ///< layer name -> its plugin.
    std::chrono::microseconds load_time_{0};
};

} // namespace post
