// Policy documents (docs/policy.md): YAML text -> post::policy, checking the document's own
// structure. Whether the layers and options exist is checked later against the plugins.
#include "detail.hpp"

#include <algorithm>

namespace post {

namespace {

using namespace policy_detail;

const std::vector<std::string_view> top_keys{"version", "name",      "description", "selection",
                                             "stacks",  "protocols", "racing",      "connection"};
const std::vector<std::string_view> racing_keys{"attempt-delay", "resolution-delay",
                                                "stack-delay",   "prefer-family",
                                                "max-attempts",  "history-expiry"};
const std::vector<std::string_view> connection_keys{
    "timeout", "keep-alive", "max-message-size", "dormant", "max-connections", "direction"};
const std::vector<std::string_view> interface_keys{"require", "prefer", "avoid", "prohibit"};

std::vector<std::string_view> selection_keys() {
    std::vector<std::string_view> keys(sdk::known_features.begin(), sdk::known_features.end());
    keys.push_back("interface");
    return keys;
}

void parse_version(const YAML::Node& node, diagnostics_sink& sink) {
    auto text = expect_scalar(node, "version", sink);
    if (!text) return;
    auto v = parse_integer(*text);
    if (!v) {
        sink.error(node, "version must be the integer 1, got " + describe(node));
    } else if (*v != 1) {
        sink.error(node, "unsupported policy version " + std::to_string(*v) +
                             "; this library reads version 1");
    }
}

std::optional<std::chrono::milliseconds> duration_value(const map_entry& e, std::string_view ctx,
                                                        diagnostics_sink& sink) {
    auto what = std::string(ctx) + "." + e.name;
    auto text = expect_scalar(e.value, what, sink);
    if (!text) return std::nullopt;
    auto d = parse_duration(*text);
    if (!d)
        sink.error(e.value, "bad duration '" + *text + "' for " + what +
                                "; write a number with a unit: 1500us, 250ms, 10s, 2m, 1h");
    return d;
}

void parse_interfaces(const map_entry& entry, policy& p, diagnostics_sink& sink) {
    interface_rules rules;
    rules.where = sink.at(entry.key);
    for (const auto& e : checked_map(entry.value, "selection.interface", interface_keys, sink)) {
        auto list = expect_scalar_list(e.value, "selection.interface." + e.name, sink);
        if (!list) continue;
        if (e.name == "require")
            rules.require = *list;
        else if (e.name == "prefer")
            rules.prefer = *list;
        else if (e.name == "avoid")
            rules.avoid = *list;
        else
            rules.prohibit = *list;
    }
    p.interfaces = std::move(rules);
}

void parse_selection(const YAML::Node& node, policy& p, diagnostics_sink& sink) {
    for (const auto& e : checked_map(node, "selection", selection_keys(), sink)) {
        if (e.name == "interface") {
            parse_interfaces(e, p, sink);
            continue;
        }
        auto text = expect_scalar(e.value, "selection." + e.name, sink);
        if (!text) continue;
        auto level = parse_preference(*text);
        if (!level) {
            sink.error(e.value, "unknown preference level '" + *text + "' for " + e.name +
                                    "; expected require, prefer, no-preference, avoid or "
                                    "prohibit" +
                                    did_you_mean(*text, preference_names()));
            continue;
        }
        p.selection[e.name] = selection_rule{e.name, *level, sink.at(e.key)};
    }
}

void parse_stacks(const YAML::Node& node, policy& p, diagnostics_sink& sink) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
        sink.error(node, "stacks must be a list of stacks, each a list of layers top first "
                         "(e.g. [framer, tcp]), got " +
                             describe(node));
        return;
    }
    // Limits far beyond any real policy keep the selection work bounded on hostile input.
    constexpr std::size_t max_stacks = 64, max_layers = 16;
    if (node.size() > max_stacks) {
        sink.error(node, "too many stacks (" + std::to_string(node.size()) + "); at most " +
                             std::to_string(max_stacks) + " are allowed");
        return;
    }
    for (const auto& item : node) {
        if (item.IsSequence() && item.size() > max_layers) {
            sink.error(item, "a stack of " + std::to_string(item.size()) +
                                 " layers is too deep; at most " + std::to_string(max_layers) +
                                 " are allowed");
            continue;
        }
        if (!item.IsSequence()) {
            sink.error(item, "each stack must be a list of layer names top first "
                             "(e.g. [framer, tcp]), got " +
                                 describe(item));
            continue;
        }
        stack_spec spec;
        spec.where = sink.at(item);
        bool ok = true;
        for (const auto& layer : item) {
            if (!layer.IsScalar() || layer.Scalar().empty()) {
                sink.error(layer, "a layer in a stack must be a name, got " + describe(layer));
                ok = false;
                continue;
            }
            spec.layers.push_back(layer.Scalar());
        }
        if (ok && spec.layers.empty()) {
            sink.error(item, "a stack needs at least one layer");
            ok = false;
        }
        if (ok) p.stacks.push_back(std::move(spec));
    }
}

