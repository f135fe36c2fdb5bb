// Per-layer options: giving the text a policy wrote the type the layer's schema declares.
#include "detail.hpp"

#include <algorithm>

namespace post {

namespace policy_detail {

namespace {

std::string_view type_name(sdk::option_type t) {
    switch (t) {
    case sdk::option_type::boolean:
        return "a boolean (true or false)";
    case sdk::option_type::integer:
        return "an integer";
    case sdk::option_type::string:
        return "a string";
    case sdk::option_type::duration:
        return "a duration (e.g. 250ms, 10s)";
    case sdk::option_type::string_list:
        return "a list of strings";
    }
    return "?";
}

} // namespace

std::optional<sdk::option_value> convert_option(const sdk::option_spec& spec, const raw_option& raw,
                                                std::string& problem) {
    auto* text = std::get_if<std::string>(&raw.value);
    if (spec.type == sdk::option_type::string_list) {
        if (text) return std::vector<std::string>{*text};
        return std::get<std::vector<std::string>>(raw.value);
    }
    if (!text) {
        problem = std::string("expected ") + std::string(type_name(spec.type)) + ", got a list";
        return std::nullopt;
    }
    auto got = [&] {
        return std::string("expected ") + std::string(type_name(spec.type)) + ", got '" + *text +
               "'";
    };
    switch (spec.type) {
    case sdk::option_type::boolean:
        if (auto b = parse_boolean(*text)) return *b;
        problem = got();
        return std::nullopt;
    case sdk::option_type::integer: {
        auto n = parse_size(*text);
        if (!n) {
            problem = got();
            return std::nullopt;
        }
        if (spec.min != spec.max && (*n < spec.min || *n > spec.max)) {
            problem = "value " + std::to_string(*n) + " is out of range [" +
                      std::to_string(spec.min) + ", " + std::to_string(spec.max) + "]";
            return std::nullopt;
        }
        return *n;
    }
    case sdk::option_type::string:
        return *text;
    case sdk::option_type::duration:
        if (auto d = parse_duration(*text)) return *d;
        problem = got();
        return std::nullopt;
    case sdk::option_type::string_list:
        break; // Handled above.
    }
    problem = "unsupported option type";
    return std::nullopt;
}

} // namespace policy_detail

sdk::options layer_options(const policy& p, const layer_info& layer) {
    using namespace policy_detail;
    diagnostics_sink sink(p.where.file);
    sdk::options out;
    std::vector<std::string_view> names;

    for (const auto& spec : layer.options) {
        if (!spec.name) continue;
        names.emplace_back(spec.name);
        if (!spec.default_value || !*spec.default_value) continue;
        raw_option def{std::string(spec.default_value), {}};
        std::string problem;
        if (auto v = convert_option(spec, def, problem)) {
            out.set(spec.name, std::move(*v));
        } else {
            // A plugin bug, but the operator still deserves to know which plugin.
            sink.error({"<plugin " + layer.plugin + ">", 0, 0},
                       "layer " + layer.name + " declares a bad default for option " + spec.name +
                           ": " + problem);
        }
    }

    auto configured = p.protocols.find(layer.name);
    if (configured != p.protocols.end()) {
        for (const auto& entry : configured->second) {
            const auto& [name, raw] = entry;
            // (A lambda may not capture a structured binding before C++20 in clang 14.)
            auto spec = std::find_if(
                layer.options.begin(), layer.options.end(),
                [&entry](const sdk::option_spec& s) { return s.name && entry.first == s.name; });
            if (spec == layer.options.end()) {
                auto hint = did_you_mean(name, names);
                if (hint.empty()) {
                    std::vector<std::string> all(names.begin(), names.end());
                    hint = all.empty() ? "; it takes no options"
                                       : "; its options are: " + join(all, ", ");
                }
                sink.error(raw.where,
                           "unknown option '" + name + "' for layer " + layer.name + hint);
                continue;
            }
            std::string problem;
            if (auto v = convert_option(*spec, raw, problem))
                out.set(name, std::move(*v));
            else
                sink.error(raw.where, "option " + layer.name + "." + name + ": " + problem);
        }
    }
    sink.throw_if_errors();
    return out;
}

} // namespace post
