// post: the command line face of Post Sockets. Each subcommand lives in its own file and
// registers itself here; main only parses, runs, and turns stray exceptions into messages.
#include "allocator_tuning.hpp"
#include "common.hpp"

#include <fmt/core.h>

#include <csignal>
#include <exception>

int main(int argc, char** argv) {
    post_tool::tune_allocator_for_large_messages();
    // A reader that goes away (`post listen | head`) must not kill us mid-write; sockets report
    // EPIPE as an error instead.
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"post: send and receive messages over protocol stacks chosen by policy"};
    app.require_subcommand(1);
    // Global options may appear before or after the subcommand.
    app.fallthrough();

    post_tool::global_options g;
    app.add_option("--config", g.config_file,
                   "Host configuration file (default: POST_CONFIG, "
                   "then etc/post/post.yaml next to the program)")
        ->check(CLI::ExistingFile);
    app.add_flag("-v,--verbose", g.verbose, "Print trace events (establishment, racing) to stderr");
    app.add_option("--ca", g.ca_file,
                   "Trust this PEM CA bundle instead of the system store (tls, dtls)")
        ->check(CLI::ExistingFile);
    app.add_option("--cert", g.cert_file,
                   "Our certificate chain, PEM (required to listen on tls://; a client certificate "
                   "when connecting)")
        ->check(CLI::ExistingFile);
    app.add_option("--key", g.key_file, "The private key of --cert, PEM")->check(CLI::ExistingFile);
    app.add_flag("--insecure", g.insecure,
                 "Do not verify the peer's certificate (tls, dtls). Dangerous; warns loudly");
    app.add_option("--associations", g.association_file,
                   "Keep associations (TLS session tickets, racing winners) in this file between "
                   "runs, so that the next run resumes; mode 0600 (e.g. " +
                       post::default_association_file().string() + ")");

    post_tool::runner run;
    post_tool::add_listen_connect(app, g, run);
    post_tool::add_plugins(app, g, run);
    post_tool::add_policy(app, g, run);
    post_tool::add_bench(app, g, run);
    post_tool::add_demo(app, g, run);
    post_tool::add_get(app, g, run);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help exits 0; any usage error exits 2, as is customary, whatever CLI11's own code.
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (!run) {
        // A command group (`post policy`) without its subcommand.
        post_tool::err_line(app.help());
        return 2;
    }
    try {
        return run();
    } catch (const post::policy_error& e) {
        // One "file:line:col: message" per line, as the loader produced them.
        post_tool::err_line(e.what());
        return 1;
    } catch (const std::exception& e) {
        post_tool::err_line(fmt::format("post: error: {}", e.what()));
        return 1;
    }
}