void parse_protocols(const YAML::Node& node, policy& p, diagnostics_sink& sink) {
    for (const auto& layer : checked_map(node, "protocols", {}, sink)) {
        auto context = "protocols." + layer.name;
        auto& options = p.protocols[layer.name];
        for (const auto& opt : checked_map(layer.value, context, {}, sink)) {
            raw_option raw;
            raw.where = sink.at(opt.value.IsNull() ? opt.key : opt.value);
            auto what = context + "." + opt.name;
            if (opt.value.IsScalar()) {
                raw.value = opt.value.Scalar();
            } else if (opt.value.IsSequence()) {
                auto list = expect_scalar_list(opt.value, what, sink);
                if (!list) continue;
                raw.value = std::move(*list);
            } else {
                sink.error(raw.where, "option " + what +
                                          " must be a value or a list of values, got " +
                                          describe(opt.value));
                continue;
            }
            options[opt.name] = std::move(raw);
        }
    }
}

void parse_racing(const YAML::Node& node, policy& p, diagnostics_sink& sink) {
    auto& r = p.racing;
    for (const auto& e : checked_map(node, "racing", racing_keys, sink)) {
        if (e.name == "attempt-delay") {
            if (auto d = duration_value(e, "racing", sink)) r.attempt_delay = *d;
        } else if (e.name == "resolution-delay") {
            if (auto d = duration_value(e, "racing", sink)) r.resolution_delay = *d;
        } else if (e.name == "stack-delay") {
            if (auto d = duration_value(e, "racing", sink)) r.stack_delay = *d;
        } else if (e.name == "history-expiry") {
            if (auto d = duration_value(e, "racing", sink)) r.history_expiry = *d;
        } else if (e.name == "prefer-family") {
            auto text = expect_scalar(e.value, "racing.prefer-family", sink);
            if (!text) continue;
            if (*text == "ipv4")
                r.prefer_family = address_family::ipv4;
            else if (*text == "ipv6")
                r.prefer_family = address_family::ipv6;
            else if (*text == "any")
                r.prefer_family = address_family::any;
            else
                sink.error(e.value, "racing.prefer-family must be ipv4, ipv6 or any, got '" +
                                        *text + "'" + did_you_mean(*text, {"ipv4", "ipv6", "any"}));
        } else { // max-attempts
            auto text = expect_scalar(e.value, "racing.max-attempts", sink);
            if (!text) continue;
            auto n = parse_integer(*text);
            if (!n || *n < 1 || *n > 64)
                sink.error(e.value, "racing.max-attempts must be an integer from 1 to 64, got " +
                                        describe(e.value));
            else
                r.max_attempts = static_cast<int>(*n);
        }
    }
}

