// Every policy shipped in policies/ parses, validates against today's layers and selects the
// stack its header comment promises; the build tree has a copy of each.
#include <boost/test/unit_test.hpp>

#include <post/policy.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

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

namespace fs = std::filesystem;
using layers = std::vector<std::string>;

const fs::path source_policies = fs::path(POST_SOURCE_DIR) / "policies";
const fs::path source_config = fs::path(POST_SOURCE_DIR) / "config";

/// What each shipped policy must pick first with tcp, udp and framer loaded. A new policy file
/// without an entry here fails the test, so every shipped policy stays tested.
const std::map<std::string, layers> expected_first{
    {"default.yaml", {"framer", "tcp"}},
    {"reliable-tcp.yaml", {"framer", "tcp"}},
    {"datagram.yaml", {"udp"}},
    {"interactive.yaml", {"framer", "tcp"}},
    {"low-latency.yaml", {"framer", "tcp"}},
    // tls is not in the test catalog, so [http1, tls, tcp] is excluded.
    {"http.yaml", {"http1", "tcp"}},
};

/// test_catalog plus the http plugin's layer (plugins/http/http_plugin.cpp), which only
/// http.yaml names.
std::vector<post::layer_info> catalog_with_http1() {
    auto catalog = post_test::test_catalog();
    static const post::sdk::option_spec http1_options[] = {
        {"max-message-size", post::sdk::option_type::integer, "Largest body", "16777216", 0,
         std::numeric_limits<std::int64_t>::max()},
        {"max-header-size", post::sdk::option_type::integer, "Largest header block", "65536", 256,
         81920},
    };
    post::layer_info http1{
        "http1", "http", "HTTP/1.1", post::sdk::edge::message, post::sdk::edge::stream, {}, {}};
    http1.features["preserve-msg-boundaries"] = post::sdk::feature_effect::provides;
    http1.options.assign(std::begin(http1_options), std::end(http1_options));
    catalog.push_back(http1);
    return catalog;
}

std::vector<fs::path> shipped() {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(source_policies))
        if (e.path().extension() == ".yaml") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

} // namespace

BOOST_AUTO_TEST_SUITE(shipped_policies)

BOOST_AUTO_TEST_CASE(at_least_four_with_a_comment_header) {
    auto files = shipped();
    BOOST_TEST(files.size() >= 4u);
    for (const auto& f : files) {
        std::ifstream in(f);
        std::string first;
        std::getline(in, first);
        BOOST_TEST(first.rfind("# " + f.filename().string(), 0) == 0u,
                   f << " starts with a comment naming the file");
    }
}

BOOST_AUTO_TEST_CASE(each_selects_its_expected_first_stack) {
    auto catalog = catalog_with_http1();
    auto system = post::policy::load_file(source_config / "system-policy.yaml");
    for (const auto& f : shipped()) {
        BOOST_TEST_CONTEXT(f.filename()) {
            auto expected = expected_first.find(f.filename().string());
            BOOST_TEST_REQUIRE((expected != expected_first.end()),
                               "no expectation for shipped policy " << f.filename());
            auto p = post::policy::load_file(f);
            BOOST_TEST(p.name + ".yaml" == f.filename().string());
            BOOST_TEST(!p.description.empty());
            // Alone and under the shipped (permissive) system policy: same result.
            for (const auto& m : {post::merge(post::policy{}, p), post::merge(system, p)}) {
                BOOST_CHECK_NO_THROW(post::validate(m, catalog));
                auto r = post::select_stacks(m, catalog);
                BOOST_TEST_REQUIRE(!r.candidates.empty());
                BOOST_TEST(r.candidates.front().layers == expected->second);
                for (const auto& layer : catalog)
                    BOOST_CHECK_NO_THROW(post::layer_options(m.effective, layer));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(interactive_explains_the_layers_that_are_not_loaded) {
    auto p = post::policy::load_file(source_policies / "interactive.yaml");
    auto r = post::select_stacks(post::merge(post::policy{}, p), post_test::test_catalog());
    BOOST_TEST_REQUIRE(r.excluded.size() == 2u);
    BOOST_TEST(r.excluded[0].layers == (layers{"quic", "udp"}));
    BOOST_TEST(r.excluded[0].reason == "layer 'quic' is not loaded");
    BOOST_TEST(r.excluded[1].reason == "layer 'tls' is not loaded");
}

BOOST_AUTO_TEST_CASE(datagram_keeps_tcp_as_fallback) {
    auto p = post::policy::load_file(source_policies / "datagram.yaml");
    auto r = post::select_stacks(post::merge(post::policy{}, p), post_test::test_catalog());
    BOOST_TEST_REQUIRE(r.candidates.size() == 2u);
    BOOST_TEST(r.candidates[1].layers == (layers{"framer", "tcp"}));
    BOOST_TEST(r.candidates[1].notes == (std::vector<std::string>{"avoids reliability: present"}));
}

BOOST_AUTO_TEST_CASE(default_file_matches_the_builtin_default) {
    auto file = post::policy::load_file(source_policies / "default.yaml");
    auto builtin = post::policy::defaults();
    BOOST_TEST(file.name == builtin.name);
    BOOST_TEST_REQUIRE(file.selection.size() == builtin.selection.size());
    for (const auto& [property, rule] : builtin.selection)
        BOOST_TEST((file.selection.at(property).level == rule.level), property);
    BOOST_TEST(file.stacks.empty());
}

BOOST_AUTO_TEST_CASE(build_tree_has_a_copy_of_each) {
    auto build_dir = fs::path(POST_BINARY_DIR) / "share" / "post" / "policies";
    for (const auto& f : shipped()) {
        BOOST_TEST(fs::exists(build_dir / f.filename()), build_dir / f.filename());
        BOOST_CHECK_NO_THROW(post::policy::load_file(build_dir / f.filename()));
    }
}

BOOST_AUTO_TEST_SUITE_END()
