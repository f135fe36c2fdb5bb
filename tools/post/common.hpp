// What the subcommands of `post` share: global options, building a context, turning a URL into
// a policy and a stack constraint, and printing lines that tests and scripts can read at once.
#pragma once

#include <utility>
// <utility> before Asio (see docs: g++ 12 with Boost 1.74).
#include <post.hpp>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace post_tool {

/// Options every subcommand accepts (`post -v listen ...` or `post listen ... -v`).
struct global_options {
    std::string config_file; ///< --config: host configuration; empty = the kernel's default.
    bool verbose = false;    ///< -v: trace events to stderr.
    /// --associations: persist associations (TLS tickets, racing winners) in this file.
    std::string association_file;
    /// --ca, --cert, --key, --insecure: options of the tls and dtls layers.
    std::string ca_file, cert_file, key_file;
    bool insecure = false;
};

/// Each subcommand registers itself and, when parsed, leaves the function that runs it here.
using runner = std::function<int()>;

void add_listen_connect(CLI::App& app, const global_options& g, runner& run);
void add_plugins(CLI::App& app, const global_options& g, runner& run);
void add_policy(CLI::App& app, const global_options& g, runner& run);
void add_bench(CLI::App& app, const global_options& g, runner& run);
/// `post bench hol`, registered in the `post bench` group that add_bench builds.
void add_bench_hol(CLI::App& bench, const global_options& g, runner& run);
/// `post bench tls`, registered in the same group.
void add_bench_tls(CLI::App& bench, const global_options& g, runner& run);
/// `post bench racing`, registered in the same group.
void add_bench_racing(CLI::App& bench, const global_options& g, runner& run);
/// `post bench sctp` (bench_sctp.cpp): our SCTP carrier against usrsctp's tsctp.
void add_bench_sctp(CLI::App& bench, const global_options& g, runner& run);
/// `post bench quic` (bench_quic.cpp): our [quic, udp] carrier against gtlsserver/gtlsclient.
void add_bench_quic(CLI::App& bench, const global_options& g, runner& run);
void add_demo(CLI::App& app, const global_options& g, runner& run);
/// `post get URL` (get_cmd.cpp): one HTTP GET as a message (docs/http.md).
void add_get(CLI::App& app, const global_options& g, runner& run);

/// Context options from the global flags.
post::context_options context_options_for(const global_options& g);

/// Plain TCP stacks only (no tls), with `origin` for messages about excluded stacks.
post::stack_constraint plain_tcp(std::string origin);

/// Print the context's set-up warnings (an unusable association file) to stderr.
void print_context_warnings(const post::context& ctx);

/// Print every trace event of `ctx` to stderr, one line each.
void trace_to_stderr(post::context& ctx);

/// The constraint a URL scheme puts on the stack: tcp:// needs tcp, udp:// needs udp, no scheme
/// leaves it to the policy. Throws std::invalid_argument for other schemes.
post::stack_constraint constraint_for_scheme(std::string_view scheme);

/// The policy to use for `scheme` when the user gave `policy_file` (may be empty). Without a
/// file: post::policy::defaults(), except that udp:// relaxes reliability to no-preference,
/// because the default requires it and no datagram stack provides it.
post::policy policy_for(const std::string& policy_file, std::string_view scheme);
/// As above, with the security flags of `g` applied to the tls and dtls layers (they override
/// the policy file). --insecure prints a warning.
post::policy policy_for(const global_options& g, const std::string& policy_file,
                        std::string_view scheme);

/// The folder of shipped policies: <exe>/../share/post/policies, else the source tree's.
std::filesystem::path policies_dir();

/// "framer/tcp"
std::string join_stack(const std::vector<std::string>& layers, std::string_view sep = "/");

/// Write one line (a newline is appended) to stdout or stderr and flush, so that a reader on the
/// other end of a pipe sees it immediately.
void out_line(std::string_view text);
void err_line(std::string_view text);

/// A literal address or "localhost" to a local endpoint; throws std::invalid_argument.
post::local local_from_url(const post::url& u);

} // namespace post_tool
