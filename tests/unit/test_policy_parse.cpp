// Parsing policy documents: the format of docs/policy.md and the quality of its errors.
#define BOOST_TEST_MODULE policy
#include <boost/test/unit_test.hpp>

#include <post/policy.hpp>

#include <string>

using namespace std::chrono_literals;

namespace post {
// Lets Boost.Test print preferences in failure messages.
inline std::ostream& boost_test_print_type(std::ostream& os, preference p) {
    return os << to_string(p);
}
} // namespace post

namespace {

/// The diagnostics a document produces (empty when it parses).
std::vector<post::diagnostic> errors_of(const std::string& text,
                                        const std::string& file = "p.yaml") {
    try {
        (void)post::policy::parse(text, file);
    } catch (const post::policy_error& e) {
        return e.diagnostics();
    }
    return {};
}

/// The one diagnostic of a document that must produce exactly one.
post::diagnostic single_error(const std::string& text, const std::string& file = "p.yaml") {
    auto d = errors_of(text, file);
    BOOST_TEST_REQUIRE(d.size() == 1u, "expected one diagnostic, got " << d.size());
    BOOST_TEST_MESSAGE(d.front().to_string());
    return d.front();
}

} // namespace

BOOST_AUTO_TEST_SUITE(parsing)

BOOST_AUTO_TEST_CASE(design_example_parses_into_every_field) {
    auto p = post::policy::parse(R"(version: 1
name: interactive
description: Interactive traffic
selection:
  reliability: require
  preserve-msg-boundaries: prefer
  multistreaming: prefer
  zero-rtt-msg: prefer
  security: prohibit
  keep-alive: avoid
  multipath: no-preference
  interface: { prefer: [ethernet, wifi], avoid: [cellular], require: wired, prohibit: [] }
stacks:
  - [quic, udp]
  - [framer, tls, tcp]
protocols:
  tls:  { alpn: [post/1], verify-peer: true }
  tcp:  { nodelay: true }
racing: { attempt-delay: 250ms, resolution-delay: 50ms, stack-delay: 1s, prefer-family: ipv4,
          max-attempts: 3 }
connection: { timeout: 2m, keep-alive: 15s, max-message-size: 64KiB }
)",
                                 "interactive.yaml");
    BOOST_TEST(p.name == "interactive");
    BOOST_TEST(p.description == "Interactive traffic");
    BOOST_TEST(p.selection.size() == 7u);
    BOOST_TEST(p.selection.at("reliability").level == post::preference::require);
    BOOST_TEST(p.selection.at("preserve-msg-boundaries").level == post::preference::prefer);
    BOOST_TEST(p.selection.at("security").level == post::preference::prohibit);
    BOOST_TEST(p.selection.at("keep-alive").level == post::preference::avoid);
    BOOST_TEST(p.selection.at("multipath").level == post::preference::no_preference);
    // Locations are 1-based line:column of the key.
    BOOST_TEST(p.selection.at("reliability").where.to_string() == "interactive.yaml:5:3");

    BOOST_TEST_REQUIRE(p.interfaces.has_value());
    BOOST_TEST(p.interfaces->prefer == (std::vector<std::string>{"ethernet", "wifi"}));
    BOOST_TEST(p.interfaces->avoid == (std::vector<std::string>{"cellular"}));
    BOOST_TEST(p.interfaces->require == (std::vector<std::string>{"wired"}));
    BOOST_TEST(p.interfaces->prohibit.empty());

    BOOST_TEST_REQUIRE(p.stacks.size() == 2u);
    BOOST_TEST(p.stacks[0].layers == (std::vector<std::string>{"quic", "udp"}));
    BOOST_TEST(p.stacks[1].layers == (std::vector<std::string>{"framer", "tls", "tcp"}));
    BOOST_TEST(p.stacks[1].where.line == 15);
    BOOST_TEST(p.stacks[1].where.column == 5);

    auto& alpn = p.protocols.at("tls").at("alpn");
    BOOST_TEST(std::get<std::vector<std::string>>(alpn.value) ==
               (std::vector<std::string>{"post/1"}));
    BOOST_TEST(std::get<std::string>(p.protocols.at("tcp").at("nodelay").value) == "true");
    BOOST_TEST(p.protocols.at("tcp").at("nodelay").where.line == 18);

    BOOST_TEST(p.racing.attempt_delay.count() == 250);
    BOOST_TEST(p.racing.resolution_delay.count() == 50);
    BOOST_TEST(p.racing.stack_delay.count() == 1000);
    BOOST_TEST((p.racing.prefer_family == post::address_family::ipv4));
    BOOST_TEST(p.racing.max_attempts == 3);
    BOOST_TEST(p.connection.timeout.count() == 120000);
    BOOST_TEST_REQUIRE(p.connection.keep_alive.has_value());
    BOOST_TEST(p.connection.keep_alive->count() == 15000);
    BOOST_TEST(p.connection.max_message_size == 65536u);
}

