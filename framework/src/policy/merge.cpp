// Merging the host's system policy over an application policy.
#include "detail.hpp"

#include <algorithm>

namespace post {

namespace {

void add_missing(std::vector<std::string>& into, const std::vector<std::string>& from) {
    for (const auto& name : from)
        if (std::find(into.begin(), into.end(), name) == into.end()) into.push_back(name);
}

void remove_all(std::vector<std::string>& from, const std::vector<std::string>& names) {
    std::erase_if(from, [&](const std::string& n) {
        return std::find(names.begin(), names.end(), n) != names.end();
    });
}

interface_rules merge_interfaces(const interface_rules& system, const interface_rules& app) {
    // The host's hard rules bind; its soft ones only apply where the application said nothing.
    interface_rules out = app;
    add_missing(out.require, system.require);
    add_missing(out.prohibit, system.prohibit);
    remove_all(out.prefer, system.prohibit);
    remove_all(out.require, system.prohibit);
    if (out.prefer.empty() && out.avoid.empty()) {
        out.prefer = system.prefer;
        out.avoid = system.avoid;
    }
    return out;
}

} // namespace

merged_policy merge(const policy& system, const policy& application) {
    merged_policy m;
    m.effective = application;
    auto& selection = m.effective.selection;

    for (const auto& [property, rule] : system.selection) {
        auto app = selection.find(property);
        bool hard = rule.level == preference::require || rule.level == preference::prohibit;
        if (app == selection.end()) {
            selection[property] = rule;
        } else if (hard && app->second.level != rule.level) {
            m.overridden[property] = app->second;
            app->second = rule;
        }
    }

    if (system.interfaces) {
        m.effective.interfaces = application.interfaces
                                     ? merge_interfaces(*system.interfaces, *application.interfaces)
                                     : system.interfaces;
    }

    // System protocol options are host defaults: the application's own value wins.
    for (const auto& [layer, options] : system.protocols) {
        auto& app_options = m.effective.protocols[layer];
        for (const auto& [name, value] : options)
            app_options.emplace(name, value);
    }
    return m;
}

} // namespace post
