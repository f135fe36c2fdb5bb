// From a merged policy and the loaded layers to ranked candidate stacks: stack structure
// checks, feature composition, derivation of stacks, filtering, ranking and explanations.
#include "detail.hpp"

#include <algorithm>
#include <set>

namespace post {

namespace {

using namespace policy_detail;

constexpr std::size_t max_derived_depth = 4;

const layer_info* find_layer(const std::vector<layer_info>& catalog, std::string_view name) {
    for (const auto& l : catalog)
        if (l.name == name) return &l;
    return nullptr;
}

bool offers_messages(sdk::edge e) {
    return e == sdk::edge::message || e == sdk::edge::datagram;
}

/// What the top of a stack must offer: messages or datagrams for a message carrier, a byte
/// stream for a carrier that will be morphed into a post::stream.
bool acceptable_top(sdk::edge e, bool stream_top) {
    return stream_top ? e == sdk::edge::stream : offers_messages(e);
}

/// The rule that a byte stream cannot honour by its nature: it is left out of the selection of
/// stream stacks instead of excluding every one of them.
constexpr std::string_view boundaries_feature = "preserve-msg-boundaries";

std::string edge_name(sdk::edge e) {
    return std::string(sdk::to_string(e));
}

/// Everything wrong with how the loaded layers of a stack fit together. Pairs involving a
/// layer that is not loaded cannot be judged and are skipped.
std::vector<std::string> structure_problems(const std::vector<std::string>& layers,
                                            const std::vector<layer_info>& catalog,
                                            bool stream_top) {
    std::vector<std::string> problems;
    for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
        auto* upper = find_layer(catalog, layers[i]);
        auto* lower = find_layer(catalog, layers[i + 1]);
        if (!upper || !lower) continue;
        if (upper->lower == sdk::edge::none) {
            problems.push_back(upper->name +
                               " talks to the operating system and must be the "
                               "bottom layer, but " +
                               lower->name + " is below it");
        } else if (upper->lower != lower->upper) {
            problems.push_back(upper->name + " needs a " + edge_name(upper->lower) +
                               " edge below it, but " + lower->name + " offers " +
                               edge_name(lower->upper));
        }
    }
    if (auto* bottom = layers.empty() ? nullptr : find_layer(catalog, layers.back());
        bottom && bottom->lower != sdk::edge::none) {
        problems.push_back(bottom->name + " needs a " + edge_name(bottom->lower) +
                           " edge below it, but it is the bottom layer");
    }
    if (auto* top = layers.empty() ? nullptr : find_layer(catalog, layers.front());
        top && stream_top && top->upper != sdk::edge::stream) {
        // A stream carrier's wire is the bytes of its top layer: a layer above the last
        // stream edge (a framer) would frame them, so the stack cannot carry a plain stream.
        problems.push_back("the top layer " + top->name + " offers a " + edge_name(top->upper) +
                           " edge, but a byte-stream carrier needs a stream edge at the top");
    } else if (top && !stream_top && !offers_messages(top->upper)) {
        std::string fix;
        for (const auto& l : catalog)
            if (l.lower == top->upper && offers_messages(l.upper)) {
                fix = "; put a layer such as '" + l.name + "' above it";
                break;
            }
        problems.push_back("the top layer " + top->name + " offers a " + edge_name(top->upper) +
                           " edge, but the top of a stack must offer messages or datagrams" + fix);
    }
    return problems;
}

bool provides_security(const layer_info& l) {
    auto it = l.features.find("security");
    return it != l.features.end() && it->second == sdk::feature_effect::provides;
}

/// Every stack the loaded layers can form: built bottom-up from layers that talk to the
/// operating system, each layer at most once, up to max_derived_depth layers, and at most one
/// layer that provides security: a derived stack never encrypts twice ([quic, dtls, udp] is not
/// a way through the network, only a slower [quic, udp]). A policy may still list such a stack.
void derive(std::vector<const layer_info*>& bottom_up, const std::vector<const layer_info*>& layers,
            bool stream_top, std::vector<std::vector<std::string>>& out) {
    const auto* top = bottom_up.back();
    if (acceptable_top(top->upper, stream_top)) {
        std::vector<std::string> names;
        for (auto it = bottom_up.rbegin(); it != bottom_up.rend(); ++it)
            names.push_back((*it)->name);
        out.push_back(std::move(names));
    }
    if (bottom_up.size() >= max_derived_depth || top->upper == sdk::edge::none) return;
    for (const auto* l : layers) {
        if (l->lower != top->upper) continue;
        if (std::find(bottom_up.begin(), bottom_up.end(), l) != bottom_up.end()) continue;
        if (provides_security(*l) &&
            std::any_of(bottom_up.begin(), bottom_up.end(),
                        [](const layer_info* b) { return provides_security(*b); }))
            continue;
        bottom_up.push_back(l);
        derive(bottom_up, layers, stream_top, out);
        bottom_up.pop_back();
    }
}

std::vector<std::vector<std::string>> derived_stacks(const std::vector<layer_info>& catalog,
                                                     bool stream_top) {
    // One entry per name (the first plugin to declare it wins), in name order so that the
    // result does not depend on plugin load order.
    std::vector<const layer_info*> layers;
    std::set<std::string> names;
    for (const auto& l : catalog)
        if (names.insert(l.name).second) layers.push_back(&l);
    std::sort(layers.begin(), layers.end(),
              [](const layer_info* a, const layer_info* b) { return a->name < b->name; });

    std::vector<std::vector<std::string>> out;
    for (const auto* l : layers) {
        if (l->lower != sdk::edge::none) continue;
        std::vector<const layer_info*> bottom_up{l};
        derive(bottom_up, layers, stream_top, out);
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        if (a.size() != b.size()) return a.size() < b.size();
        return a < b;
    });
    return out;
}