BOOST_AUTO_TEST_CASE(minimal_policy_keeps_defaults_and_takes_name_from_file) {
    auto p = post::policy::parse("version: 1\n", "/etc/post/policies/quiet.yaml");
    BOOST_TEST(p.name == "quiet");
    BOOST_TEST(p.selection.empty());
    BOOST_TEST(p.stacks.empty());
    BOOST_TEST(p.racing.attempt_delay.count() == 250);
    BOOST_TEST(p.connection.timeout.count() == 10000);
    BOOST_TEST(!p.connection.keep_alive.has_value());
    BOOST_TEST(p.connection.max_message_size == 16u << 20);
}

BOOST_AUTO_TEST_CASE(keep_alive_off_and_size_suffixes) {
    auto p = post::policy::parse(
        "version: 1\nconnection: { keep-alive: off, max-message-size: 2MiB }\n");
    BOOST_TEST(!p.connection.keep_alive.has_value());
    BOOST_TEST(p.connection.max_message_size == 2u << 20);
    p = post::policy::parse("version: 1\nconnection: { max-message-size: 1500 }\n");
    BOOST_TEST(p.connection.max_message_size == 1500u);
}

BOOST_AUTO_TEST_CASE(dormant_is_a_boolean) {
    BOOST_TEST(!post::policy::defaults().connection.dormant);
    auto p = post::policy::parse("version: 1\nconnection: { dormant: true }\n");
    BOOST_TEST(p.connection.dormant);
    try {
        post::policy::parse("version: 1\nconnection: { dormant: sometimes }\n", "d.yaml");
        BOOST_FAIL("accepted dormant: sometimes");
    } catch (const post::policy_error& e) {
        BOOST_TEST(std::string(e.what()).find("d.yaml:2:24: connection.dormant must be true or "
                                              "false") != std::string::npos,
                   e.what());
    }
}

BOOST_AUTO_TEST_CASE(direction_names_rfc_9622_directions) {
    using post::sdk::flow_direction;
    BOOST_TEST((post::policy::defaults().connection.direction == flow_direction::bidirectional));
    auto p = post::policy::parse("version: 1\nconnection: { direction: unidirectional-send }\n");
    BOOST_TEST((p.connection.direction == flow_direction::send_only));
    p = post::policy::parse("version: 1\nconnection: { direction: unidirectional-receive }\n");
    BOOST_TEST((p.connection.direction == flow_direction::receive_only));
    p = post::policy::parse("version: 1\nconnection: { direction: bidirectional }\n");
    BOOST_TEST((p.connection.direction == flow_direction::bidirectional));
    try {
        post::policy::parse("version: 1\nconnection: { direction: unidirectional-sned }\n",
                            "d.yaml");
        BOOST_FAIL("accepted direction: unidirectional-sned");
    } catch (const post::policy_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("d.yaml:2:26: connection.direction must be bidirectional, "
                             "unidirectional-send or unidirectional-receive") != std::string::npos,
                   what);
        BOOST_TEST(what.find("did you mean 'unidirectional-send'?") != std::string::npos, what);
    }
}

