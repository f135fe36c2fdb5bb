#include "common.hpp"

#include <fmt/core.h>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <system_error>

namespace post_tool {

post::context_options context_options_for(const global_options& g) {
    post::context_options o;
    if (!g.config_file.empty()) o.config_file = g.config_file;
    if (!g.association_file.empty()) o.association_file = g.association_file;
    return o;
}

post::stack_constraint plain_tcp(std::string origin) {
    auto c = post::constraint_for_scheme("tcp");
    c.origin = std::move(origin);
    return c;
}

void print_context_warnings(const post::context& ctx) {
    for (const auto& w : ctx.warnings())
        err_line("post: warning: " + w);
}

void trace_to_stderr(post::context& ctx) {
    // Times are relative to the first trace, so that a run reads as a timeline.
    auto start = std::make_shared<std::optional<std::chrono::steady_clock::time_point>>();
    ctx.on_trace([start](const post::trace_event& e) {
        if (!*start) *start = e.when;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(e.when - **start).count();
        err_line(fmt::format("trace +{:.3f}ms {} {}{}{}", us / 1000.0, post::to_string(e.what),
                             e.remote,
                             e.stack.empty() ? "" : " [" + join_stack(e.stack, ", ") + "]",
                             e.detail.empty() ? "" : ": " + e.detail));
    });
}

post::stack_constraint constraint_for_scheme(std::string_view scheme) {
    if (scheme.empty()) return {};
    if (scheme == "tcp" || scheme == "udp" || scheme == "tls" || scheme == "dtls" ||
        scheme == "https" || scheme == "http" || scheme == "sctp" || scheme == "quic")
        return post::constraint_for_scheme(scheme);
    throw std::invalid_argument(
        fmt::format("unsupported URL scheme '{}://' (use tcp://, udp://, tls://, dtls://, "
                    "https://, http://, sctp://, quic:// or HOST:PORT)",
                    scheme));
}

post::policy policy_for(const std::string& policy_file, std::string_view scheme) {
    if (!policy_file.empty()) return post::policy::load_file(policy_file);
    post::policy p = post::policy::defaults();
    if (scheme == "udp" || scheme == "dtls") {
        // The default policy requires what a stream transport gives (reliability, order,
        // congestion control), which no datagram stack provides: an explicit udp:// asks for
        // datagrams, so those requirements become no-preference instead of failing selection.
        // Only message boundaries stay required.
        for (auto& [name, rule] : p.selection) {
            if (rule.level != post::preference::require || name == "preserve-msg-boundaries")
                continue;
            rule.level = post::preference::no_preference;
            rule.where = {"<built-in default policy, relaxed for datagrams>", 0, 0};
        }
        p.name = "default (relaxed for " + std::string(scheme) + "://)";
    }
    return p;
}

post::policy policy_for(const global_options& g, const std::string& policy_file,
                        std::string_view scheme) {
    auto p = policy_for(policy_file, scheme);
    const post::source_location flag{"<command line>", 0, 0};
    // The global TLS flags set every layer that does TLS: tls and dtls (OpenSSL), quic (GnuTLS).
    for (const char* layer : {"tls", "dtls", "quic"}) {
        auto& opts = p.protocols[layer];
        if (!g.ca_file.empty()) opts["ca-file"] = post::raw_option{g.ca_file, flag};
        if (!g.cert_file.empty()) opts["cert-file"] = post::raw_option{g.cert_file, flag};
        if (!g.key_file.empty()) opts["key-file"] = post::raw_option{g.key_file, flag};
        if (g.insecure) opts["verify-peer"] = post::raw_option{std::string("false"), flag};
    }
    if (g.insecure)
        err_line("post: WARNING: --insecure: peer certificates are NOT verified; anyone on the "
                 "path can impersonate the server");
    return p;
}

std::filesystem::path policies_dir() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto dir = exe.parent_path().parent_path() / "share" / "post" / "policies";
        if (std::filesystem::is_directory(dir, ec)) return dir;
    }
    return POST_SOURCE_POLICY_DIR;
}

std::string join_stack(const std::vector<std::string>& layers, std::string_view sep) {
    std::string s;
    for (const auto& l : layers) {
        if (!s.empty()) s += sep;
        s += l;
    }
    return s;
}

namespace {
void write_line(std::FILE* f, std::string_view text) {
    if (!text.empty()) std::fwrite(text.data(), 1, text.size(), f); // data() may be null
    std::fputc('\n', f);
    std::fflush(f);
}
} // namespace

void out_line(std::string_view text) {
    write_line(stdout, text);
}
void err_line(std::string_view text) {
    write_line(stderr, text);
}

post::local local_from_url(const post::url& u) {
    post::local l;
    l.port = u.port;
    if (u.host.empty() || u.host == "*") return l;
    if (u.host == "localhost") {
        l.address = boost::asio::ip::make_address("127.0.0.1");
        return l;
    }
    boost::system::error_code ec;
    auto a = boost::asio::ip::make_address(u.host, ec);
    if (ec)
        throw std::invalid_argument(
            fmt::format("'{}' is not a literal address; listen needs one (or localhost)", u.host));
    l.address = a;
    return l;
}

} // namespace post_tool
