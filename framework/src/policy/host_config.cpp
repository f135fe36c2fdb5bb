// The host configuration file (config/post.yaml): plugin search path, plugins to load, the
// system policy and the log level.
#include "detail.hpp"

#include <post/config.hpp>

#include <algorithm>

namespace post {

namespace {

using namespace policy_detail;

const std::vector<std::string_view> top_keys{"version", "plugins", "system-policy", "log"};
const std::vector<std::string_view> plugin_keys{"path", "load"};
const std::vector<std::string_view> log_keys{"level"};
const std::vector<std::string_view> log_levels{"trace", "debug", "info", "warning", "error"};

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& entry) {
    std::filesystem::path p(entry);
    if (p.is_relative()) p = base / p;
    return p.lexically_normal();
}

} // namespace

host_config host_config::parse(std::string_view yaml, const std::filesystem::path& file) {
    const std::string file_name = file.empty() ? std::string("<string>") : file.string();
    // Relative entries are relative to the file, so a tree can move as a whole.
    std::error_code ec;
    auto base = file.empty() ? std::filesystem::current_path(ec)
                             : std::filesystem::absolute(file, ec).parent_path();
    if (ec) base = file.parent_path();

    auto root = load_yaml(yaml, file_name);
    diagnostics_sink sink(file_name);
    host_config config;
    config.file = file;

    if (root.IsNull()) {
        sink.error({file_name, 1, 1}, "the configuration is empty; it needs at least 'version: 1'");
        sink.throw_if_errors();
    }
    if (!root.IsMap()) {
        sink.error(root, "the configuration must be a mapping of keys (version, plugins, "
                         "system-policy, log), got " +
                             describe(root));
        sink.throw_if_errors();
    }

    bool has_version = false;
    for (const auto& e : checked_map(root, "configuration", top_keys, sink)) {
        if (e.name == "version") {
            has_version = true;
            auto text = expect_scalar(e.value, "version", sink);
            if (!text) continue;
            auto v = parse_integer(*text);
            if (!v || *v != 1)
                sink.error(e.value, "unsupported configuration version " + describe(e.value) +
                                        "; this library reads version 1");
        } else if (e.name == "plugins") {
            for (const auto& p : checked_map(e.value, "plugins", plugin_keys, sink)) {
                auto list = expect_scalar_list(p.value, "plugins." + p.name, sink);
                if (!list) continue;
                if (p.name == "path") {
                    for (const auto& dir : *list) {
                        if (dir.empty()) {
                            sink.error(p.value, "plugins.path entries must not be empty");
                            continue;
                        }
                        config.plugin_path.push_back(resolve(base, dir));
                    }
                } else {
                    config.load = *list;
                }
            }
        } else if (e.name == "system-policy") {
            auto text = expect_scalar(e.value, "system-policy", sink);
            if (!text) continue;
            if (text->empty()) {
                sink.error(e.value, "system-policy must name a policy file");
                continue;
            }
            auto policy_file = resolve(base, *text);
            std::error_code stat_error;
            if (!std::filesystem::is_regular_file(policy_file, stat_error)) {
                sink.error(e.value, "system policy file " + policy_file.string() + " not found");
                continue;
            }
            try {
                config.system_policy = policy::load_file(policy_file);
            } catch (const policy_error& err) {
                sink.append(err.diagnostics());
            }
        } else if (e.name == "log") {
            for (const auto& l : checked_map(e.value, "log", log_keys, sink)) {
                auto level = expect_scalar(l.value, "log.level", sink);
                if (!level) continue;
                if (std::find(log_levels.begin(), log_levels.end(), *level) == log_levels.end())
                    sink.error(l.value, "unknown log level '" + *level +
                                            "'; expected trace, debug, info, warning or error" +
                                            did_you_mean(*level, log_levels));
                else
                    config.log_level = *level;
            }
        }
    }
    if (!has_version)
        sink.error(sink.at(root), "missing 'version: 1' (the configuration format version)");
    sink.throw_if_errors();
    return config;
}

host_config host_config::load_file(const std::filesystem::path& file) {
    return parse(read_file_text(file), file);
}

} // namespace post