/// The layer that last changed a feature, bottom-up: the one responsible for its final state.
std::string responsible_layer(const std::vector<std::string>& stack, const std::string& feature,
                              const std::vector<layer_info>& catalog) {
    std::string who;
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
        auto* l = find_layer(catalog, *it);
        if (l && l->features.count(feature)) who = l->name;
    }
    return who;
}

struct evaluation {
    candidate_stack candidate;
    std::optional<std::string> exclusion;
    source_location rule;
};

evaluation evaluate(const std::vector<std::string>& layers, bool is_explicit, const policy& p,
                    const std::vector<layer_info>& catalog, const stack_constraint& constraint) {
    evaluation ev;
    ev.candidate.layers = layers;
    auto exclude = [&](std::string reason, source_location rule = {}) {
        if (!ev.exclusion) {
            ev.exclusion = std::move(reason);
            ev.rule = std::move(rule);
        }
    };

    std::vector<std::string_view> loaded;
    for (const auto& l : catalog)
        loaded.push_back(l.name);
    for (const auto& name : layers) {
        if (find_layer(catalog, name)) continue;
        std::string reason = "layer '" + name + "' is not loaded";
        // Layer names are short and alike (tcp, tls, udp): suggest only plausible typos, at most
        // two edits (a swap of neighbours counts as one) and fewer than half the name.
        std::string best;
        std::size_t best_distance = std::min<std::size_t>(3, (name.size() + 1) / 2);
        for (auto candidate : loaded) {
            auto d = edit_distance(name, candidate, true);
            if (d < best_distance) {
                best_distance = d;
                best = candidate;
            }
        }
        if (!best.empty()) reason += "; did you mean '" + best + "'?";
        exclude(std::move(reason));
    }
    if (is_explicit) {
        auto problems = structure_problems(layers, catalog, constraint.stream_top);
        if (!problems.empty()) exclude(problems.front());
    }
    for (const auto& needed : constraint.must_contain) {
        if (std::find(layers.begin(), layers.end(), needed) == layers.end())
            exclude("no " + needed + " layer, which " +
                    (constraint.origin.empty() ? std::string("the remote") : constraint.origin) +
                    " needs");
    }

    if (!constraint.must_contain_one_of.empty()) {
        auto has_all = [&](const std::vector<std::string>& set) {
            return std::all_of(set.begin(), set.end(), [&](const std::string& l) {
                return std::find(layers.begin(), layers.end(), l) != layers.end();
            });
        };
        if (std::none_of(constraint.must_contain_one_of.begin(),
                         constraint.must_contain_one_of.end(), has_all)) {
            std::string sets;
            for (const auto& set : constraint.must_contain_one_of) {
                std::string joined;
                for (const auto& l : set)
                    joined += (joined.empty() ? "" : " and ") + l;
                sets += (sets.empty() ? "" : ", or ") + joined;
            }
            exclude("no " + sets + " layers, which " +
                    (constraint.origin.empty() ? std::string("the remote") : constraint.origin) +
                    " needs");
        }
    }

    for (const auto& refused : constraint.must_not_contain) {
        if (std::find(layers.begin(), layers.end(), refused) != layers.end())
            exclude("has a " + refused + " layer, which " +
                    (constraint.origin.empty() ? std::string("the remote") : constraint.origin) +
                    " rules out");
    }

    ev.candidate.features = compose_features(layers, catalog);
    auto present = [&](const std::string& f) {
        auto it = ev.candidate.features.find(f);
        return it != ev.candidate.features.end() && it->second;
    };
    // Every broken rule is listed (an explanation should not hide the second problem), unless
    // the stack cannot be built at all, when its features mean nothing.
    const bool buildable = !ev.exclusion.has_value();
    std::vector<std::string> broken;
    source_location first_rule;
    auto broken_rule = [&](std::string reason, const source_location& where) {
        if (broken.empty()) first_rule = where;
        broken.push_back(std::move(reason));
    };
    for (const auto& [property, rule] : p.selection) {
        if (constraint.stream_top && property == boundaries_feature) {
            if (rule.level != preference::no_preference)
                ev.candidate.notes.push_back(std::string(to_string(rule.level)) + " " + property +
                                             ": not applicable to a byte stream");
            continue;
        }
        if (rule.level == preference::require && !present(property)) {
            auto who = responsible_layer(layers, property, catalog);
            broken_rule(
                "require " + property + ": " +
                    (who.empty() ? std::string("not provided by any layer") : "removed by " + who),
                rule.where);
        } else if (rule.level == preference::prohibit && present(property)) {
            broken_rule("prohibit " + property + ": provided by " +
                            responsible_layer(layers, property, catalog),
                        rule.where);
        } else if (rule.level == preference::prefer) {
            bool has = present(property);
            ev.candidate.score += has ? 1 : 0;
            ev.candidate.notes.push_back("prefers " + property + ": " +
                                         (has ? "present" : "absent"));
        } else if (rule.level == preference::avoid) {
            bool has = present(property);
            ev.candidate.score -= has ? 1 : 0;
            ev.candidate.notes.push_back("avoids " + property + ": " +
                                         (has ? "present" : "absent"));
        }
    }
    if (buildable && !broken.empty()) exclude(join(broken, "; "), first_rule);
    return ev;
}

