// Runs post_tool::run_stream_connect / run_stream_listen on their own, for tests/cli/stream.sh
// while `post connect --stream` is not wired into the tool yet:
//   post_stream_probe connect|listen URL [POLICY_FILE]
#include "../../tools/post/stream_cmd.hpp"

#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
    if (argc < 3 ||
        (std::string_view(argv[1]) != "connect" && std::string_view(argv[1]) != "listen")) {
        std::fprintf(stderr, "usage: %s connect|listen URL [POLICY_FILE]\n", argv[0]);
        return 2;
    }
    post_tool::global_options g;
    const std::string policy = argc > 3 ? argv[3] : "";
    return std::string_view(argv[1]) == "connect"
               ? post_tool::run_stream_connect(g, argv[2], policy)
               : post_tool::run_stream_listen(g, argv[2], policy);
}
