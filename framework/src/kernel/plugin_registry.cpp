#include "elf_check.hpp"

#include <post/plugin_registry.hpp>

#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <set>

namespace post {

namespace fs = std::filesystem;

/// One layer's origin. Shared by everything created from the layer, so the plugin's code stays
/// mapped while any of its objects lives.
struct plugin_registry::entry {
    std::shared_ptr<boost::dll::shared_library> library; ///< Null for static plugins.
    const sdk::layer_descriptor* descriptor = nullptr;
    std::string plugin;
    std::uint16_t abi_minor = 0; ///< What the plugin was built for: which virtuals it has.
};

namespace {

std::string version_text(unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

std::string toolchain_text(const sdk::toolchain_id& t) {
    return "Boost " + std::to_string(t.boost_version / 100000) + "." +
           std::to_string(t.boost_version / 100 % 1000) + ", libstdc++ " +
           std::to_string(t.cxx_runtime) + ", cxx11-abi " + std::to_string(t.cxx_abi) + ", " +
           std::to_string(t.pointer_size * 8) + "-bit";
}

bool known_edge(sdk::edge e) {
    return e <= sdk::edge::message;
}

/// The dlerror() text for a file Boost.DLL could not load (Boost only gives an errno-ish code).
std::string dlopen_reason(const fs::path& file) {
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle) {
        ::dlclose(handle);
        return "could not be loaded";
    }
    const char* e = ::dlerror();
    return e ? std::string(e) : std::string("could not be loaded");
}

} // namespace

plugin_registry::plugin_registry() = default;
plugin_registry::~plugin_registry() = default;

void plugin_registry::load_directory(const fs::path& dir, const std::vector<std::string>& only) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() == ".so" && e.is_regular_file(ec)) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        if (!only.empty()) {
            // libpost-<name>.so: filter by plugin file name before loading anything.
            auto stem = f.stem().string();
            if (stem.rfind("libpost-", 0) == 0) stem = stem.substr(8);
            if (std::find(only.begin(), only.end(), stem) == only.end()) continue;
        }
        load_file(f);
    }
}

bool plugin_registry::load_file(const fs::path& file) {
    auto started = std::chrono::steady_clock::now();
    auto account = [&] {
        load_time_ += std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now() - started);
    };
    for (const auto& p : plugins_)
        if (!p.file.empty() && fs::equivalent(p.file, file)) return true; // already loaded

    if (auto bad = detail::check_elf_file(file)) {
        refused_.push_back({file, "not a loadable shared object: " + *bad});
        account();
        return false;
    }
    boost::system::error_code ec;
    auto lib = std::make_shared<boost::dll::shared_library>();
    // RTLD_NODELETE: a plugin is never unmapped once loaded. Every object from it keeps its
    // library referenced, but handlers an io_context still holds (to be destroyed with it) may
    // point into its code after the last object is gone.
    const auto mode =
        boost::dll::load_mode::rtld_now | static_cast<boost::dll::load_mode::type>(RTLD_NODELETE);
    lib->load(boost::dll::fs::path(file.string()), mode, ec);
    if (ec || !lib->is_loaded()) {
        refused_.push_back({file, "not a loadable shared object: " + dlopen_reason(file)});
        account();
        return false;
    }
    if (!lib->has("post_plugin_descriptor")) {
        refused_.push_back({file, "no 'post_plugin_descriptor' symbol: not a Post Sockets "
                                  "plugin (export one with POST_PLUGIN)"});
        account();
        return false;
    }
    using accessor = const sdk::plugin_descriptor*();
    const sdk::plugin_descriptor* d = nullptr;
    try {
        d = lib->get_alias<accessor>("post_plugin_descriptor")();
    } catch (const std::exception& e) {
        refused_.push_back({file, std::string("descriptor could not be read: ") + e.what()});
        account();
        return false;
    }
    bool ok = admit(d, file, lib);
    account();
    return ok;
}

bool plugin_registry::add_static(const sdk::plugin_descriptor* d) {
    return admit(d, {}, nullptr);
}

