// The host configuration file (config/post.yaml): shipped file, path resolution, errors.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <post/config.hpp>

#include <fstream>

#include <unistd.h>

namespace post {
// Lets Boost.Test print preferences in failure messages.
inline std::ostream& boost_test_print_type(std::ostream& os, preference p) {
    return os << to_string(p);
}
} // namespace post

namespace {

namespace fs = std::filesystem;

/// A scratch folder for one test, removed afterwards.
struct scratch_dir {
    fs::path path;
    scratch_dir() {
        path = fs::temp_directory_path() / ("post-test-config-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(counter()++));
        fs::create_directories(path);
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path write(const std::string& name, const std::string& text) const {
        auto p = path / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p;
    }
    static int& counter() {
        static int n = 0;
        return n;
    }
};

std::vector<post::diagnostic> errors_of(const std::string& text, const fs::path& file) {
    try {
        (void)post::host_config::parse(text, file);
    } catch (const post::policy_error& e) {
        BOOST_TEST_MESSAGE(e.what());
        return e.diagnostics();
    }
    return {};
}

} // namespace

BOOST_AUTO_TEST_CASE(shipped_config_in_the_build_tree_finds_the_build_plugins) {
    auto file = fs::path(POST_BINARY_DIR) / "etc" / "post" / "post.yaml";
    auto c = post::host_config::load_file(file);
    BOOST_TEST(c.file == file);
    BOOST_TEST_REQUIRE(c.plugin_path.size() == 1u);
    BOOST_TEST(c.plugin_path[0] ==
               (fs::path(POST_BINARY_DIR) / "lib" / "post" / "plugins").lexically_normal());
    BOOST_TEST(c.load.empty()); // Load every plugin found.
    BOOST_TEST(c.log_level == "warning");
    BOOST_TEST_REQUIRE(c.system_policy.has_value());
    BOOST_TEST(c.system_policy->name == "system");
    // Permissive: nothing required or prohibited.
    for (const auto& [property, rule] : c.system_policy->selection)
        BOOST_TEST(
            (rule.level != post::preference::require && rule.level != post::preference::prohibit),
            property);
}

BOOST_AUTO_TEST_CASE(shipped_source_config_parses) {
    auto c = post::host_config::load_file(fs::path(POST_SOURCE_DIR) / "config" / "post.yaml");
    BOOST_TEST(c.system_policy.has_value());
}

BOOST_AUTO_TEST_CASE(relative_paths_resolve_against_the_config_folder) {
    scratch_dir dir;
    dir.write("etc/policies/host.yaml", "version: 1\nselection: { security: prohibit }\n");
    auto file = dir.write("etc/post.yaml", "version: 1\n"
                                           "plugins:\n"
                                           "  path: [plugins, ../lib/post, /opt/post/plugins]\n"
                                           "  load: [tcp, framing]\n"
                                           "system-policy: policies/host.yaml\n"
                                           "log: { level: debug }\n");
    auto c = post::host_config::load_file(file);
    BOOST_TEST_REQUIRE(c.plugin_path.size() == 3u);
    BOOST_TEST(c.plugin_path[0] == dir.path / "etc" / "plugins");
    BOOST_TEST(c.plugin_path[1] == dir.path / "lib" / "post");
    BOOST_TEST(c.plugin_path[2] == fs::path("/opt/post/plugins"));
    BOOST_TEST(c.load == (std::vector<std::string>{"tcp", "framing"}));
    BOOST_TEST(c.log_level == "debug");
    BOOST_TEST_REQUIRE(c.system_policy.has_value());
    BOOST_TEST(c.system_policy->selection.at("security").level == post::preference::prohibit);
    BOOST_TEST(c.system_policy->selection.at("security").where.file ==
               (dir.path / "etc" / "policies" / "host.yaml").string());
}

BOOST_AUTO_TEST_CASE(single_path_string_is_a_list_of_one) {
    auto c = post::host_config::parse("version: 1\nplugins: { path: /usr/lib/post }\n",
                                      "/etc/post/post.yaml");
    BOOST_TEST_REQUIRE(c.plugin_path.size() == 1u);
    BOOST_TEST(c.plugin_path[0] == fs::path("/usr/lib/post"));
    BOOST_TEST(!c.system_policy.has_value());
    BOOST_TEST(c.log_level == "warning");
}

BOOST_AUTO_TEST_CASE(relative_config_file_name_resolves_to_absolute_paths) {
    auto c = post::host_config::parse("version: 1\nplugins: { path: [plugins] }\n", "post.yaml");
    BOOST_TEST_REQUIRE(c.plugin_path.size() == 1u);
    BOOST_TEST(c.plugin_path[0] == (fs::current_path() / "plugins").lexically_normal());
}

BOOST_AUTO_TEST_CASE(unknown_keys_suggest_the_nearest) {
    auto d = errors_of("version: 1\nplugin:\n  path: [x]\n", "/etc/post/post.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].to_string() == "/etc/post/post.yaml:2:1: unknown key 'plugin' in "
                                   "configuration; did you mean 'plugins'?");
    d = errors_of("version: 1\nplugins: { paths: [x] }\n", "c.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].to_string() == "c.yaml:2:12: unknown key 'paths' in plugins; did you mean "
                                   "'path'?");
}

BOOST_AUTO_TEST_CASE(bad_values) {
    auto d = errors_of("version: 1\nlog: { level: warn }\n", "c.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].to_string() == "c.yaml:2:15: unknown log level 'warn'; expected trace, debug, "
                                   "info, warning or error; did you mean 'warning'?");
    d = errors_of("version: 3\n", "c.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].message == "unsupported configuration version '3'; this library reads "
                               "version 1");
    d = errors_of("plugins: {}\n", "c.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].message.find("missing 'version: 1'") == 0u);
    d = errors_of("version: 1\nplugins: { path: { a: b } }\n", "c.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].message == "plugins.path must be a list of names, got a mapping");
    d = errors_of("version: 1\nplugins: [a\n", "c.yaml");
    BOOST_TEST_REQUIRE(d.size() == 1u);
    BOOST_TEST(d[0].message.find("YAML syntax error") == 0u);
}

BOOST_AUTO_TEST_CASE(system_policy_problems_are_reported_where_they_are) {
    scratch_dir dir;
    auto missing = dir.write("post.yaml", "version: 1\nsystem-policy: nowhere.yaml\n");
    try {
        (void)post::host_config::load_file(missing);
        BOOST_FAIL("expected policy_error");
    } catch (const post::policy_error& e) {
        BOOST_TEST(std::string(e.what()) == missing.string() + ":2:16: system policy file " +
                                                (dir.path / "nowhere.yaml").string() +
                                                " not found");
    }

    auto policy = dir.write("broken.yaml", "version: 1\nselection:\n  reliability: must\n");
    auto config = dir.write("post2.yaml", "version: 1\nsystem-policy: broken.yaml\n");
    try {
        (void)post::host_config::load_file(config);
        BOOST_FAIL("expected policy_error");
    } catch (const post::policy_error& e) {
        BOOST_TEST_REQUIRE(e.diagnostics().size() == 1u);
        BOOST_TEST(e.diagnostics()[0].where.to_string() == policy.string() + ":3:16");
    }
}

BOOST_AUTO_TEST_CASE(missing_config_file) {
    BOOST_CHECK_THROW(post::host_config::load_file("/nonexistent/post.yaml"), post::policy_error);
}
