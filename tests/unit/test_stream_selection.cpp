// Stack selection for byte-stream carriers (stack_constraint::stream_top): the top layer must
// offer a stream edge, for explicit and derived stacks, and message boundaries do not apply.
#define BOOST_TEST_MODULE stream_selection
#include <boost/test/unit_test.hpp>

#include <post/policy.hpp>

#include <algorithm>

namespace {

using post::sdk::edge;
using post::sdk::feature_effect;
using layers = std::vector<std::string>;

/// Today's layers (as the tcp, udp and framing plugins declare them) plus a stream-over-stream
/// layer like TLS, so that derivation has more than one stream stack to find.
std::vector<post::layer_info> catalog() {
    post::layer_info tcp{"tcp", "tcp", "TCP sockets", edge::stream, edge::none, {}, {}};
    for (auto f : {"reliability", "preserve-order", "congestion-control"})
        tcp.features[f] = feature_effect::provides;
    post::layer_info udp{"udp", "udp", "UDP sockets", edge::datagram, edge::none, {}, {}};
    udp.features["preserve-msg-boundaries"] = feature_effect::provides;
    post::layer_info framer{"framer", "framing", "Framing", edge::message, edge::stream, {}, {}};
    framer.features["preserve-msg-boundaries"] = feature_effect::provides;
    post::layer_info tls{"tls", "tls", "TLS", edge::stream, edge::stream, {}, {}};
    tls.features["security"] = feature_effect::provides;
    return {tcp, udp, framer, tls};
}

post::merged_policy app(const std::string& text) {
    return post::merge(post::policy{}, post::policy::parse(text, "app.yaml"));
}

post::stack_constraint stream_constraint() {
    post::stack_constraint c;
    c.stream_top = true;
    return c;
}

std::vector<layers> candidates(const post::selection_result& r) {
    std::vector<layers> out;
    for (const auto& c : r.candidates)
        out.push_back(c.layers);
    return out;
}

bool contains(const std::vector<layers>& v, const layers& l) {
    return std::find(v.begin(), v.end(), l) != v.end();
}

std::string select_error(const post::merged_policy& p, const post::stack_constraint& c) {
    try {
        (void)post::select_stacks(p, catalog(), c);
    } catch (const post::policy_error& e) {
        return e.what();
    }
    return {};
}

} // namespace

BOOST_AUTO_TEST_CASE(derived_stream_stacks_have_a_stream_top) {
    auto r = post::select_stacks(app("version: 1\nname: s\n"), catalog(), stream_constraint());
    auto c = candidates(r);
    BOOST_TEST(contains(c, layers{"tcp"}));
    BOOST_TEST(contains(c, layers{"tls", "tcp"}));
    BOOST_TEST(!contains(c, layers{"framer", "tcp"}));
    BOOST_TEST(!contains(c, layers{"framer", "tls", "tcp"}));
    BOOST_TEST(!contains(c, layers{"udp"}));
    // Fewer layers first at equal score.
    BOOST_TEST(c.front() == layers{"tcp"});
}

BOOST_AUTO_TEST_CASE(message_selection_is_unchanged) {
    auto r = post::select_stacks(app("version: 1\nname: m\n"), catalog());
    auto c = candidates(r);
    BOOST_TEST(contains(c, layers{"framer", "tcp"}));
    BOOST_TEST(contains(c, layers{"udp"}));
    BOOST_TEST(!contains(c, layers{"tcp"}));
}

BOOST_AUTO_TEST_CASE(explicit_stacks_are_judged_by_their_top) {
    auto p = app("version: 1\nname: e\nstacks:\n  - [framer, tcp]\n  - [tcp]\n  - [udp]\n");
    auto r = post::select_stacks(p, catalog(), stream_constraint());
    BOOST_TEST(candidates(r) == std::vector<layers>{layers{"tcp"}});
    bool framer_excluded = false;
    for (const auto& e : r.excluded)
        if (e.layers == layers{"framer", "tcp"}) {
            framer_excluded = true;
            BOOST_TEST(e.reason.find("framer offers a message edge") != std::string::npos,
                       e.reason);
            BOOST_TEST(e.reason.find("byte-stream") != std::string::npos, e.reason);
        }
    BOOST_TEST(framer_excluded);
}

BOOST_AUTO_TEST_CASE(only_message_stacks_leave_no_stream_candidate) {
    auto p = app("version: 1\nname: only-framer\nstacks:\n  - [framer, tcp]\n");
    auto what = select_error(p, stream_constraint());
    BOOST_TEST(what.find("no candidate stack") != std::string::npos, what);
    BOOST_TEST(what.find("[framer, tcp]") != std::string::npos, what);
}

BOOST_AUTO_TEST_CASE(validate_accepts_a_stream_stack_only_when_asked) {
    auto p = app("version: 1\nname: v\nstacks:\n  - [tcp]\n");
    BOOST_CHECK_THROW(post::validate(p, catalog()), post::policy_error);
    BOOST_CHECK_NO_THROW(post::validate(p, catalog(), stream_constraint()));
    auto framed = app("version: 1\nname: v\nstacks:\n  - [framer, tcp]\n");
    BOOST_CHECK_NO_THROW(post::validate(framed, catalog()));
    BOOST_CHECK_THROW(post::validate(framed, catalog(), stream_constraint()), post::policy_error);
}

BOOST_AUTO_TEST_CASE(boundaries_rule_does_not_apply_to_streams) {
    // The built-in default requires message boundaries; a stream carrier can still use it.
    auto p = post::merge(post::policy{}, post::policy::defaults());
    auto r = post::select_stacks(p, catalog(), stream_constraint());
    auto c = candidates(r);
    BOOST_TEST(contains(c, layers{"tcp"}));
    const auto& notes = r.candidates.front().notes;
    BOOST_TEST(std::any_of(notes.begin(), notes.end(), [](const std::string& n) {
        return n.find("preserve-msg-boundaries: not applicable to a byte stream") !=
               std::string::npos;
    }));
}

BOOST_AUTO_TEST_CASE(other_rules_still_apply_to_streams) {
    auto p = app("version: 1\nname: r\nselection:\n  security: require\n");
    auto c = candidates(post::select_stacks(p, catalog(), stream_constraint()));
    BOOST_TEST((c == std::vector<layers>{layers{"tls", "tcp"}}));
    auto none = app("version: 1\nname: r\nselection:\n  reliability: prohibit\n");
    auto what = select_error(none, stream_constraint());
    BOOST_TEST(what.find("prohibit reliability") != std::string::npos, what);
}

BOOST_AUTO_TEST_CASE(scheme_constraint_combines_with_stream_top) {
    auto c = stream_constraint();
    c.must_contain = {"udp"};
    c.origin = "URL scheme udp://";
    auto what = select_error(app("version: 1\nname: u\n"), c);
    BOOST_TEST(what.find("no candidate stack") != std::string::npos, what);
}
