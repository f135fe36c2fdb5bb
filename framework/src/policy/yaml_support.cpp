// YAML reading with operator-grade errors: every problem carries file:line:column, unknown
// keys come with the nearest valid one, and hostile input cannot overflow the parser's stack.
#include "detail.hpp"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace post::policy_detail {

source_location diagnostics_sink::at(const YAML::Mark& mark) const {
    if (mark.is_null() || mark.line < 0) return {file_, 0, 0};
    return {file_, mark.line + 1, mark.column + 1};
}

source_location diagnostics_sink::at(const YAML::Node& node) const {
    if (!node.IsDefined()) return {file_, 0, 0};
    return at(node.Mark());
}

void diagnostics_sink::error(source_location where, std::string message) {
    list_.push_back({std::move(where), std::move(message)});
}

void diagnostics_sink::append(const std::vector<diagnostic>& more) {
    list_.insert(list_.end(), more.begin(), more.end());
}

void diagnostics_sink::throw_if_errors() const {
    if (!list_.empty()) throw policy_error(list_);
}

std::string read_file_text(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec))
        throw policy_error({{{file.string(), 0, 0}, "file not found"}});
    if (std::filesystem::is_directory(file, ec))
        throw policy_error({{{file.string(), 0, 0}, "is a directory, not a YAML file"}});
    std::ifstream in(file, std::ios::binary);
    if (!in) throw policy_error({{{file.string(), 0, 0}, "cannot open file for reading"}});
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw policy_error({{{file.string(), 0, 0}, "error while reading file"}});
    return text.str();
}

nesting_scan scan_nesting(std::string_view text, const std::string& file) {
    // A cheap over-estimate of the nesting yaml-cpp will see: open flow brackets outside
    // quotes and comments, plus the block indentation levels and the "- " / "? " indicators
    // that start the current line. Over-counting only rejects absurd documents; what matters
    // is never under-counting real nesting.
    nesting_scan result;
    std::vector<source_location> openers; // Flow brackets still open.
    int flow = 0;
    std::vector<std::size_t> indents; // Open block indentation levels.
    int line = 1, column = 0;
    bool in_single = false, in_double = false, in_comment = false;
    bool line_start = true;
    std::size_t indent = 0;
    int indicators = 0;
    char prev = '\n';
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        ++column;
        if (c == '\n') {
            ++line;
            column = 0;
            in_comment = false;
            line_start = true;
            indent = 0;
            indicators = 0;
            prev = c;
            continue;
        }
        if (in_comment) continue;
        if (in_double) {
            if (c == '\\') {
                ++i;
                ++column;
            } else if (c == '"') {
                in_double = false;
            }
            prev = c;
            continue;
        }
        if (in_single) {
            if (c == '\'') in_single = false;
            prev = c;
            continue;
        }
        bool token_start = prev == ' ' || prev == '\t' || prev == '\n' || prev == '[' ||
                           prev == '{' || prev == ',' || prev == ':' || prev == '-' || prev == '?';
        if (line_start) {
            if (c == ' ' || c == '\t') {
                ++indent;
                prev = c;
                continue;
            }
            if ((c == '-' || c == '?') && i + 1 < text.size() &&
                (text[i + 1] == ' ' || text[i + 1] == '\n')) {
                ++indicators;
                ++indent;
                prev = c;
                continue;
            }
            line_start = false;
            if (c != '#' && flow == 0) {
                // A content line: close deeper levels, open this one.
                while (!indents.empty() && indents.back() > indent)
                    indents.pop_back();
                if (indents.empty() || indents.back() < indent) indents.push_back(indent);
            }
            int depth = static_cast<int>(indents.size()) + indicators + flow;
            if (depth > max_nesting) {
                result.too_deep = source_location{file, line, column};
                return result;
            }
        }
        if (c == '#' && token_start) {
            in_comment = true;
        } else if (c == '"' && token_start) {
            in_double = true;
        } else if (c == '\'' && token_start) {
            in_single = true;
        } else if (c == '[' || c == '{') {
            ++flow;
            openers.push_back({file, line, column});
            int depth = static_cast<int>(indents.size()) + indicators + flow;
            if (depth > max_nesting) {
                result.too_deep = source_location{file, line, column};
                return result;
            }
        } else if ((c == ']' || c == '}') && flow > 0) {
            --flow;
            openers.pop_back();
        }
        prev = c;
    }
    if (!openers.empty()) result.unclosed = openers.back();
    return result;
}