/// Derived stacks race different ways through the network, not different framings of one
/// connection: two framers over the same lower stack ([framer, tcp] and [length-prefix, tcp])
/// would let the race pick a wire format the peer may not speak. Keep the best-ranked one; a
/// policy that wants another names it in `stacks:`.
void drop_alternative_framers(selection_result& result) {
    std::vector<candidate_stack> kept;
    for (auto& c : result.candidates) {
        const auto below = [](const candidate_stack& s) {
            return std::vector<std::string>(s.layers.begin() + 1, s.layers.end());
        };
        auto same = std::find_if(kept.begin(), kept.end(), [&](const candidate_stack& k) {
            return k.layers.size() == c.layers.size() && c.layers.size() > 1 &&
                   below(k) == below(c);
        });
        if (same == kept.end()) {
            kept.push_back(std::move(c));
        } else {
            result.excluded.push_back(
                {c.layers,
                 "the same connection as [" + join(same->layers, ", ") +
                     "], which ranks higher: derived stacks do not race two framings of one "
                     "connection (list it under stacks: to use it)",
                 {}});
        }
    }
    result.candidates = std::move(kept);
}

/// Selection without throwing; `origins` gets, per excluded stack, where the stack was
/// written (explicit stacks only).
selection_result run_selection(const policy& p, const std::vector<layer_info>& catalog,
                               const stack_constraint& constraint,
                               std::vector<source_location>* origins = nullptr) {
    selection_result result;
    auto consider = [&](const std::vector<std::string>& layers, bool is_explicit,
                        const source_location& where) {
        auto ev = evaluate(layers, is_explicit, p, catalog, constraint);
        if (ev.exclusion) {
            result.excluded.push_back({layers, *ev.exclusion, ev.rule});
            if (origins) origins->push_back(where);
        } else {
            result.candidates.push_back(std::move(ev.candidate));
        }
    };
    if (!p.stacks.empty()) {
        for (const auto& spec : p.stacks)
            consider(spec.layers, true, spec.where);
    } else {
        for (const auto& layers : derived_stacks(catalog, constraint.stream_top))
            consider(layers, false, {});
    }
    // Stable: equal scores keep the policy's order (or fewer layers first, for derived ones).
    std::stable_sort(
        result.candidates.begin(), result.candidates.end(),
        [](const candidate_stack& a, const candidate_stack& b) { return a.score > b.score; });
    if (p.stacks.empty()) drop_alternative_framers(result);
    return result;
}

