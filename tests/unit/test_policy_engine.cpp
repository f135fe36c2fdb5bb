// The policy engine against a hand-written catalog of today's layers (tcp, udp, framer):
// feature composition, stack derivation, validation, selection, merging, options.
#include <boost/test/unit_test.hpp>

#include <post/policy.hpp>

#include <algorithm>

namespace post {
// Lets Boost.Test print preferences in failure messages.
inline std::ostream& boost_test_print_type(std::ostream& os, preference p) {
    return os << to_string(p);
}
} // namespace post

namespace post_test {
std::vector<post::layer_info> test_catalog();
}

namespace {

using layers = std::vector<std::string>;

post::merged_policy app_only(const std::string& text, const std::string& file = "app.yaml") {
    return post::merge(post::policy{}, post::policy::parse(text, file));
}

std::vector<layers> candidate_layers(const post::selection_result& r) {
    std::vector<layers> out;
    for (const auto& c : r.candidates)
        out.push_back(c.layers);
    return out;
}

const post::excluded_stack* find_excluded(const post::selection_result& r, const layers& l) {
    for (const auto& e : r.excluded)
        if (e.layers == l) return &e;
    return nullptr;
}

std::vector<post::diagnostic> validate_errors(const post::merged_policy& p) {
    try {
        post::validate(p, post_test::test_catalog());
    } catch (const post::policy_error& e) {
        return e.diagnostics();
    }
    return {};
}

std::vector<post::diagnostic> select_errors(const post::merged_policy& p,
                                            const post::stack_constraint& c = {}) {
    try {
        (void)post::select_stacks(p, post_test::test_catalog(), c);
    } catch (const post::policy_error& e) {
        BOOST_TEST_MESSAGE(e.what());
        return e.diagnostics();
    }
    return {};
}

} // namespace

BOOST_AUTO_TEST_SUITE(features)

BOOST_AUTO_TEST_CASE(composed_bottom_up) {
    auto catalog = post_test::test_catalog();
    auto f = post::compose_features({"framer", "tcp"}, catalog);
    BOOST_TEST(f.at("reliability"));
    BOOST_TEST(f.at("preserve-msg-boundaries"));
    BOOST_TEST(f.at("preserve-order"));
    BOOST_TEST(!f.at("multistreaming"));
    BOOST_TEST(!f.at("security"));
    // Every known feature is listed, absent unless a layer provides it.
    BOOST_TEST(f.size() == post::sdk::known_features.size());

    auto u = post::compose_features({"udp"}, catalog);
    BOOST_TEST(!u.at("reliability"));
    BOOST_TEST(u.at("preserve-msg-boundaries"));
}

BOOST_AUTO_TEST_CASE(an_upper_layer_can_remove_a_feature) {
    auto catalog = post_test::test_catalog();
    post::layer_info lossy{"lossy", "test", "", post::sdk::edge::message, post::sdk::edge::stream,
                           {},      {}};
    lossy.features["reliability"] = post::sdk::feature_effect::removes;
    catalog.push_back(lossy);
    auto f = post::compose_features({"lossy", "tcp"}, catalog);
    BOOST_TEST(!f.at("reliability"));
    BOOST_TEST(f.at("preserve-order")); // Untouched features pass through.

    // And the engine names the layer that removed a required feature.
    auto p = app_only("version: 1\nselection: { reliability: require }\nstacks: [[lossy, tcp]]\n");
    try {
        (void)post::select_stacks(p, catalog);
        BOOST_FAIL("expected policy_error");
    } catch (const post::policy_error& e) {
        BOOST_TEST(std::string(e.what()).find("require reliability: removed by lossy") !=
                   std::string::npos);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(derivation)

// Two framers over one connection are not raced against each other when stacks are derived;
// the lower-ranked one is reported, and an explicit stack can still name it.
BOOST_AUTO_TEST_CASE(derived_stacks_do_not_race_two_framers_over_one_connection) {
    auto catalog = post_test::test_catalog();
    post::layer_info other{"length-prefix",         "framing", "", post::sdk::edge::message,
                           post::sdk::edge::stream, {},        {}};
    other.features["preserve-msg-boundaries"] = post::sdk::feature_effect::provides;
    catalog.push_back(other);
    auto r = post::select_stacks(app_only("version: 1\n"), catalog);
    const auto got = candidate_layers(r);
    BOOST_TEST((std::find(got.begin(), got.end(), layers{"framer", "tcp"}) != got.end()));
    BOOST_TEST((std::find(got.begin(), got.end(), layers{"length-prefix", "tcp"}) == got.end()));
    bool reported = false;
    for (const auto& e : r.excluded)
        if (e.layers == layers{"length-prefix", "tcp"})
            reported = e.reason.find("the same connection as [framer, tcp]") != std::string::npos;
    BOOST_TEST(reported);
    auto explicit_stack =
        post::select_stacks(app_only("version: 1\nstacks: [[length-prefix, tcp]]\n"), catalog);
    const auto explicit_got = candidate_layers(explicit_stack);
    BOOST_TEST((explicit_got == std::vector<layers>{{"length-prefix", "tcp"}}));
}

BOOST_AUTO_TEST_CASE(derived_stacks_are_framer_tcp_and_udp_never_framer_udp) {
    auto r = post::select_stacks(app_only("version: 1\n"), post_test::test_catalog());
    // No preferences: fewer layers first, then name order.
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"udp"}, {"framer", "tcp"}})));
    BOOST_TEST(r.excluded.empty()); // Invalid combinations are never candidates at all.
}