void parse_connection(const YAML::Node& node, policy& p, diagnostics_sink& sink) {
    auto& c = p.connection;
    for (const auto& e : checked_map(node, "connection", connection_keys, sink)) {
        if (e.name == "timeout") {
            if (auto d = duration_value(e, "connection", sink)) {
                if (d->count() <= 0)
                    sink.error(e.value, "connection.timeout must be longer than 0");
                else
                    c.timeout = *d;
            }
        } else if (e.name == "keep-alive") {
            // "off" keeps keep-alive disabled explicitly; a duration sets its interval.
            if (e.value.IsScalar()) {
                auto off = parse_boolean(e.value.Scalar());
                if (off && !*off) {
                    c.keep_alive.reset();
                    continue;
                }
            }
            if (auto d = duration_value(e, "connection", sink)) {
                if (d->count() <= 0)
                    sink.error(e.value, "connection.keep-alive must be longer than 0 (or off)");
                else
                    c.keep_alive = *d;
            }
        } else if (e.name == "max-connections") {
            auto text = expect_scalar(e.value, "connection.max-connections", sink);
            if (!text) continue;
            auto n = parse_integer(*text);
            if (!n || *n < 1 || *n > 1000000)
                sink.error(e.value,
                           "connection.max-connections must be an integer from 1 to 1000000, got " +
                               describe(e.value));
            else
                c.max_connections = static_cast<std::size_t>(*n);
        } else if (e.name == "direction") {
            auto text = expect_scalar(e.value, "connection.direction", sink);
            if (!text) continue;
            // The policy's names are the SDK's own (sdk::to_string(flow_direction)).
            std::vector<std::string_view> names;
            bool known = false;
            for (auto d : {sdk::flow_direction::bidirectional, sdk::flow_direction::send_only,
                           sdk::flow_direction::receive_only}) {
                names.push_back(sdk::to_string(d));
                if (*text == names.back()) {
                    c.direction = d;
                    known = true;
                }
            }
            if (!known)
                sink.error(e.value, "connection.direction must be bidirectional, "
                                    "unidirectional-send or unidirectional-receive, got '" +
                                        *text + "'" + did_you_mean(*text, names));
        } else if (e.name == "dormant") {
            auto text = expect_scalar(e.value, "connection.dormant", sink);
            if (!text) continue;
            if (auto b = parse_boolean(*text))
                c.dormant = *b;
            else
                sink.error(e.value,
                           "connection.dormant must be true or false, got '" + *text + "'");
        } else { // max-message-size
            auto text = expect_scalar(e.value, "connection.max-message-size", sink);
            if (!text) continue;
            auto n = parse_size(*text);
            if (!n || *n <= 0)
                sink.error(e.value, "connection.max-message-size must be a positive number of "
                                    "bytes (suffixes KiB, MiB, GiB allowed), got '" +
                                        *text + "'");
            else
                c.max_message_size = static_cast<std::size_t>(*n);
        }
    }
}

} // namespace

policy policy::parse(std::string_view yaml, std::string file_name) {
    auto root = load_yaml(yaml, file_name);
    diagnostics_sink sink(file_name);
    policy p;
    p.where = {file_name, 1, 1};
    if (!file_name.empty() && file_name.front() != '<')
        p.name = std::filesystem::path(file_name).stem().string();

    if (root.IsNull()) {
        sink.error(p.where, "the policy is empty; it needs at least 'version: 1'");
        sink.throw_if_errors();
    }
    if (!root.IsMap()) {
        sink.error(root, "a policy must be a mapping of keys (version, name, selection, ...), "
                         "got " +
                             describe(root));
        sink.throw_if_errors();
    }
    p.where = sink.at(root);

    bool has_version = false;
    for (const auto& e : checked_map(root, "policy", top_keys, sink)) {
        if (e.name == "version") {
            has_version = true;
            parse_version(e.value, sink);
        } else if (e.name == "name") {
            if (auto s = expect_scalar(e.value, "name", sink)) p.name = *s;
        } else if (e.name == "description") {
            if (auto s = expect_scalar(e.value, "description", sink)) p.description = *s;
        } else if (e.name == "selection") {
            parse_selection(e.value, p, sink);
        } else if (e.name == "stacks") {
            parse_stacks(e.value, p, sink);
        } else if (e.name == "protocols") {
            parse_protocols(e.value, p, sink);
        } else if (e.name == "racing") {
            parse_racing(e.value, p, sink);
        } else if (e.name == "connection") {
            parse_connection(e.value, p, sink);
        }
    }
    if (!has_version)
        sink.error(p.where, "missing 'version: 1' (the policy format version) in policy");
    sink.throw_if_errors();
    return p;
}

policy policy::load_file(const std::filesystem::path& file) {
    return parse(read_file_text(file), file.string());
}

policy policy::defaults() {
    // A reliable, ordered, congestion-controlled message transport, like a TCP connection that
    // keeps message boundaries; the stacks are derived from whatever layers are loaded.
    policy p;
    p.name = "default";
    p.description = "Reliable, ordered messages; stacks derived from the loaded layers.";
    p.where = {"<built-in default policy>", 0, 0};
    auto rule = [&](const char* property, preference level) {
        p.selection[property] = selection_rule{property, level, p.where};
    };
    rule("reliability", preference::require);
    rule("preserve-msg-boundaries", preference::require);
    rule("preserve-order", preference::require);
    rule("congestion-control", preference::require);
    // No multistreaming preference: it would rank SCTP over UDP (and later QUIC) ahead of TCP
    // for every peer, and most peers answer neither (policies/default.yaml says more).
    return p;
}

} // namespace post
