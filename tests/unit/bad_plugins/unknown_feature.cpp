// A plugin whose layer declares a feature the kernel does not know.
#include <post/sdk.hpp>

namespace {
std::unique_ptr<post::sdk::layer> create(const post::sdk::layer_context&,
                                         post::sdk::flow_error&) noexcept {
    return nullptr;
}
const post::sdk::feature_entry features[] = {
    {"teleportation", post::sdk::feature_effect::provides},
};
const post::sdk::layer_descriptor layers[] = {
    {"odd", "declares an unknown feature", post::sdk::edge::message, post::sdk::edge::stream,
     features, 1, nullptr, 0, &create},
};
const post::sdk::plugin_descriptor descriptor = [] {
    post::sdk::plugin_descriptor d;
    d.name = "odd";
    d.version = "1.0";
    d.layers = layers;
    d.layer_count = 1;
    return d;
}();
} // namespace

POST_PLUGIN(odd, descriptor)