BOOST_AUTO_TEST_CASE(defaults_are_a_reliable_message_transport) {
    auto p = post::policy::defaults();
    BOOST_TEST(p.selection.at("reliability").level == post::preference::require);
    BOOST_TEST(p.selection.at("preserve-msg-boundaries").level == post::preference::require);
    BOOST_TEST(p.stacks.empty()); // Derived from the loaded layers.
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(unknown_top_level_key_suggests_nearest) {
    auto d = single_error("version: 1\nraceing: { attempt-delay: 250ms }\n", "app.yaml");
    BOOST_TEST(d.message == "unknown key 'raceing' in policy; did you mean 'racing'?");
    BOOST_TEST(d.to_string() ==
               "app.yaml:2:1: unknown key 'raceing' in policy; did you mean 'racing'?");
}

BOOST_AUTO_TEST_CASE(unknown_nested_keys_suggest_nearest) {
    auto d = single_error("version: 1\nracing:\n  atempt-delay: 250ms\n");
    BOOST_TEST(d.message == "unknown key 'atempt-delay' in racing; did you mean 'attempt-delay'?");
    BOOST_TEST(d.where.line == 3);
    BOOST_TEST(d.where.column == 3);

    d = single_error("version: 1\nselection:\n  reliabilty: require\n");
    BOOST_TEST(d.message == "unknown key 'reliabilty' in selection; did you mean 'reliability'?");

    d = single_error("version: 1\nconnection: { timeot: 1s }\n");
    BOOST_TEST(d.message == "unknown key 'timeot' in connection; did you mean 'timeout'?");
    BOOST_TEST(d.where.column == 15);

    d = single_error("version: 1\nselection: { interface: { prefers: [wifi] } }\n");
    BOOST_TEST(d.message == "unknown key 'prefers' in selection.interface; did you mean 'prefer'?");
}

BOOST_AUTO_TEST_CASE(unknown_key_far_from_everything_lists_the_valid_keys) {
    auto d = single_error("version: 1\nzzzzzzzz: 1\n");
    BOOST_TEST(d.message.find("unknown key 'zzzzzzzz' in policy; expected one of: version, "
                              "name,") == 0u);
}

BOOST_AUTO_TEST_CASE(bad_preference_level) {
    auto d = single_error("version: 1\nselection:\n  reliability: requir\n");
    BOOST_TEST(d.message == "unknown preference level 'requir' for reliability; expected require, "
                            "prefer, no-preference, avoid or prohibit; did you mean 'require'?");
    BOOST_TEST(d.where.line == 3);
    BOOST_TEST(d.where.column == 16);
}

BOOST_AUTO_TEST_CASE(version_must_be_1) {
    BOOST_TEST(single_error("version: 2\n").message ==
               "unsupported policy version 2; this library reads version 1");
    BOOST_TEST(single_error("version: one\n").message ==
               "version must be the integer 1, got 'one'");
    auto d = single_error("name: x\n");
    BOOST_TEST(d.message.find("missing 'version: 1'") == 0u);
}

BOOST_AUTO_TEST_CASE(bad_durations) {
    auto d = single_error("version: 1\nracing:\n  attempt-delay: 250\n");
    BOOST_TEST(d.message == "bad duration '250' for racing.attempt-delay; write a number with a "
                            "unit: 1500us, 250ms, 10s, 2m, 1h");
    BOOST_TEST(d.where.line == 3);
    BOOST_TEST(d.where.column == 18);
    BOOST_TEST(single_error("version: 1\nconnection: { timeout: fast }\n")
                   .message.find("bad duration 'fast' for connection.timeout") == 0u);
    BOOST_TEST(single_error("version: 1\nconnection: { timeout: 0s }\n").message ==
               "connection.timeout must be longer than 0");
}

BOOST_AUTO_TEST_CASE(bad_values) {
    BOOST_TEST(single_error("version: 1\nracing: { prefer-family: ipv5 }\n").message ==
               "racing.prefer-family must be ipv4, ipv6 or any, got 'ipv5'; did you mean 'ipv4'?");
    BOOST_TEST(single_error("version: 1\nracing: { max-attempts: 0 }\n").message ==
               "racing.max-attempts must be an integer from 1 to 64, got '0'");
    BOOST_TEST(single_error("version: 1\nconnection: { max-message-size: lots }\n")
                   .message.find("connection.max-message-size must be a positive number") == 0u);
}

BOOST_AUTO_TEST_CASE(wrong_types) {
    BOOST_TEST(single_error("version: 1\nselection: [reliability]\n").message ==
               "selection must be a mapping of keys to values, got a list");
    BOOST_TEST(single_error("version: 1\nselection: { reliability: [require] }\n").message ==
               "selection.reliability must be a single value, got a list");
    auto d = errors_of("version: 1\nstacks: [framer, tcp]\n");
    BOOST_TEST_REQUIRE(d.size() == 2u); // One per element that is not a list.
    BOOST_TEST(d[0].message == "each stack must be a list of layer names top first (e.g. "
                               "[framer, tcp]), got 'framer'");
    BOOST_TEST(single_error("version: 1\nstacks: [[]]\n").message ==
               "a stack needs at least one layer");
    BOOST_TEST(single_error("version: 1\nprotocols: { tcp: { nodelay: { a: b } } }\n").message ==
               "option protocols.tcp.nodelay must be a value or a list of values, got a mapping");
    BOOST_TEST(single_error("- version\n").message.find("a policy must be a mapping") == 0u);
    BOOST_TEST(single_error("").message.find("the policy is empty") == 0u);
}

BOOST_AUTO_TEST_CASE(duplicate_keys_are_reported) {
    auto d = single_error("version: 1\nname: a\nname: b\n");
    BOOST_TEST(d.message == "duplicate key 'name' in policy");
    BOOST_TEST(d.where.line == 3);
}

BOOST_AUTO_TEST_CASE(several_problems_are_reported_together) {
    auto d = errors_of("version: 1\n"
                       "raceing: {}\n"
                       "selection:\n"
                       "  reliability: maybe\n"
                       "connection:\n"
                       "  timeout: soon\n");
    BOOST_TEST_REQUIRE(d.size() == 3u);
    BOOST_TEST(d[0].where.line == 2);
    BOOST_TEST(d[1].where.line == 4);
    BOOST_TEST(d[2].where.line == 6);
    try {
        (void)post::policy::parse("version: 1\nraceing: {}\nselection: { reliability: maybe }\n",
                                  "x.yaml");
        BOOST_FAIL("expected policy_error");
    } catch (const post::policy_error& e) {
        std::string what = e.what();
        BOOST_TEST(what.find("x.yaml:2:1: unknown key 'raceing'") != std::string::npos);
        BOOST_TEST(what.find("\nx.yaml:3:27: unknown preference level 'maybe'") !=
                   std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(yaml_syntax_errors_carry_their_location) {
    // A mis-indented key: yaml-cpp stops at the ':' of line 4.
    auto d = single_error("version: 1\nselection:\n  reliability: require\n"
                          "   multistreaming: prefer\n",
                          "bad.yaml");
    BOOST_TEST(d.to_string() == "bad.yaml:4:18: YAML syntax error: illegal map value");

    // Tabs are not indentation in YAML.
    d = single_error("version: 1\n\tname: x\n", "tab.yaml");
    BOOST_TEST(d.where.line == 2);
    BOOST_TEST(d.where.column == 1);
    BOOST_TEST(d.message.find("YAML syntax error: illegal tab") == 0u);

    // An unclosed bracket: yaml-cpp notices at the end; the message names the bracket.
    d = single_error("version: 1\nselection:\n  reliability: [require\n");
    BOOST_TEST(d.message.find("YAML syntax error: end of sequence flow not found") == 0u);
    BOOST_TEST(d.message.find("the bracket at line 3, column 16 is never closed") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(only_one_document) {
    auto d = single_error("version: 1\n---\nversion: 1\n");
    BOOST_TEST(d.message == "only one YAML document is allowed per file");
    BOOST_TEST(d.where.line == 2);
    // A document end marker alone is fine.
    BOOST_TEST(errors_of("version: 1\n...\n").empty());
}

BOOST_AUTO_TEST_CASE(stray_comma_is_an_error_not_a_hang) {
    // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040).
    auto d = single_error(",");
    BOOST_TEST(d.to_string() == "p.yaml:1:1: YAML syntax error: unexpected ','");
    d = single_error("\"version\",");
    BOOST_TEST(d.to_string() == "p.yaml:1:10: YAML syntax error: unexpected ','");
}

BOOST_AUTO_TEST_CASE(limits_on_size) {
    std::string many = "version: 1\nstacks:\n";
    for (int i = 0; i < 65; ++i)
        many += "  - [udp]\n";
    BOOST_TEST(single_error(many).message == "too many stacks (65); at most 64 are allowed");
    std::string tall = "version: 1\nstacks: [[";
    for (int i = 0; i < 17; ++i)
        tall += (i ? ", l" : "l") + std::to_string(i);
    tall += "]]\n";
    BOOST_TEST(single_error(tall).message ==
               "a stack of 17 layers is too deep; at most 16 are allowed");
    BOOST_TEST(single_error("version: 1\ndescription: " + std::string(2 << 20, 'x') + "\n")
                   .message.find("larger than 1024 KiB") == 0u);
}

BOOST_AUTO_TEST_CASE(deep_nesting_is_rejected_without_crashing) {
    std::string deep = "version: 1\nname: " + std::string(100000, '[') + "\n";
    auto d = single_error(deep);
    BOOST_TEST(d.message == "nesting deeper than 64 levels is not supported");
    BOOST_TEST(d.where.line == 2);

    std::string dashes = "version: 1\nstacks:\n";
    for (int i = 0; i < 5000; ++i)
        dashes += "- ";
    dashes += "x\n";
    BOOST_TEST(single_error(dashes).message == "nesting deeper than 64 levels is not supported");

    // Brackets inside quotes and comments are not nesting.
    auto p = post::policy::parse("version: 1\ndescription: '" + std::string(100, '[') + "' # " +
                                 std::string(100, '{') + "\n");
    BOOST_TEST(p.description == std::string(100, '['));
}

BOOST_AUTO_TEST_CASE(missing_file_is_named) {
    try {
        (void)post::policy::load_file("/nonexistent/policy.yaml");
        BOOST_FAIL("expected policy_error");
    } catch (const post::policy_error& e) {
        BOOST_TEST(std::string(e.what()) == "/nonexistent/policy.yaml: file not found");
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(helpers)

BOOST_AUTO_TEST_CASE(durations) {
    BOOST_TEST(post::parse_duration("250ms")->count() == 250);
    BOOST_TEST(post::parse_duration("10s")->count() == 10000);
    BOOST_TEST(post::parse_duration("2m")->count() == 120000);
    BOOST_TEST(post::parse_duration("1h")->count() == 3600000);
    BOOST_TEST(post::parse_duration("1500us")->count() == 2); // Rounded to ms.
    BOOST_TEST(post::parse_duration("400us")->count() == 0);
    BOOST_TEST(post::parse_duration("1.5s")->count() == 1500);
    BOOST_TEST(post::parse_duration("0")->count() == 0);
    BOOST_TEST(!post::parse_duration("10"));
    BOOST_TEST(!post::parse_duration("-1s"));
    BOOST_TEST(!post::parse_duration("ms"));
    BOOST_TEST(!post::parse_duration("10 parsecs"));
    BOOST_TEST(!post::parse_duration(""));
    BOOST_TEST(!post::parse_duration("99999999999999999h"));
}

BOOST_AUTO_TEST_CASE(nearest_is_levenshtein_with_a_sanity_limit) {
    std::vector<std::string_view> keys{"racing", "connection", "selection", "stacks"};
    BOOST_TEST(post::nearest("raceing", keys) == "racing");
    BOOST_TEST(post::nearest("selectoin", keys) == "selection");
    BOOST_TEST(post::nearest("stack", keys) == "stacks");
    BOOST_TEST(post::nearest("xyz", keys) == ""); // Nothing looks like a typo of it.
    BOOST_TEST(post::nearest("racing", {}) == "");
}

BOOST_AUTO_TEST_CASE(preference_names) {
    BOOST_TEST(post::to_string(post::preference::no_preference) == "no-preference");
    BOOST_TEST(post::to_string(post::preference::prohibit) == "prohibit");
}

BOOST_AUTO_TEST_SUITE_END()