BOOST_AUTO_TEST_CASE(default_policy_selects_framer_tcp_and_explains_udp) {
    auto r = post::select_stacks(post::merge(post::policy{}, post::policy::defaults()),
                                 post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"framer", "tcp"}})));
    auto* udp = find_excluded(r, {"udp"});
    BOOST_TEST_REQUIRE(udp);
    // Every failed rule is listed; the rule location is the first one's.
    BOOST_TEST(udp->reason == "require congestion-control: not provided by any layer; require "
                              "preserve-order: not provided by any layer; require reliability: "
                              "not provided by any layer");
    BOOST_TEST(udp->rule.file == "<built-in default policy>");
    // No preference left unmet: the default prefers nothing (multistreaming would rank SCTP
    // over UDP first).
    BOOST_TEST(r.candidates[0].notes.empty());
    BOOST_TEST(r.candidates[0].features.at("reliability"));
}

BOOST_AUTO_TEST_CASE(derivation_adds_new_layers_up_to_depth_four) {
    auto catalog = post_test::test_catalog();
    // A stream-to-stream layer (like TLS) makes [framer, tls, tcp] derivable.
    post::layer_info tls{"tls", "tls", "", post::sdk::edge::stream, post::sdk::edge::stream,
                         {},    {}};
    tls.features["security"] = post::sdk::feature_effect::provides;
    catalog.push_back(tls);
    auto r =
        post::select_stacks(app_only("version: 1\nselection: { security: prefer }\n"), catalog);
    BOOST_TEST((candidate_layers(r) ==
                (std::vector<layers>{{"framer", "tls", "tcp"}, {"udp"}, {"framer", "tcp"}})));
    BOOST_TEST(r.candidates[0].score == 1);
    BOOST_TEST(r.candidates[0].notes == (std::vector<std::string>{"prefers security: present"}));
}

BOOST_AUTO_TEST_CASE(derivation_never_secures_twice) {
    auto catalog = post_test::test_catalog();
    // A QUIC-like message layer over datagrams and a DTLS-like datagram layer, both secure:
    // [quic, udp] and [dtls, udp] are derived, [quic, dtls, udp] is not.
    post::layer_info dtls{"dtls", "tls", "", post::sdk::edge::datagram, post::sdk::edge::datagram,
                          {},     {}};
    dtls.features["security"] = post::sdk::feature_effect::provides;
    post::layer_info quic{"quic", "quic", "", post::sdk::edge::message, post::sdk::edge::datagram,
                          {},     {}};
    quic.features["security"] = post::sdk::feature_effect::provides;
    catalog.push_back(dtls);
    catalog.push_back(quic);
    auto r = post::select_stacks(app_only("version: 1\n"), catalog);
    auto all = candidate_layers(r);
    for (const auto& e : r.excluded)
        all.push_back(e.layers);
    BOOST_TEST((std::find(all.begin(), all.end(), layers{"quic", "udp"}) != all.end()));
    BOOST_TEST((std::find(all.begin(), all.end(), layers{"dtls", "udp"}) != all.end()));
    BOOST_TEST((std::find(all.begin(), all.end(), layers{"quic", "dtls", "udp"}) == all.end()));
    // Listed in a policy, it is the policy's choice.
    auto listed =
        post::select_stacks(app_only("version: 1\nstacks: [[quic, dtls, udp]]\n"), catalog);
    BOOST_TEST((candidate_layers(listed) == (std::vector<layers>{{"quic", "dtls", "udp"}})));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(validation)

BOOST_AUTO_TEST_CASE(edge_mismatch_names_both_layers) {
    auto d = validate_errors(app_only("version: 1\nstacks:\n  - [framer, udp]\n", "f.yaml"));
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].to_string() ==
               "f.yaml:3:5: stack [framer, udp]: framer needs a stream edge below it, but udp "
               "offers datagram");
}

