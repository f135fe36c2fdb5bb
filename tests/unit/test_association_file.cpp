// Persisted associations: the file format round trip, its permissions, and every way a file
// can be unusable (absent, corrupt, another version, readable by others, a bad entry), which
// is ignored with a warning and never stops the context.
#define BOOST_TEST_MODULE association file
#include <utility>

#include "association_file.hpp"

#include <post.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

#include <sys/stat.h>
#include <unistd.h>

using namespace post;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "post-assoc-XXXXXX").string();
        BOOST_REQUIRE(::mkdtemp(tmpl.data()));
        path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write_file(const fs::path& p, const std::string& text, mode_t mode = 0600) {
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
}

bool contains(const std::vector<std::string>& warnings, const std::string& part) {
    for (const auto& w : warnings)
        if (w.find(part) != std::string::npos) return true;
    return false;
}

association::saved sample() {
    association::saved s;
    s.key = "example.org:443";
    s.winner = association::outcome{{"framer", "tls", "tcp"}, "192.0.2.1:443", {}};
    s.winner_at = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000));
    s.state["tls/example.org/post/1"] = {0x00, 0x01, 0xfe, 0xff};
    return s;
}

context_options options_with(const fs::path& file) {
    context_options o;
    o.use_environment = false;
    o.load_plugins = false;
    o.association_file = file;
    return o;
}

} // namespace

BOOST_AUTO_TEST_CASE(round_trip_keeps_state_and_winner_with_owner_only_modes) {
    temp_dir d;
    const auto file = d.path / "state" / "post" / "associations.json";
    BOOST_REQUIRE_EQUAL(detail::save_association_file(file, {sample()}), "");
    struct stat st {};
    BOOST_REQUIRE(::stat(file.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    BOOST_REQUIRE(::stat(file.parent_path().c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0700u);

    std::vector<std::string> warnings;
    auto loaded = detail::load_association_file(file, warnings);
    BOOST_TEST(warnings.empty());
    BOOST_REQUIRE_EQUAL(loaded.size(), 1u);
    BOOST_TEST(loaded[0].key == "example.org:443");
    BOOST_REQUIRE(loaded[0].winner);
    BOOST_TEST(loaded[0].winner->stack == (std::vector<std::string>{"framer", "tls", "tcp"}),
               boost::test_tools::per_element());
    BOOST_TEST(loaded[0].winner->address == "192.0.2.1:443");
    BOOST_TEST((loaded[0].winner_at == sample().winner_at));
    BOOST_TEST((loaded[0].state == sample().state));
}

BOOST_AUTO_TEST_CASE(absent_file_is_a_first_run_without_warning) {
    temp_dir d;
    std::vector<std::string> warnings;
    BOOST_TEST(detail::load_association_file(d.path / "none.json", warnings).empty());
    BOOST_TEST(warnings.empty());
}

BOOST_AUTO_TEST_CASE(corrupt_file_is_ignored_with_a_warning) {
    temp_dir d;
    const auto file = d.path / "a.json";
    write_file(file, "{\"format\": \"post-sockets associations\", \"version\": 1, \"associ");
    std::vector<std::string> warnings;
    BOOST_TEST(detail::load_association_file(file, warnings).empty());
    BOOST_TEST(contains(warnings, "not valid JSON"));
    BOOST_TEST(contains(warnings, file.string()));
}

BOOST_AUTO_TEST_CASE(another_version_is_ignored_naming_both) {
    temp_dir d;
    const auto file = d.path / "a.json";
    write_file(file,
               R"({"format": "post-sockets associations", "version": 7, "associations": []})");
    std::vector<std::string> warnings;
    BOOST_TEST(detail::load_association_file(file, warnings).empty());
    BOOST_TEST(contains(warnings, "version 7, this library reads version 1"), warnings.front());
}

BOOST_AUTO_TEST_CASE(a_file_others_can_read_is_refused) {
    temp_dir d;
    const auto file = d.path / "a.json";
    BOOST_REQUIRE_EQUAL(detail::save_association_file(file, {sample()}), "");
    ::chmod(file.c_str(), 0644);
    std::vector<std::string> warnings;
    BOOST_TEST(detail::load_association_file(file, warnings).empty());
    BOOST_TEST(contains(warnings, "readable by others (mode 0644)"));
}

BOOST_AUTO_TEST_CASE(a_bad_entry_is_skipped_and_the_rest_kept) {
    temp_dir d;
    const auto file = d.path / "a.json";
    write_file(file, R"({"format": "post-sockets associations", "version": 1, "associations": [
        {"key": "bad:1", "state": {"tls": "zz"}},
        {"key": "good:2", "state": {"tls": "0a0b"}},
        {"nokey": true}]})");
    std::vector<std::string> warnings;
    auto loaded = detail::load_association_file(file, warnings);
    BOOST_REQUIRE_EQUAL(loaded.size(), 1u);
    BOOST_TEST(loaded[0].key == "good:2");
    BOOST_TEST(warnings.size() == 2u);
    BOOST_TEST(contains(warnings, "entry 'bad:1' has unusable state for 'tls'"));
}

BOOST_AUTO_TEST_CASE(a_restarted_context_finds_what_the_last_one_stored) {
    temp_dir d;
    const auto file = d.path / "associations.json";
    const auto r = remote::from_url("tls://example.org");
    {
        boost::asio::io_context io;
        context ctx(io, options_with(file));
        BOOST_TEST(ctx.warnings().empty());
        ctx.association_for(r)->put_state("tls/example.org/", {1, 2, 3});
        io.run(); // the coalesced save
        struct stat st {};
        BOOST_TEST(::stat(file.c_str(), &st) == 0);
    }
    boost::asio::io_context io;
    context ctx(io, options_with(file));
    BOOST_TEST(ctx.warnings().empty());
    auto blob = ctx.association_for(r)->state("tls/example.org/");
    BOOST_REQUIRE(blob);
    BOOST_TEST((*blob == std::vector<std::uint8_t>{1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(a_context_with_a_corrupt_file_works_and_warns) {
    temp_dir d;
    const auto file = d.path / "associations.json";
    write_file(file, "\x01\x02 not json");
    boost::asio::io_context io;
    context ctx(io, options_with(file));
    BOOST_TEST(contains(ctx.warnings(), "not valid JSON"));
    BOOST_TEST(!ctx.association_for(remote::from_url("tcp://example.org:1"))->state("x"));
    // The next save replaces the damaged file with a good one.
    ctx.association_for(remote::from_url("tcp://example.org:1"))->put_state("x", {9});
    BOOST_TEST(ctx.save_associations() == "");
    std::vector<std::string> warnings;
    BOOST_TEST(detail::load_association_file(file, warnings).size() == 1u);
    BOOST_TEST(warnings.empty());
}
