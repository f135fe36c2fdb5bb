// Fuzz the plugin descriptor checks: a descriptor whose fields (versions, sizes, names,
// edges, features, options, layer counts) come from the input must be admitted or refused
// with a reason, never crash the loader.
#include <post/plugin_registry.hpp>

#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct reader {
    const std::uint8_t* p;
    std::size_t n;
    std::uint8_t byte() {
        if (!n) return 0;
        --n;
        return *p++;
    }
    std::string text() {
        std::string s(byte() % 24, '\0');
        for (auto& c : s)
            c = static_cast<char>(byte());
        return s;
    }
};

std::unique_ptr<post::sdk::layer> create(const post::sdk::layer_context&,
                                         post::sdk::flow_error&) noexcept {
    return nullptr;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    reader in{data, size};
    post::sdk::plugin_descriptor d;
    if (in.byte() & 1) d.magic ^= in.byte();
    if (in.byte() & 1) d.abi_major = in.byte();
    if (in.byte() & 1) d.abi_minor = in.byte();
    if (in.byte() & 1) d.descriptor_size = in.byte();
    if (in.byte() & 1) d.toolchain.boost_version = in.byte();
    std::string name = in.text();
    d.name = (in.byte() & 1) ? nullptr : name.c_str();
    d.version = "1";

    const std::size_t layer_count = in.byte() % 5;
    std::vector<std::string> names(layer_count), feature_names(layer_count * 3),
        option_names(layer_count * 2);
    std::vector<post::sdk::feature_entry> features(layer_count * 3);
    std::vector<post::sdk::option_spec> options(layer_count * 2);
    std::vector<post::sdk::layer_descriptor> layers(layer_count);
    for (std::size_t i = 0; i < layer_count; ++i) {
        names[i] = in.text();
        auto& l = layers[i];
        l.name = (in.byte() & 3) ? names[i].c_str() : nullptr;
        l.summary = nullptr;
        l.upper = static_cast<post::sdk::edge>(in.byte() % 6);
        l.lower = static_cast<post::sdk::edge>(in.byte() % 6);
        l.feature_count = in.byte() % 4;
        for (std::size_t f = 0; f < l.feature_count; ++f) {
            auto k = i * 3 + f % 3;
            feature_names[k] =
                (in.byte() & 1)
                    ? std::string(
                          post::sdk::known_features[in.byte() % post::sdk::known_features.size()])
                    : in.text();
            features[k] = {feature_names[k].c_str(),
                           static_cast<post::sdk::feature_effect>(in.byte() % 4)};
        }
        l.feature_count = std::min<std::size_t>(l.feature_count, 3);
        l.features = &features[i * 3];
        l.option_count = in.byte() % 3;
        for (std::size_t o = 0; o < l.option_count; ++o) {
            option_names[i * 2 + o] = in.text();
            options[i * 2 + o] = {(in.byte() & 1) ? option_names[i * 2 + o].c_str() : nullptr,
                                  post::sdk::option_type::integer, "", "0"};
        }
        l.options = &options[i * 2];
        l.create = (in.byte() & 7) ? &create : nullptr;
    }
    d.layers = layer_count ? layers.data() : nullptr;
    d.layer_count = (in.byte() & 1) ? layer_count : in.byte();
    if (d.layer_count > layer_count) d.layer_count = layer_count; // the array's real length

    post::plugin_registry r;
    bool admitted = r.add_static(&d);
    if (admitted != r.refused().empty()) std::abort();
    if (!admitted && r.refused().back().reason.empty()) std::abort();
    if (admitted && r.catalog().size() != d.layer_count) std::abort();
    return 0;
}