BOOST_AUTO_TEST_CASE(bottom_and_top_of_a_stack) {
    auto d = validate_errors(app_only("version: 1\nstacks: [[framer], [tcp], [udp, tcp]]\n"));
    BOOST_TEST_REQUIRE(d.size() == 3u);
    BOOST_TEST(d[0].message ==
               "stack [framer]: framer needs a stream edge below it, but it is the bottom layer");
    BOOST_TEST(d[1].message == "stack [tcp]: the top layer tcp offers a stream edge, but the top "
                               "of a stack must offer messages or datagrams; put a layer such "
                               "as 'framer' above it");
    BOOST_TEST(d[2].message == "stack [udp, tcp]: udp talks to the operating system and must be "
                               "the bottom layer, but tcp is below it");
}

BOOST_AUTO_TEST_CASE(layers_not_loaded_are_not_validation_errors) {
    auto p = app_only("version: 1\nstacks: [[quic, udp], [framer, tls, tcp]]\n"
                      "protocols: { tls: { alpn: [h3], anything: 1 } }\n");
    BOOST_TEST(validate_errors(p).empty());
}

BOOST_AUTO_TEST_CASE(options_are_checked_against_the_schema) {
    auto d = validate_errors(app_only("version: 1\n"
                                      "protocols:\n"
                                      "  tcp:\n"
                                      "    nodelai: true\n"
                                      "    backlog: many\n"
                                      "    keep-alive: 10\n"
                                      "  udp: { max-message-size: 70000, reuse-address: maybe }\n"
                                      "  framer: { compression: on }\n",
                                      "o.yaml"));
    BOOST_TEST_REQUIRE(d.size() == 6u);
    std::vector<std::string> text;
    for (const auto& x : d)
        text.push_back(x.to_string());
    auto has = [&](const std::string& s) {
        return std::find(text.begin(), text.end(), s) != text.end();
    };
    BOOST_TEST(has("o.yaml:4:14: unknown option 'nodelai' for layer tcp; did you mean 'nodelay'?"));
    BOOST_TEST(has("o.yaml:5:14: option tcp.backlog: expected an integer, got 'many'"));
    BOOST_TEST(has("o.yaml:6:17: option tcp.keep-alive: expected a duration (e.g. 250ms, 10s), "
                   "got '10'"));
    BOOST_TEST(has("o.yaml:7:28: option udp.max-message-size: value 70000 is out of range "
                   "[0, 65527]"));
    BOOST_TEST(has("o.yaml:7:50: option udp.reuse-address: expected a boolean (true or false), "
                   "got 'maybe'"));
    BOOST_TEST(has("o.yaml:8:26: unknown option 'compression' for layer framer; its options "
                   "are: max-message-size"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(selection)

BOOST_AUTO_TEST_CASE(explicit_stacks_with_missing_layers_are_excluded_with_reasons) {
    auto p = app_only("version: 1\nselection: { reliability: require }\n"
                      "stacks: [[quic, udp], [framer, tls, tcp], [framer, tpc], [framer, tcp]]\n");
    auto r = post::select_stacks(p, post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"framer", "tcp"}})));
    BOOST_TEST_REQUIRE(r.excluded.size() == 3u);
    BOOST_TEST(r.excluded[0].reason == "layer 'quic' is not loaded");
    BOOST_TEST(r.excluded[1].reason == "layer 'tls' is not loaded");
    BOOST_TEST(r.excluded[2].reason == "layer 'tpc' is not loaded; did you mean 'tcp'?");
}

BOOST_AUTO_TEST_CASE(require_and_prohibit_exclude_with_the_rule_location) {
    auto p = app_only("version: 1\nselection:\n  reliability: prohibit\n", "r.yaml");
    auto r = post::select_stacks(p, post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"udp"}})));
    auto* ex = find_excluded(r, {"framer", "tcp"});
    BOOST_TEST_REQUIRE(ex);
    BOOST_TEST(ex->reason == "prohibit reliability: provided by tcp");
    BOOST_TEST(ex->rule.to_string() == "r.yaml:3:3");
}