std::string verb(preference level) {
    switch (level) {
    case preference::require:
        return "requires";
    case preference::prefer:
        return "prefers";
    case preference::no_preference:
        return "has no preference on";
    case preference::avoid:
        return "avoids";
    case preference::prohibit:
        return "prohibits";
    }
    return "?";
}

std::string conflict_message(const selection_rule& system_rule, const selection_rule& app_rule) {
    return "no candidate stack: system policy " + system_rule.where.to_string() + " " +
           verb(system_rule.level) + " " + system_rule.property + ", but application policy " +
           app_rule.where.to_string() + " " + verb(app_rule.level) + " it";
}

} // namespace

std::map<std::string, bool> compose_features(const std::vector<std::string>& stack,
                                             const std::vector<layer_info>& catalog) {
    std::map<std::string, bool> features;
    for (auto name : sdk::known_features)
        features[std::string(name)] = false;
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
        auto* layer = find_layer(catalog, *it);
        if (!layer) continue;
        for (const auto& [feature, effect] : layer->features)
            features[feature] = effect == sdk::feature_effect::provides;
    }
    return features;
}

void validate(const merged_policy& p, const std::vector<layer_info>& catalog) {
    validate(p, catalog, stack_constraint{});
}

void validate(const merged_policy& p, const std::vector<layer_info>& catalog,
              const stack_constraint& constraint) {
    const auto& eff = p.effective;
    diagnostics_sink sink(eff.where.file);
    for (const auto& spec : eff.stacks) {
        for (const auto& problem : structure_problems(spec.layers, catalog, constraint.stream_top))
            sink.error(spec.where, "stack " + stack_name(spec.layers) + ": " + problem);
    }
    // Options of layers that are not loaded cannot be checked; they are used only if the
    // layer appears later.
    for (const auto& [layer_name, options] : eff.protocols) {
        auto* layer = find_layer(catalog, layer_name);
        if (!layer) continue;
        try {
            (void)layer_options(eff, *layer);
        } catch (const policy_error& e) {
            sink.append(e.diagnostics());
        }
    }
    sink.throw_if_errors();
}

selection_result select_stacks(const merged_policy& p, const std::vector<layer_info>& catalog,
                               const stack_constraint& constraint) {
    std::vector<source_location> origins;
    auto result = run_selection(p.effective, catalog, constraint, &origins);
    if (!result.candidates.empty()) return result;

    std::vector<diagnostic> diagnostics;

    // Was it the system policy? Try each overridden application rule back in place, then all.
    std::vector<std::string> culprits;
    for (const auto& [property, app_rule] : p.overridden) {
        policy alternative = p.effective;
        alternative.selection[property] = app_rule;
        if (!run_selection(alternative, catalog, constraint).candidates.empty())
            culprits.push_back(property);
    }
    if (culprits.empty() && p.overridden.size() > 1) {
        policy alternative = p.effective;
        for (const auto& [property, app_rule] : p.overridden)
            alternative.selection[property] = app_rule;
        if (!run_selection(alternative, catalog, constraint).candidates.empty())
            for (const auto& entry : p.overridden)
                culprits.push_back(entry.first);
    }
    for (const auto& property : culprits) {
        const auto& app_rule = p.overridden.at(property);
        const auto& system_rule = p.effective.selection.at(property);
        diagnostics.push_back({app_rule.where, conflict_message(system_rule, app_rule)});
    }

    if (diagnostics.empty()) {
        std::string message = "no candidate stack for policy '" + p.effective.name + "'";
        if (result.excluded.empty()) {
            std::vector<std::string> names;
            for (const auto& l : catalog)
                names.push_back(l.name);
            message += names.empty()
                           ? ": no layers are loaded"
                           : ": the loaded layers (" + join(names, ", ") + ") form no valid stack";
        } else {
            message += ": every stack was excluded";
        }
        diagnostics.push_back({p.effective.where, std::move(message)});
    }
    for (std::size_t i = 0; i < result.excluded.size(); ++i) {
        const auto& ex = result.excluded[i];
        auto where = ex.rule.line > 0 || i >= origins.size() ? ex.rule : origins[i];
        diagnostics.push_back(
            {where, "stack " + stack_name(ex.layers) + " excluded: " + ex.reason});
    }
    throw policy_error(std::move(diagnostics));
}

} // namespace post
