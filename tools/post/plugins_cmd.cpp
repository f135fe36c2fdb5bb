// `post plugins`: what the kernel loaded (and refused) with the current host configuration and
// POST_PLUGIN_PATH, so operators can see why a stack is or is not available.
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

namespace post_tool {
namespace {

std::string_view type_name(post::sdk::option_type t) {
    switch (t) {
    case post::sdk::option_type::boolean:
        return "boolean";
    case post::sdk::option_type::integer:
        return "integer";
    case post::sdk::option_type::string:
        return "string";
    case post::sdk::option_type::duration:
        return "duration";
    case post::sdk::option_type::string_list:
        return "string list";
    }
    return "?";
}

std::string_view effect_name(post::sdk::feature_effect e) {
    return e == post::sdk::feature_effect::provides ? "provides" : "removes";
}

nlohmann::json layer_json(const post::layer_info& l) {
    nlohmann::json features = nlohmann::json::object();
    for (const auto& [name, effect] : l.features)
        features[name] = effect_name(effect);
    nlohmann::json options = nlohmann::json::array();
    for (const auto& o : l.options) {
        nlohmann::json j{{"name", o.name ? o.name : ""},
                         {"type", type_name(o.type)},
                         {"description", o.description ? o.description : ""},
                         {"default", o.default_value ? o.default_value : ""}};
        if (o.type == post::sdk::option_type::integer && o.min != o.max) {
            j["min"] = o.min;
            j["max"] = o.max;
        }
        options.push_back(std::move(j));
    }
    return {{"name", l.name},
            {"summary", l.summary},
            {"upper", post::sdk::to_string(l.upper)},
            {"lower", post::sdk::to_string(l.lower)},
            {"features", features},
            {"options", options}};
}

void print_text(const post::context& ctx, const post::plugin_registry& reg) {
    const auto& cfg = ctx.config();
    out_line(fmt::format("host configuration: {}", cfg.file.empty()
                                                       ? std::string("(built-in defaults)")
                                                       : cfg.file.string()));
    for (const auto& dir : cfg.plugin_path)
        out_line(fmt::format("plugin path: {}", dir.string()));

    out_line(fmt::format("loaded plugins: {} (in {:.2f} ms)", reg.plugins().size(),
                         reg.load_time().count() / 1000.0));
    for (const auto& p : reg.plugins()) {
        out_line(fmt::format("  {} {} (ABI {}.{}, {}) {}", p.name, p.version, p.abi_major,
                             p.abi_minor, p.license.empty() ? "no licence given" : p.license,
                             p.file.empty() ? std::string("[static]") : p.file.string()));
        if (!p.description.empty()) out_line(fmt::format("    {}", p.description));
        for (const auto& l : p.layers) {
            out_line(fmt::format("    layer {}: {} over {}{}{}", l.name,
                                 post::sdk::to_string(l.upper), post::sdk::to_string(l.lower),
                                 l.summary.empty() ? "" : " - ", l.summary));
            std::string provides, removes;
            for (const auto& [name, effect] : l.features) {
                auto& list = effect == post::sdk::feature_effect::provides ? provides : removes;
                list += (list.empty() ? "" : ", ") + name;
            }
            if (!provides.empty()) out_line(fmt::format("      provides: {}", provides));
            if (!removes.empty()) out_line(fmt::format("      removes: {}", removes));
            for (const auto& o : l.options)
                out_line(fmt::format("      option {} ({}, default {}){}{}", o.name ? o.name : "?",
                                     type_name(o.type),
                                     o.default_value && *o.default_value ? o.default_value : "none",
                                     o.description ? ": " : "",
                                     o.description ? o.description : ""));
        }
    }
    out_line(fmt::format("refused plugins: {}", reg.refused().size()));
    for (const auto& r : reg.refused())
        out_line(fmt::format("  {}: {}", r.file.string(), r.reason));
}

nlohmann::json to_json(const post::context& ctx, const post::plugin_registry& reg) {
    nlohmann::json plugins = nlohmann::json::array();
    for (const auto& p : reg.plugins()) {
        nlohmann::json layers = nlohmann::json::array();
        for (const auto& l : p.layers)
            layers.push_back(layer_json(l));
        plugins.push_back({{"file", p.file.string()},
                           {"name", p.name},
                           {"version", p.version},
                           {"license", p.license},
                           {"description", p.description},
                           {"abi", {{"major", p.abi_major}, {"minor", p.abi_minor}}},
                           {"layers", layers}});
    }
    nlohmann::json refused = nlohmann::json::array();
    for (const auto& r : reg.refused())
        refused.push_back({{"file", r.file.string()}, {"reason", r.reason}});
    nlohmann::json path = nlohmann::json::array();
    for (const auto& dir : ctx.config().plugin_path)
        path.push_back(dir.string());
    return {{"config", ctx.config().file.string()},
            {"plugin_path", path},
            {"plugins", plugins},
            {"refused", refused},
            {"load_time_ms", reg.load_time().count() / 1000.0}};
}

int run_plugins(const global_options& g, bool json) {
    boost::asio::io_context io;
    post::context ctx(io, context_options_for(g));
    auto& reg = ctx.plugins();
    if (json)
        out_line(to_json(ctx, reg).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    else
        print_text(ctx, reg);
    return 0;
}

} // namespace

void add_plugins(CLI::App& app, const global_options& g, runner& run) {
    auto json = std::make_shared<bool>(false);
    auto* p = app.add_subcommand("plugins", "List loaded and refused protocol plugins");
    p->fallthrough();
    p->add_flag("--json", *json, "Print one JSON document");
    p->callback([&g, &run, json] { run = [&g, json] { return run_plugins(g, *json); }; });
}

} // namespace post_tool
