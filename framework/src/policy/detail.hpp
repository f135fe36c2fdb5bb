// Internals shared by the policy engine's translation units: diagnostics collection, YAML
// walking with good error messages, and scalar parsing. Not installed.
#pragma once

#include <post/policy.hpp>

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace post::policy_detail {

/// Collects diagnostics for one file, so that a loader reports every problem at once rather
/// than making the operator fix them one run at a time.
class diagnostics_sink {
public:
    explicit diagnostics_sink(std::string file)
        : file_(std::move(file)) {}

    const std::string& file() const noexcept { return file_; }

    /// yaml-cpp marks are 0-based; ours are 1-based, and 0 means "unknown".
    source_location at(const YAML::Mark& mark) const;
    source_location at(const YAML::Node& node) const;

    void error(source_location where, std::string message);
    void error(const YAML::Node& node, std::string message) { error(at(node), std::move(message)); }
    void append(const std::vector<diagnostic>& more);

    bool ok() const noexcept { return list_.empty(); }
    const std::vector<diagnostic>& list() const noexcept { return list_; }
    void throw_if_errors() const;

private:
    std::string file_;
    std::vector<diagnostic> list_;
};

/// Reads a whole file; failure becomes a policy_error naming the file.
std::string read_file_text(const std::filesystem::path& file);

/// Parses exactly one YAML document. Syntax errors (and inputs nested too deeply for the
/// recursive parser) become a policy_error with file:line:column.
YAML::Node load_yaml(std::string_view text, const std::string& file);

/// Largest document accepted: policies are small, and a cap bounds the work on hostile input.
inline constexpr std::size_t max_document_size = 1 << 20;

/// Deepest nesting accepted before handing text to yaml-cpp, whose parser recurses per level.
inline constexpr int max_nesting = 64;

struct nesting_scan {
    std::optional<source_location> too_deep; ///< First place nesting exceeds max_nesting.
    std::optional<source_location> unclosed; ///< Innermost '[' or '{' never closed.
};

/// A cheap pre-scan of the text (no YAML parsing), stopping at the first excessive nesting.
nesting_scan scan_nesting(std::string_view text, const std::string& file);

/// "nothing", "a list", "a mapping" or the quoted scalar, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node);

struct map_entry {
    std::string name;
    YAML::Node key;
    YAML::Node value;
};

/// The entries of a mapping in document order. Reports (and drops) non-scalar keys, duplicate
/// keys and, when `allowed` is not empty, keys outside it, with the nearest allowed key.
/// A null node is an empty mapping. `context` names the mapping in messages ("racing").
std::vector<map_entry> checked_map(const YAML::Node& node, std::string_view context,
                                   const std::vector<std::string_view>& allowed,
                                   diagnostics_sink& sink);

std::optional<std::string> expect_scalar(const YAML::Node& node, std::string_view what,
                                         diagnostics_sink& sink);
/// A list of scalars; a single scalar is accepted as a list of one.
std::optional<std::vector<std::string>>
expect_scalar_list(const YAML::Node& node, std::string_view what, diagnostics_sink& sink);

std::optional<std::int64_t> parse_integer(std::string_view text);
/// An integer of bytes, optionally with a KiB, MiB or GiB suffix.
std::optional<std::int64_t> parse_size(std::string_view text);
std::optional<bool> parse_boolean(std::string_view text);

std::size_t edit_distance(std::string_view a, std::string_view b, bool transpositions = false);
/// "; did you mean 'x'?" when a candidate is close to `word`, else "".
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

std::string join(const std::vector<std::string>& items, std::string_view separator);
/// "[framer, tcp]"
std::string stack_name(const std::vector<std::string>& layers);

const std::vector<std::string_view>& preference_names();
std::optional<preference> parse_preference(std::string_view text);

/// Converts one option value as written to the type the layer's schema declares. On failure
/// returns nullopt and sets `problem` to a message without location.
std::optional<sdk::option_value> convert_option(const sdk::option_spec& spec, const raw_option& raw,
                                                std::string& problem);

} // namespace post::policy_detail