namespace {

/// Records where each document starts; the content itself is not needed.
class document_starts final : public YAML::EventHandler {
public:
    std::vector<YAML::Mark> starts;

    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

[[noreturn]] void syntax_error(const std::string& file, const YAML::Mark& mark, std::string message,
                               const nesting_scan& scan) {
    diagnostics_sink sink(file);
    // yaml-cpp reports an unclosed bracket where it gave up (often the end of the file); the
    // fix is at the bracket, so name it.
    if (scan.unclosed && message.find("flow") != std::string::npos)
        message += " (the bracket at line " + std::to_string(scan.unclosed->line) + ", column " +
                   std::to_string(scan.unclosed->column) + " is never closed)";
    sink.error(sink.at(mark), "YAML syntax error: " + message);
    sink.throw_if_errors();
    throw policy_error(sink.list()); // Not reached; keeps [[noreturn]] honest.
}

} // namespace

YAML::Node load_yaml(std::string_view text, const std::string& file) {
    if (text.size() > max_document_size)
        throw policy_error({{{file, 0, 0},
                             "larger than " + std::to_string(max_document_size >> 10) +
                                 " KiB; this is not a policy or configuration"}});
    auto scan = scan_nesting(text, file);
    if (scan.too_deep)
        throw policy_error({{*scan.too_deep, "nesting deeper than " + std::to_string(max_nesting) +
                                                 " levels is not supported"}});
    const std::string input(text);
    YAML::Node root;
    std::vector<YAML::Mark> starts;
    try {
        root = YAML::Load(input);
        // Look for a second document. YAML::LoadAll is not used: in yaml-cpp 0.7 a stray ','
        // makes it produce empty documents forever (jbeder/yaml-cpp#1040, found by
        // fuzz_policy). Three steps are enough to tell a real second document from that.
        std::istringstream in(input);
        YAML::Parser parser(in);
        document_starts handler;
        for (int i = 0; i < 3 && parser.HandleNextDocument(handler); ++i) {
        }
        starts = std::move(handler.starts);
    } catch (const YAML::Exception& e) {
        syntax_error(file, e.mark, e.msg, scan);
    }
    // The parser is stuck when a document "starts" where the previous one did: a token that
    // no rule consumes.
    for (std::size_t i = 1; i < starts.size(); ++i) {
        if (starts[i].pos != starts[i - 1].pos) continue;
        auto pos = static_cast<std::size_t>(std::max(starts[i].pos, 0));
        std::string token = pos < input.size() ? std::string(1, input[pos]) : std::string("end");
        syntax_error(file, starts[i], "unexpected '" + token + "'", scan);
    }
    if (starts.size() > 1) {
        diagnostics_sink sink(file);
        sink.error(sink.at(starts[1]), "only one YAML document is allowed per file");
        sink.throw_if_errors();
    }
    return root;
}

std::string describe(const YAML::Node& node) {
    if (!node.IsDefined() || node.IsNull()) return "nothing";
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a mapping";
    auto s = node.Scalar();
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return "'" + s + "'";
}

std::vector<map_entry> checked_map(const YAML::Node& node, std::string_view context,
                                   const std::vector<std::string_view>& allowed,
                                   diagnostics_sink& sink) {
    std::vector<map_entry> entries;
    if (!node.IsDefined() || node.IsNull()) return entries;
    if (!node.IsMap()) {
        sink.error(node, std::string(context) + " must be a mapping of keys to values, got " +
                             describe(node));
        return entries;
    }
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
        // Copy out of the iterator: yaml-cpp's operator-> returns a proxy, so a reference into
        // it would dangle (found by fuzz_policy under ASan).
        const YAML::Node key = it->first;
        const YAML::Node value = it->second;
        if (!key.IsScalar()) {
            sink.error(key, "keys in " + std::string(context) + " must be plain names, got " +
                                describe(key));
            continue;
        }
        auto name = key.Scalar();
        if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
            auto hint = did_you_mean(name, allowed);
            if (hint.empty()) {
                std::vector<std::string> names(allowed.begin(), allowed.end());
                hint = "; expected one of: " + join(names, ", ");
            }
            sink.error(key, "unknown key '" + name + "' in " + std::string(context) + hint);
            continue;
        }
        if (!seen.insert(name).second) {
            sink.error(key, "duplicate key '" + name + "' in " + std::string(context));
            continue;
        }
        entries.push_back({name, key, value});
    }
    return entries;
}

std::optional<std::string> expect_scalar(const YAML::Node& node, std::string_view what,
                                         diagnostics_sink& sink) {
    if (node.IsDefined() && node.IsScalar()) return node.Scalar();
    sink.error(node, std::string(what) + " must be a single value, got " + describe(node));
    return std::nullopt;
}

std::optional<std::vector<std::string>>
expect_scalar_list(const YAML::Node& node, std::string_view what, diagnostics_sink& sink) {
    if (node.IsDefined() && node.IsScalar()) return std::vector<std::string>{node.Scalar()};
    if (!node.IsDefined() || !node.IsSequence()) {
        sink.error(node, std::string(what) + " must be a list of names, got " + describe(node));
        return std::nullopt;
    }
    std::vector<std::string> items;
    bool ok = true;
    for (const auto& item : node) {
        if (!item.IsScalar()) {
            sink.error(item, "items of " + std::string(what) + " must be single values, got " +
                                 describe(item));
            ok = false;
            continue;
        }
        items.push_back(item.Scalar());
    }
    if (!ok) return std::nullopt;
    return items;
}

} // namespace post::policy_detail
