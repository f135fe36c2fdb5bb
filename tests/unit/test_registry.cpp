#define BOOST_TEST_MODULE registry
#include <boost/test/unit_test.hpp>

#include <utility>

#include <post/plugin_registry.hpp>

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

struct quiet_log : post::sdk::log_sink {
    void log(post::sdk::log_level, std::string_view, std::string_view) noexcept override {}
};

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() /
               ("post-registry-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

const post::refused_plugin* refusal_for(const post::plugin_registry& r, const fs::path& file) {
    for (const auto& x : r.refused())
        if (x.file.filename() == file.filename()) return &x;
    return nullptr;
}

} // namespace

BOOST_AUTO_TEST_CASE(loads_the_shipped_plugins) {
    post::plugin_registry r;
    r.load_directory(POST_PLUGIN_DIR);
    BOOST_TEST(r.refused().empty());
    BOOST_REQUIRE(r.find_layer("tcp"));
    BOOST_REQUIRE(r.find_layer("udp"));
    BOOST_REQUIRE(r.find_layer("framer"));
    BOOST_TEST((r.find_layer("tcp")->lower == post::sdk::edge::none));
    BOOST_TEST((r.find_layer("framer")->lower == post::sdk::edge::stream));
    for (const auto& p : r.plugins()) {
        BOOST_TEST(p.abi_major == post::sdk::abi_major);
        BOOST_TEST(!p.file.empty());
    }
    BOOST_TEST(r.load_time().count() > 0);
    // Loading the same folder twice does not duplicate anything.
    auto before = r.plugins().size();
    r.load_directory(POST_PLUGIN_DIR);
    BOOST_TEST(r.plugins().size() == before);
}

BOOST_AUTO_TEST_CASE(only_filter) {
    post::plugin_registry r;
    r.load_directory(POST_PLUGIN_DIR, {"udp"});
    BOOST_TEST(r.plugins().size() == 1u);
    BOOST_TEST(r.find_layer("udp"));
    BOOST_TEST(!r.find_layer("tcp"));
}

BOOST_AUTO_TEST_CASE(abi_mismatch_is_refused_naming_both_versions) {
    post::plugin_registry r;
    fs::path file = fs::path(POST_BAD_PLUGIN_DIR) / "libpost-wrong_abi.so";
    BOOST_TEST(!r.load_file(file));
    auto* why = refusal_for(r, file);
    BOOST_REQUIRE(why);
    // The bad plugin claims major version abi_major + 98.
    BOOST_TEST(why->reason.find(std::to_string(post::sdk::abi_major + 98) + "." +
                                std::to_string(post::sdk::abi_minor)) != std::string::npos,
               why->reason);
    BOOST_TEST(why->reason.find(std::to_string(post::sdk::abi_major) + "." +
                                std::to_string(post::sdk::abi_minor)) != std::string::npos);
    BOOST_TEST(r.plugins().empty());
}

BOOST_AUTO_TEST_CASE(missing_descriptor_is_refused) {
    post::plugin_registry r;
    fs::path file = fs::path(POST_BAD_PLUGIN_DIR) / "libpost-no_descriptor.so";
    BOOST_TEST(!r.load_file(file));
    auto* why = refusal_for(r, file);
    BOOST_REQUIRE(why);
    BOOST_TEST(why->reason.find("post_plugin_descriptor") != std::string::npos, why->reason);
}

BOOST_AUTO_TEST_CASE(unknown_feature_is_refused) {
    post::plugin_registry r;
    fs::path file = fs::path(POST_BAD_PLUGIN_DIR) / "libpost-unknown_feature.so";
    BOOST_TEST(!r.load_file(file));
    auto* why = refusal_for(r, file);
    BOOST_REQUIRE(why);
    BOOST_TEST(why->reason.find("teleportation") != std::string::npos, why->reason);
}

BOOST_AUTO_TEST_CASE(corrupt_and_truncated_files_are_refused) {
    temp_dir dir;
    {
        std::ofstream(dir.path / "libpost-garbage.so") << "this is not an ELF file at all";
        // A real plugin cut short: the ELF header survives, the segments do not.
        std::ifstream in(fs::path(POST_PLUGIN_DIR) / "libpost-tcp.so", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        BOOST_REQUIRE(bytes.size() > 1000);
        std::ofstream(dir.path / "libpost-truncated.so", std::ios::binary) << bytes.substr(0, 1500);
    }
    post::plugin_registry r;
    r.load_directory(dir.path);
    BOOST_TEST(r.plugins().empty());
    BOOST_REQUIRE(r.refused().size() == 2u);
    for (const auto& x : r.refused()) {
        BOOST_TEST(x.reason.find("not a loadable shared object") != std::string::npos, x.reason);
        BOOST_TEST(x.file.parent_path() == dir.path);
    }
}

BOOST_AUTO_TEST_CASE(duplicate_plugin_is_refused_and_first_wins) {
    temp_dir dir;
    fs::copy_file(fs::path(POST_PLUGIN_DIR) / "libpost-udp.so", dir.path / "libpost-udp.so");
    post::plugin_registry r;
    r.load_directory(dir.path);
    r.load_directory(POST_PLUGIN_DIR);
    BOOST_REQUIRE(r.refused().size() == 1u);
    BOOST_TEST(r.refused()[0].reason.find("already loaded") != std::string::npos);
    for (const auto& p : r.plugins())
        if (p.name == "udp") BOOST_TEST(p.file.parent_path() == dir.path);
}

BOOST_AUTO_TEST_CASE(created_layers_keep_their_library) {
    boost::asio::io_context io; // outlives the layer, which holds its executor
    std::shared_ptr<post::sdk::layer> layer;
    {
        post::plugin_registry r;
        r.load_directory(POST_PLUGIN_DIR);
        post::sdk::layer_context ctx;
        ctx.executor = io.get_executor();
        static quiet_log log;
        ctx.log = &log;
        post::sdk::flow_error err;
        layer = r.create_layer("udp", ctx, err);
        BOOST_REQUIRE_MESSAGE(layer, err.reason);
        post::sdk::flow_error none;
        auto missing = r.create_layer("no-such-layer", ctx, none);
        BOOST_TEST(!missing);
        BOOST_TEST(none.reason.find("no-such-layer") != std::string::npos);
    }
    // The registry is gone; the layer's code must still be mapped (a virtual call works).
    post::sdk::flow_error err;
    auto acceptor = layer->listen({boost::asio::ip::make_address("127.0.0.1"), 0}, err);
    BOOST_TEST(acceptor != nullptr);
    if (acceptor) acceptor->close();
}
