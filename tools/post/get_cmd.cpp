// `post get URL`: fetch one resource over HTTP as a message (docs/http.md). The request is a
// message whose properties are the pseudo-headers and fields; the stack is whatever the policy
// (policies/http.yaml by default) and racing pick for the URL's scheme: [h3, quic, udp] racing
// [http1, tls, tcp] for https://, [http1, tcp] for http://.
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/steady_timer.hpp>

#include <cstdio>
#include <fstream>
#include <optional>

namespace post_tool {
namespace {

struct get_options {
    std::string url;
    std::string policy_file;
    std::string output;
    bool json = false;
    int timeout_s = 30;
};

/// Host and port as the Host field wants them: IPv6 in brackets, the scheme's port left out.
std::string authority_of(const post::url& u) {
    std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    const bool default_port =
        (u.scheme == "https" && u.port == 443) || (u.scheme == "http" && u.port == 80);
    return default_port ? host : host + ":" + std::to_string(u.port);
}

bool write_body(const std::string& file, std::string_view body) {
    if (file.empty()) {
        if (!body.empty()) std::fwrite(body.data(), 1, body.size(), stdout);
        return std::fflush(stdout) == 0;
    }
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.close();
    return static_cast<bool>(out);
}

int run_get(const global_options& g, const get_options& o) {
    std::string why;
    auto u = post::url::parse(o.url, &why);
    if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", o.url, why));
    if (u->scheme != "http" && u->scheme != "https")
        throw std::invalid_argument(
            fmt::format("post get needs an http:// or https:// URL, got '{}'", o.url));
    const auto r = post::remote::from_url(o.url);

    boost::asio::io_context io;
    post::context ctx(io, context_options_for(g));
    print_context_warnings(ctx);
    if (g.verbose) trace_to_stderr(ctx);
    const auto policy_file =
        o.policy_file.empty() ? (policies_dir() / "http.yaml").string() : o.policy_file;
    auto pol = policy_for(g, policy_file, u->scheme);
    post::carrier c = post::initiate(ctx, r, pol);

    post::message request;
    auto& fields = request.properties().extra;
    std::string path = u->path.empty() ? "/" : u->path;
    if (auto hash = path.find('#'); hash != std::string::npos) path.resize(hash); // not sent
    fields[":method"] = "GET";
    fields[":scheme"] = u->scheme;
    fields[":authority"] = authority_of(*u);
    fields[":path"] = path.empty() ? "/" : path;
    fields["user-agent"] = "post-sockets";
    fields["accept"] = "*/*";
    c.send(std::move(request));

    std::optional<post::message> response;
    std::optional<post::error> failure;
    std::vector<std::string> stack;
    bool ended = false;
    boost::asio::steady_timer timer(io);
    timer.expires_after(std::chrono::seconds(o.timeout_s));
    timer.async_wait([&](boost::system::error_code ec) {
        if (ec || ended) return;
        failure = post::error{};
        failure->reason = fmt::format("no response within {} s", o.timeout_s);
        c.abort();
        io.stop();
    });
    auto end = [&] {
        ended = true;
        timer.cancel();
    };
    bool ready = false;
    std::optional<post::error> send_failure;
    c.on_ready([&] {
        ready = true;
        stack = c.stack();
    });
    c.on_received([&](post::message m) {
        if (response) return;
        if (stack.empty()) stack = c.stack();
        response = std::move(m);
        c.close();
    });
    c.on_send_error([&](post::message_id, const post::error& e) {
        // Before establishment the carrier's own error (refused, certificate) follows and says
        // more; after it, the request itself could not go (a bad field), so stop here.
        send_failure = e;
        if (ready) c.close();
    });
    c.on_error([&](const post::error& e) {
        if (!response && !failure) failure = e;
        end();
    });
    c.on_closed([&] { end(); });
    io.run();

    if (!response) {
        err_line(fmt::format("post get: {}: {}", o.url,
                             failure ? failure->to_string()
                             : send_failure
                                 ? send_failure->to_string()
                                 : std::string("the connection ended without a response")));
        return 2;
    }
    const auto& props = response->properties().extra;
    const auto status_it = props.find(":status");
    const std::string status = status_it == props.end() ? "" : status_it->second;
    const bool ok = status.size() == 3 && status[0] == '2';

    if (!o.json || !o.output.empty()) {
        if (!write_body(o.output, response->text())) {
            err_line(fmt::format("post get: cannot write the body to '{}'",
                                 o.output.empty() ? "stdout" : o.output));
            return 2;
        }
    }
    if (o.json) {
        nlohmann::json headers = nlohmann::json::object();
        for (const auto& [name, value] : props)
            if (!name.empty() && name[0] != ':') headers[name] = value;
        emit_json({{"event", "response"},
                   {"url", o.url},
                   {"status", status.empty() ? 0 : std::stoi(status)},
                   {"headers", headers},
                   {"body-length", response->size()},
                   {"stack", join_stack(stack)}});
    }
    if (!ok) {
        err_line(fmt::format("post get: {}: HTTP status {}", o.url, status));
        return 1;
    }
    return 0;
}

} // namespace

void add_get(CLI::App& app, const global_options& g, runner& run) {
    auto o = std::make_shared<get_options>();
    auto* cmd = app.add_subcommand(
        "get", "Fetch an http:// or https:// URL as an HTTP message; the body goes to stdout");
    cmd->fallthrough();
    cmd->add_option("url", o->url, "http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH")
        ->required();
    cmd->add_option("--policy", o->policy_file,
                    "Policy file (default: the shipped http.yaml: [h3, quic, udp] racing "
                    "[http1, tls, tcp] for https, [http1, tcp] for http)")
        ->check(CLI::ExistingFile);
    cmd->add_option("-o,--output", o->output, "Write the body to this file instead of stdout");
    cmd->add_flag("--json", o->json,
                  "Print status, header fields, body length and the winning stack as JSON "
                  "(the body then goes only to -o)");
    cmd->add_option("--timeout", o->timeout_s, "Give up after this many seconds (default 30)")
        ->check(CLI::Range(1, 3600));
    cmd->callback([o, &g, &run] { run = [o, &g] { return run_get(g, *o); }; });
}

} // namespace post_tool