BOOST_AUTO_TEST_CASE(ranking_by_prefer_and_avoid_with_notes) {
    auto p = app_only("version: 1\nselection:\n  reliability: avoid\n  preserve-order: avoid\n"
                      "  preserve-msg-boundaries: prefer\n");
    auto r = post::select_stacks(p, post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"udp"}, {"framer", "tcp"}})));
    BOOST_TEST(r.candidates[0].score == 1);
    BOOST_TEST(r.candidates[1].score == -1);
    BOOST_TEST(r.candidates[1].notes ==
               (std::vector<std::string>{"prefers preserve-msg-boundaries: present",
                                         "avoids preserve-order: present",
                                         "avoids reliability: present"}));
    BOOST_TEST(r.candidates[0].notes[2] == "avoids reliability: absent");
}

BOOST_AUTO_TEST_CASE(ties_keep_the_policy_order) {
    auto p = app_only("version: 1\nstacks: [[framer, tcp], [udp]]\n");
    auto r = post::select_stacks(p, post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"framer", "tcp"}, {"udp"}})));
    // A preference overrides the written order.
    p = app_only("version: 1\nselection: { reliability: avoid }\nstacks: [[framer, tcp], [udp]]\n");
    r = post::select_stacks(p, post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"udp"}, {"framer", "tcp"}})));
}

BOOST_AUTO_TEST_CASE(constraint_from_the_remote) {
    auto r = post::select_stacks(app_only("version: 1\n"), post_test::test_catalog(),
                                 {{"tcp"}, "URL scheme tcp://", false, {}});
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"framer", "tcp"}})));
    auto* ex = find_excluded(r, {"udp"});
    BOOST_TEST_REQUIRE(ex);
    BOOST_TEST(ex->reason == "no tcp layer, which URL scheme tcp:// needs");
    BOOST_TEST(ex->rule.line == 0); // Not a policy rule.
}

