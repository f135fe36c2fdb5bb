// The versioned binary interface between the kernel and a plugin shared object.
//
// A plugin exports exactly one symbol, `post_plugin_descriptor` (a Boost.DLL alias for a
// function returning a pointer to a static plugin_descriptor). The kernel reads the first
// fields (magic, ABI major/minor, size) before anything else, so those never move.
// Rules: the major version changes on any incompatible change to this file, flow.hpp,
// layer.hpp or options.hpp; the minor version changes when something is added at the end of a
// struct. A kernel loads a plugin whose major version equals its own and whose minor version is
// not newer than its own.
#pragma once

#include <post/sdk/edge.hpp>
#include <post/sdk/features.hpp>
#include <post/sdk/layer.hpp>
#include <post/sdk/options.hpp>

#include <boost/version.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace post::sdk {

inline constexpr std::uint32_t plugin_magic = 0x50535450; // "PSTP"
/// 2: acked/expired events, flow capabilities. 3: receive_meta::properties (read by the kernel
/// from a struct the plugin built, so older plugins cannot be loaded), send_meta::segment_size,
/// flow::smoothed_rtt. 4: flow::migrate, flow_events::on_path_changed and cap_migrates (new
/// virtual functions: every vtable after them moves, so plugins built for 3 cannot be loaded).
/// 4.1: open_params::direction (at the end of a struct the kernel builds: a 4.0 plugin never
/// reads it and opens bidirectional flows, as before), flow_direction, cap_send_only and
/// cap_receive_only (new bits a 4.0 plugin never sets). 4.2: layer::can_serve (a new virtual
/// function at the end of layer's vtable: the kernel calls it only on layers of 4.2 plugins).
/// 4.3: flow::release (a new virtual function at the end of flow's vtable) and cap_release,
/// the bit a flow sets when it has it: a 4.2 plugin never sets it, so nobody calls release on
/// its flows. 4.4: session_object, session_store::store_object and load_object, and
/// log_sink::enabled (new virtual functions at the end of classes the kernel implements: a 4.4
/// plugin is never loaded by an older kernel, and older plugins never call them).
inline constexpr std::uint16_t abi_major = 4;
inline constexpr std::uint16_t abi_minor = 4;

/// The SDK passes C++ objects (std::string, shared_ptr, Asio executors) across the boundary, so
/// both sides must agree on the C++ runtime and Boost. Checked on load.
struct toolchain_id {
    std::uint32_t boost_version;
    std::uint32_t cxx_runtime; ///< __GLIBCXX__ date, or 0 for another runtime.
    std::uint32_t cxx_abi;     ///< _GLIBCXX_USE_CXX11_ABI.
    std::uint32_t pointer_size;

    friend bool operator==(const toolchain_id&, const toolchain_id&) = default;
};

constexpr toolchain_id this_toolchain() noexcept {
    return toolchain_id{BOOST_VERSION,
#ifdef __GLIBCXX__
                        __GLIBCXX__,
#else
                        0,
#endif
#ifdef _GLIBCXX_USE_CXX11_ABI
                        _GLIBCXX_USE_CXX11_ABI,
#else
                        0,
#endif
                        sizeof(void*)};
}

struct layer_descriptor {
    const char* name;    ///< Unique among loaded plugins: "tcp", "framer", ...
    const char* summary; ///< One line for `post plugins`.
    edge upper;          ///< What it offers to the layer above.
    edge lower;          ///< What it needs below (`none` for a bottom layer).
    const feature_entry* features;
    std::size_t feature_count;
    const option_spec* options;
    std::size_t option_count;
    /// Create a configured instance. Return nullptr and fill `err` on failure; never throw.
    std::unique_ptr<layer> (*create)(const layer_context& ctx, flow_error& err) noexcept;
};

struct plugin_descriptor {
    std::uint32_t magic = plugin_magic;
    std::uint16_t abi_major = post::sdk::abi_major;
    std::uint16_t abi_minor = post::sdk::abi_minor;
    std::uint32_t descriptor_size = sizeof(plugin_descriptor);
    toolchain_id toolchain = this_toolchain();
    const char* name = nullptr;
    const char* version = nullptr;
    const char* license = nullptr;
    const char* description = nullptr;
    const layer_descriptor* layers = nullptr;
    std::size_t layer_count = 0;
    const void* reserved[8] = {}; ///< Room for additions within a major version.
};

} // namespace post::sdk

/// Export a plugin's descriptor. Use once per shared object, at namespace scope:
///   POST_PLUGIN(my_plugin, descriptor)
/// When POST_PLUGIN_STATIC is defined (static builds: tests, sanitizers), only the named
/// accessor `post_plugin_<id>()` is defined, for post::context::add_static_plugin.
#ifdef POST_PLUGIN_STATIC
#define POST_PLUGIN(id, descriptor)                                                                \
    const ::post::sdk::plugin_descriptor* post_plugin_##id() noexcept {                            \
        return &(descriptor);                                                                      \
    }
#else
#include <boost/dll/alias.hpp>
#define POST_PLUGIN(id, descriptor)                                                                \
    const ::post::sdk::plugin_descriptor* post_plugin_##id() noexcept {                            \
        return &(descriptor);                                                                      \
    }                                                                                              \
    BOOST_DLL_ALIAS(post_plugin_##id, post_plugin_descriptor)
#endif
