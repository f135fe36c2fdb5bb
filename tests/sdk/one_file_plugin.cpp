// The smallest plugin: built by tests/sdk/out_of_tree.sh with nothing but
// `pkg-config --cflags postsockets-sdk`, to show the installed SDK needs no CMake.
#include <utility> // before Asio (Boost 1.74 with g++ 12)

#include <post/sdk.hpp>

#include <iterator>
#include <system_error>

namespace {

std::unique_ptr<post::sdk::layer> create(const post::sdk::layer_context&,
                                         post::sdk::flow_error& err) noexcept {
    err = {std::make_error_code(std::errc::operation_not_supported),
           "one-file: this layer exists only to be compiled"};
    return nullptr;
}

constexpr post::sdk::layer_descriptor layers[] = {
    {"one-file", "compiles with pkg-config only", post::sdk::edge::message,
     post::sdk::edge::message, nullptr, 0, nullptr, 0, &create}};

const post::sdk::plugin_descriptor descriptor{.name = "one-file",
                                              .version = "0.0.1",
                                              .license = "MIT",
                                              .description = "pkg-config build check",
                                              .layers = layers,
                                              .layer_count = std::size(layers)};

} // namespace

POST_PLUGIN(one_file, descriptor)