BOOST_AUTO_TEST_CASE(nothing_left_lists_every_exclusion) {
    auto d = select_errors(app_only("version: 1\nname: picky\nselection:\n  security: require\n"));
    BOOST_TEST_REQUIRE(d.size() == 3u);
    BOOST_TEST(d[0].message == "no candidate stack for policy 'picky': every stack was excluded");
    BOOST_TEST(d[1].to_string() == "app.yaml:4:3: stack [udp] excluded: require security: not "
                                   "provided by any layer");
    BOOST_TEST(d[2].message ==
               "stack [framer, tcp] excluded: require security: not provided by any layer");

    // Explicit stacks excluded for structure point at the stack in the file.
    d = select_errors(app_only("version: 1\nstacks:\n  - [quic, udp]\n"));
    BOOST_TEST_REQUIRE(d.size() == 2u);
    BOOST_TEST(d[1].to_string() ==
               "app.yaml:3:5: stack [quic, udp] excluded: layer 'quic' is not loaded");

    // An empty catalog says so.
    try {
        (void)post::select_stacks(app_only("version: 1\n"), {});
        BOOST_FAIL("expected policy_error");
    } catch (const post::policy_error& e) {
        BOOST_TEST(std::string(e.what()).find("no layers are loaded") != std::string::npos);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(merging)

BOOST_AUTO_TEST_CASE(system_require_and_prohibit_win_and_are_recorded) {
    auto system = post::policy::parse("version: 1\nselection:\n  security: prohibit\n"
                                      "  multipath: require\n  keep-alive: prefer\n"
                                      "  zero-rtt-msg: avoid\n",
                                      "sys.yaml");
    auto app = post::policy::parse("version: 1\nselection:\n  security: prefer\n"
                                   "  multipath: require\n  zero-rtt-msg: prefer\n",
                                   "app.yaml");
    auto m = post::merge(system, app);
    auto& sel = m.effective.selection;
    BOOST_TEST(sel.at("security").level == post::preference::prohibit);
    BOOST_TEST(sel.at("security").where.file == "sys.yaml");
    BOOST_TEST(m.overridden.count("security") == 1u);
    BOOST_TEST(m.overridden.at("security").level == post::preference::prefer);
    BOOST_TEST(m.overridden.at("security").where.to_string() == "app.yaml:3:3");
    // Same level on both sides: nothing was overridden.
    BOOST_TEST(m.overridden.count("multipath") == 0u);
    // Soft system rules fill gaps only.
    BOOST_TEST(sel.at("keep-alive").level == post::preference::prefer);
    BOOST_TEST(sel.at("zero-rtt-msg").level == post::preference::prefer);
    BOOST_TEST(sel.at("zero-rtt-msg").where.file == "app.yaml");
    BOOST_TEST(m.overridden.size() == 1u);
}

BOOST_AUTO_TEST_CASE(stacks_racing_connection_from_app_protocols_as_defaults) {
    auto system = post::policy::parse(
        "version: 1\nstacks: [[udp]]\nracing: { attempt-delay: 1s }\n"
        "connection: { timeout: 1m }\n"
        "protocols: { tcp: { nodelay: false, backlog: 16 }, udp: { max-peers: 8 } }\n"
        "selection: { interface: { prohibit: [cellular], prefer: [wifi] } }\n",
        "sys.yaml");
    auto app = post::policy::parse("version: 1\nname: app\nstacks: [[framer, tcp]]\n"
                                   "racing: { attempt-delay: 100ms }\n"
                                   "protocols: { tcp: { nodelay: true } }\n"
                                   "selection: { interface: { prefer: [cellular, ethernet] } }\n",
                                   "app.yaml");
    auto m = post::merge(system, app);
    auto& e = m.effective;
    BOOST_TEST(e.name == "app");
    BOOST_TEST_REQUIRE(e.stacks.size() == 1u);
    BOOST_TEST(e.stacks[0].layers == (layers{"framer", "tcp"}));
    BOOST_TEST(e.racing.attempt_delay.count() == 100);
    BOOST_TEST(e.connection.timeout.count() == 10000); // The app's (default) value.
    BOOST_TEST(std::get<std::string>(e.protocols.at("tcp").at("nodelay").value) == "true");
    BOOST_TEST(std::get<std::string>(e.protocols.at("tcp").at("backlog").value) == "16");
    BOOST_TEST(std::get<std::string>(e.protocols.at("udp").at("max-peers").value) == "8");
    BOOST_TEST_REQUIRE(e.interfaces.has_value());
    BOOST_TEST(e.interfaces->prohibit == (layers{"cellular"}));
    BOOST_TEST(e.interfaces->prefer == (layers{"ethernet"}));
}

BOOST_AUTO_TEST_CASE(conflict_names_both_rules) {
    auto system = post::policy::parse("# host rules\nversion: 1\nselection:\n  reliability: "
                                      "prohibit\n",
                                      "/etc/post/system-policy.yaml");
    auto app = post::policy::parse("version: 1\nname: app\nstacks: [[framer, tcp]]\nselection:\n"
                                   "  reliability: require\n",
                                   "app.yaml");
    auto m = post::merge(system, app);
    auto d = select_errors(m);
    BOOST_TEST_REQUIRE(d.size() >= 1u);
    BOOST_TEST(d[0].message == "no candidate stack: system policy "
                               "/etc/post/system-policy.yaml:4:3 prohibits reliability, but "
                               "application policy app.yaml:5:3 requires it");
    BOOST_TEST(d[0].where.to_string() == "app.yaml:5:3");
    // The exclusion follows, for the full picture.
    BOOST_TEST_REQUIRE(d.size() == 2u);
    BOOST_TEST(d[1].message ==
               "stack [framer, tcp] excluded: prohibit reliability: provided by tcp");
}

BOOST_AUTO_TEST_CASE(an_override_that_leaves_candidates_is_no_conflict) {
    auto system =
        post::policy::parse("version: 1\nselection: { reliability: prohibit }\n", "sys.yaml");
    auto app = post::policy::parse("version: 1\nselection: { reliability: prefer }\n", "app.yaml");
    auto r = post::select_stacks(post::merge(system, app), post_test::test_catalog());
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"udp"}})));
}

