// A plugin that claims an ABI major version the kernel does not speak: must be refused with
// both versions named.
#include <post/sdk.hpp>

namespace {
std::unique_ptr<post::sdk::layer> create(const post::sdk::layer_context&,
                                         post::sdk::flow_error&) noexcept {
    return nullptr;
}
const post::sdk::layer_descriptor layers[] = {
    {"future-layer", "from the future", post::sdk::edge::message, post::sdk::edge::stream, nullptr,
     0, nullptr, 0, &create},
};
post::sdk::plugin_descriptor make() {
    post::sdk::plugin_descriptor d;
    d.abi_major = post::sdk::abi_major + 98;
    d.name = "wrong-abi";
    d.version = "9.9";
    d.layers = layers;
    d.layer_count = 1;
    return d;
}
const post::sdk::plugin_descriptor descriptor = make();
} // namespace

POST_PLUGIN(wrong_abi, descriptor)