bool plugin_registry::admit(const sdk::plugin_descriptor* d, const fs::path& file,
                            std::shared_ptr<void> library) {
    auto refuse = [&](std::string why) {
        refused_.push_back({file, std::move(why)});
        return false;
    };
    if (!d) return refuse("descriptor accessor returned null");
    if (d->magic != sdk::plugin_magic) return refuse("descriptor has a wrong magic number");
    if (d->abi_major != sdk::abi_major)
        return refuse("plugin ABI version " + version_text(d->abi_major, d->abi_minor) +
                      " does not match the kernel's ABI version " +
                      version_text(sdk::abi_major, sdk::abi_minor) + " (major versions differ)");
    if (d->abi_minor > sdk::abi_minor)
        return refuse("plugin ABI version " + version_text(d->abi_major, d->abi_minor) +
                      " is newer than the kernel's ABI version " +
                      version_text(sdk::abi_major, sdk::abi_minor));
    if (d->descriptor_size < sizeof(sdk::plugin_descriptor))
        return refuse("descriptor is truncated (" + std::to_string(d->descriptor_size) +
                      " bytes, expected " + std::to_string(sizeof(sdk::plugin_descriptor)) + ")");
    if (!(d->toolchain == sdk::this_toolchain()))
        return refuse("plugin was built with " + toolchain_text(d->toolchain) +
                      ", the kernel with " + toolchain_text(sdk::this_toolchain()));
    if (!d->name || !*d->name) return refuse("descriptor has no plugin name");
    if (!d->layers || d->layer_count == 0) return refuse("plugin offers no layers");
    if (d->layer_count > 64) return refuse("plugin declares more than 64 layers");

    loaded_plugin p;
    p.file = file;
    p.name = d->name;
    p.version = d->version ? d->version : "";
    p.license = d->license ? d->license : "";
    p.description = d->description ? d->description : "";
    p.abi_major = d->abi_major;
    p.abi_minor = d->abi_minor;
    for (const auto& q : plugins_)
        if (q.name == p.name)
            return refuse("a plugin named '" + p.name + "' is already loaded from " +
                          (q.file.empty() ? std::string("the program") : q.file.string()));

    std::set<std::string> names;
    for (std::size_t i = 0; i < d->layer_count; ++i) {
        const auto& l = d->layers[i];
        if (!l.name || !*l.name) return refuse("layer " + std::to_string(i) + " has no name");
        std::string name = l.name;
        if (!l.create) return refuse("layer '" + name + "' has no create function");
        if (!known_edge(l.upper) || !known_edge(l.lower) || l.upper == sdk::edge::none)
            return refuse("layer '" + name + "' declares an invalid edge");
        if (layers_.count(name) || !names.insert(name).second)
            return refuse("layer '" + name + "' is already provided by plugin '" +
                          (layers_.count(name) ? layers_.at(name)->plugin : p.name) + "'");
        layer_info info;
        info.name = name;
        info.plugin = p.name;
        info.summary = l.summary ? l.summary : "";
        info.upper = l.upper;
        info.lower = l.lower;
        for (std::size_t f = 0; f < l.feature_count; ++f) {
            const auto& fe = l.features[f];
            std::string_view fname = fe.name ? fe.name : "";
            if (std::find(sdk::known_features.begin(), sdk::known_features.end(), fname) ==
                sdk::known_features.end())
                return refuse("layer '" + name + "' declares unknown feature '" +
                              std::string(fname) + "'");
            if (fe.effect != sdk::feature_effect::provides &&
                fe.effect != sdk::feature_effect::removes)
                return refuse("layer '" + name + "' declares an invalid feature effect");
            info.features[std::string(fname)] = fe.effect;
        }
        for (std::size_t o = 0; o < l.option_count; ++o) {
            if (!l.options[o].name)
                return refuse("layer '" + name + "' has an option without a name");
            info.options.push_back(l.options[o]);
        }
        p.layers.push_back(std::move(info));
    }

    auto lib = std::static_pointer_cast<boost::dll::shared_library>(library);
    for (std::size_t i = 0; i < d->layer_count; ++i) {
        auto e = std::make_shared<entry>();
        e->library = lib;
        e->descriptor = &d->layers[i];
        e->plugin = p.name;
        e->abi_minor = d->abi_minor;
        layers_[d->layers[i].name] = std::move(e);
    }
    plugins_.push_back(std::move(p));
    return true;
}

std::vector<layer_info> plugin_registry::catalog() const {
    std::vector<layer_info> out;
    for (const auto& p : plugins_)
        out.insert(out.end(), p.layers.begin(), p.layers.end());
    return out;
}

const layer_info* plugin_registry::find_layer(const std::string& name) const {
    for (const auto& p : plugins_)
        for (const auto& l : p.layers)
            if (l.name == name) return &l;
    return nullptr;
}

std::shared_ptr<sdk::layer> plugin_registry::create_layer(const std::string& name,
                                                          const sdk::layer_context& ctx,
                                                          sdk::flow_error& err) const {
    auto it = layers_.find(name);
    if (it == layers_.end()) {
        err = {std::make_error_code(std::errc::no_such_file_or_directory),
               "layer '" + name + "' is not provided by any loaded plugin"};
        return nullptr;
    }
    auto e = it->second;
    std::unique_ptr<sdk::layer> made = e->descriptor->create(ctx, err);
    if (!made) {
        if (!err)
            err = {std::make_error_code(std::errc::invalid_argument),
                   "layer '" + name + "' refused to be created"};
        return nullptr;
    }
    sdk::layer* raw = made.release();
    return std::shared_ptr<sdk::layer>(raw, [e](sdk::layer* l) { delete l; });
}

bool plugin_registry::can_serve(const std::string& name, const sdk::layer& l,
                                sdk::flow_error& err) const {
    auto it = layers_.find(name);
    // A layer built for 4.0 or 4.1 has no can_serve in its vtable: its open() is the only
    // judge, at the first peer.
    if (it == layers_.end() || it->second->abi_minor < 2) return true;
    return l.can_serve(err);
}

std::shared_ptr<sdk::flow> plugin_registry::pin(const std::string& layer,
                                                std::shared_ptr<sdk::flow> f) const {
    auto it = layers_.find(layer);
    if (it == layers_.end() || !f) return f;
    struct holder {
        std::shared_ptr<entry> origin; // destroyed last
        std::shared_ptr<sdk::flow> flow;
    };
    auto h = std::make_shared<holder>(holder{it->second, std::move(f)});
    return std::shared_ptr<sdk::flow>(h, h->flow.get());
}

} // namespace post