BOOST_AUTO_TEST_CASE(a_failure_not_caused_by_the_system_is_not_blamed_on_it) {
    auto system =
        post::policy::parse("version: 1\nselection: { multipath: prohibit }\n", "sys.yaml");
    auto app = post::policy::parse(
        "version: 1\nname: a\nselection: { multipath: prefer, security: require }\n", "app.yaml");
    auto d = select_errors(post::merge(system, app));
    BOOST_TEST_REQUIRE(!d.empty());
    BOOST_TEST(d[0].message == "no candidate stack for policy 'a': every stack was excluded");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(options)

BOOST_AUTO_TEST_CASE(typed_with_schema_defaults) {
    auto catalog = post_test::test_catalog();
    auto p = post::policy::parse("version: 1\nprotocols:\n  tcp: { nodelay: no, keep-alive: 15s }\n"
                                 "  framer: { max-message-size: 1MiB }\n");
    auto tcp = post::layer_options(p, catalog[0]);
    BOOST_TEST((tcp.get<bool>("nodelay") == std::optional<bool>(false))); // Default is true.
    BOOST_TEST(tcp.get<std::chrono::milliseconds>("keep-alive")->count() == 15000);
    BOOST_TEST((tcp.get<std::int64_t>("backlog") == std::optional<std::int64_t>(4096))); // Default.
    BOOST_TEST((tcp.get<bool>("reuse-address") == std::optional<bool>(true)));
    BOOST_TEST((tcp.get<std::string>("nodelay") == std::nullopt)); // Typed, not text.

    auto framer = post::layer_options(p, catalog[2]);
    BOOST_TEST(
        (framer.get<std::int64_t>("max-message-size") == std::optional<std::int64_t>(1 << 20)));

    auto udp = post::layer_options(p, catalog[1]); // Not configured: all defaults.
    BOOST_TEST((udp.get<std::int64_t>("max-message-size") == std::optional<std::int64_t>(0)));
    BOOST_TEST(udp.values().size() == 3u);
    // A duration default is typed too.
    auto plain_tcp = post::layer_options(post::policy::defaults(), catalog[0]);
    BOOST_TEST(plain_tcp.get<std::chrono::milliseconds>("keep-alive")->count() == 0);
    BOOST_TEST((plain_tcp.get<bool>("nodelay") == std::optional<bool>(true)));
}

BOOST_AUTO_TEST_CASE(strings_and_lists) {
    post::layer_info tls{"tls", "tls", "", post::sdk::edge::stream, post::sdk::edge::stream,
                         {},    {}};
    tls.options = {{"alpn", post::sdk::option_type::string_list, "", "", 0, 0},
                   {"server-name", post::sdk::option_type::string, "", "", 0, 0},
                   {"ciphers", post::sdk::option_type::string_list, "", "", 0, 0}};
    auto p = post::policy::parse("version: 1\nprotocols:\n  tls: { alpn: [h2, post/1], "
                                 "server-name: example.org, ciphers: AES }\n");
    auto o = post::layer_options(p, tls);
    BOOST_TEST(*o.get<std::vector<std::string>>("alpn") == (layers{"h2", "post/1"}));
    BOOST_TEST(*o.get<std::string>("server-name") == "example.org");
    BOOST_TEST(*o.get<std::vector<std::string>>("ciphers") == (layers{"AES"}));

    p = post::policy::parse("version: 1\nprotocols:\n  tls: { server-name: [a, b] }\n");
    BOOST_CHECK_THROW(post::layer_options(p, tls), post::policy_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(a_constraint_can_rule_layers_out) {
    // tcp:// means plain TCP on the wire: a tls layer over it is excluded, with the reason.
    auto catalog = post_test::test_catalog();
    post::layer_info tls{"tls", "tls", "TLS", post::sdk::edge::stream, post::sdk::edge::stream,
                         {},    {}};
    tls.features["security"] = post::sdk::feature_effect::provides;
    catalog.push_back(tls);
    const post::stack_constraint plain{{"tcp"}, "URL scheme tcp://", false, {"tls"}};
    auto r = post::select_stacks(app_only("version: 1\n"), catalog, plain);
    BOOST_TEST((candidate_layers(r) == (std::vector<layers>{{"framer", "tcp"}})));
    auto it = std::find_if(r.excluded.begin(), r.excluded.end(), [](const auto& e) {
        return e.layers == layers{"framer", "tls", "tcp"};
    });
    BOOST_REQUIRE(it != r.excluded.end());
    BOOST_TEST(it->reason == "has a tls layer, which URL scheme tcp:// rules out", it->reason);
    const post::stack_constraint secure{{"tls", "tcp"}, "URL scheme tls://", false, {}};
    auto s = post::select_stacks(app_only("version: 1\n"), catalog, secure);
    BOOST_TEST((candidate_layers(s) == (std::vector<layers>{{"framer", "tls", "tcp"}})));
}
