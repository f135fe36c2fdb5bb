// `post policy check` and `post policy explain`: what an operator runs before deploying a policy
// file. Both use the same engine as connection establishment, so what they say is what happens.
#include "common.hpp"
#include "json_events.hpp"

#include <post/interfaces.hpp>

#include <fmt/core.h>

namespace post_tool {
namespace {

struct explain_options {
    std::string file, remote;
    bool json = false;
};

std::string location(const post::source_location& l) {
    return l.file.empty() ? std::string() : l.to_string();
}

int run_check(const global_options& g, const std::vector<std::string>& files) {
    boost::asio::io_context io;
    post::context ctx(io, context_options_for(g));
    const auto catalog = ctx.plugins().catalog();
    int failed = 0;
    for (const auto& file : files) {
        try {
            auto merged = ctx.effective(post::policy::load_file(file));
            post::validate(merged, catalog);
            auto result = post::select_stacks(merged, catalog);
            out_line(fmt::format("{}: ok ({} candidate stack{})", file, result.candidates.size(),
                                 result.candidates.size() == 1 ? "" : "s"));
        } catch (const post::policy_error& e) {
            // Already "file:line:col: message", one per line.
            err_line(e.what());
            ++failed;
        } catch (const std::exception& e) {
            err_line(fmt::format("{}: {}", file, e.what()));
            ++failed;
        }
    }
    return failed == 0 ? 0 : 1;
}

int run_explain(const global_options& g, const explain_options& o) {
    std::string why;
    auto u = post::url::parse(o.remote, &why);
    if (!u) throw std::invalid_argument(fmt::format("bad --remote URL '{}': {}", o.remote, why));
    const auto constraint = constraint_for_scheme(u->scheme);

    boost::asio::io_context io;
    post::context ctx(io, context_options_for(g));
    const auto catalog = ctx.plugins().catalog();
    auto merged = ctx.effective(post::policy::load_file(o.file));
    post::validate(merged, catalog);
    // Throws policy_error (printed by main, exit 1) when nothing is left.
    auto result = post::select_stacks(merged, catalog, constraint);

    if (o.json) {
        nlohmann::json candidates = nlohmann::json::array();
        int rank = 0;
        for (const auto& c : result.candidates)
            candidates.push_back({{"rank", ++rank},
                                  {"stack", c.layers},
                                  {"score", c.score},
                                  {"features", c.features},
                                  {"notes", c.notes}});
        nlohmann::json excluded = nlohmann::json::array();
        for (const auto& x : result.excluded)
            excluded.push_back(
                {{"stack", x.layers}, {"reason", x.reason}, {"rule", location(x.rule)}});
        nlohmann::json overridden = nlohmann::json::array();
        for (const auto& [prop, rule] : merged.overridden)
            overridden.push_back({{"property", prop},
                                  {"application", post::to_string(rule.level)},
                                  {"rule", location(rule.where)}});
        nlohmann::json j{{"policy", merged.effective.name},
                         {"file", o.file},
                         {"remote", o.remote},
                         {"constraint", constraint.must_contain},
                         {"candidates", candidates},
                         {"excluded", excluded},
                         {"overridden", overridden}};
        out_line(to_line(j));
        return 0;
    }

    out_line(fmt::format("policy {} ({}) for {}",
                         merged.effective.name.empty() ? "(unnamed)" : merged.effective.name,
                         o.file, o.remote));
    if (!constraint.must_contain.empty())
        out_line(fmt::format("  {} requires a stack containing {}", constraint.origin,
                             join_stack(constraint.must_contain, ", ")));
    for (const auto& [prop, rule] : merged.overridden)
        out_line(fmt::format("  the system policy overrides '{}: {}' at {}", prop,
                             post::to_string(rule.level), location(rule.where)));
    out_line(fmt::format("candidate stacks, best first ({}):", result.candidates.size()));
    int rank = 0;
    for (const auto& c : result.candidates) {
        out_line(fmt::format("  {}. {}  score {}", ++rank, join_stack(c.layers), c.score));
        for (const auto& n : c.notes)
            out_line(fmt::format("       {}", n));
    }
    out_line(fmt::format("excluded stacks ({}):", result.excluded.size()));
    for (const auto& x : result.excluded) {
        auto at = location(x.rule);
        out_line(fmt::format("  {}: {}{}", join_stack(x.layers), x.reason,
                             at.empty() ? "" : " (" + at + ")"));
    }
    const auto& r = merged.effective.racing;
    out_line(fmt::format("racing: attempt-delay {}ms, resolution-delay {}ms, stack-delay {}ms, "
                         "at most {} attempts in flight",
                         r.attempt_delay.count(), r.resolution_delay.count(), r.stack_delay.count(),
                         r.max_attempts));
    // Interface rules are judged against this host's interfaces, as establishment will.
    if (const auto& rules = merged.effective.interfaces) {
        const auto gathered = post::apply_interface_rules(post::gather_interfaces(), rules);
        out_line(
            fmt::format("local addresses on this host, best first ({}):", gathered.usable.size()));
        for (const auto& l : gathered.usable)
            out_line(fmt::format("  {} {} ({}){}", l.address.to_string(), l.interface,
                                 post::to_string(l.type),
                                 l.rank == 0   ? ", preferred"
                                 : l.rank == 2 ? ", avoided"
                                               : ""));
        out_line(fmt::format("excluded ({}):", gathered.excluded.size()));
        for (const auto& [l, why] : gathered.excluded)
            out_line(fmt::format(
                "  {}{}", l.address.is_unspecified() ? "" : l.address.to_string() + " ", why));
    }
    return 0;
}

} // namespace

void add_policy(CLI::App& app, const global_options& g, runner& run) {
    auto* p = app.add_subcommand("policy", "Check policy files and explain stack selection");
    p->fallthrough();
    p->require_subcommand(1);

    auto files = std::make_shared<std::vector<std::string>>();
    auto* check = p->add_subcommand(
        "check", "Load, merge with the system policy, validate and select stacks for each FILE");
    check->fallthrough();
    check->add_option("files", *files, "Policy files")->required();
    check->callback([&g, &run, files] { run = [&g, files] { return run_check(g, *files); }; });

    auto eo = std::make_shared<explain_options>();
    auto* explain = p->add_subcommand(
        "explain", "Show candidate stacks in rank order and why the others were excluded");
    explain->fallthrough();
    explain->add_option("file", eo->file, "Policy file")->required();
    explain->add_option("--remote", eo->remote, "The remote, as a URL (its scheme constrains)")
        ->required();
    explain->add_flag("--json", eo->json, "Print one JSON object");
    explain->callback([&g, &run, eo] { run = [&g, eo] { return run_explain(g, *eo); }; });
}

} // namespace post_tool
