// The small vocabulary of the policy engine: locations, diagnostics, preference names, edit
// distance for suggestions, and the scalar syntaxes (durations, sizes, integers, booleans).
#include "detail.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace post {

std::string_view to_string(preference p) noexcept {
    switch (p) {
    case preference::require:
        return "require";
    case preference::prefer:
        return "prefer";
    case preference::no_preference:
        return "no-preference";
    case preference::avoid:
        return "avoid";
    case preference::prohibit:
        return "prohibit";
    }
    return "?";
}

std::string source_location::to_string() const {
    if (line <= 0) return file;
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string diagnostic::to_string() const {
    auto w = where.to_string();
    return w.empty() ? message : w + ": " + message;
}

namespace {

std::string join_diagnostics(const std::vector<diagnostic>& diagnostics) {
    std::string text;
    for (const auto& d : diagnostics) {
        if (!text.empty()) text += '\n';
        text += d.to_string();
    }
    return text.empty() ? std::string("policy error") : text;
}

} // namespace

policy_error::policy_error(std::vector<diagnostic> diagnostics)
    : std::runtime_error(join_diagnostics(diagnostics))
    , diagnostics_(std::move(diagnostics)) {}

std::string nearest(std::string_view word, const std::vector<std::string_view>& candidates) {
    // A suggestion must look like a typo of the word, not merely be the least bad option:
    // allow two edits, or a third of the word for long words.
    std::size_t best = std::numeric_limits<std::size_t>::max();
    std::string_view best_word;
    for (auto c : candidates) {
        auto d = policy_detail::edit_distance(word, c);
        if (d < best) {
            best = d;
            best_word = c;
        }
    }
    if (best_word.empty() || best == 0) return std::string(best_word);
    if (best <= 2 || best * 3 <= word.size()) return std::string(best_word);
    // An abbreviation ("warn" for "warning") is far in edits but obvious to a reader.
    if (word.size() >= 3)
        for (auto c : candidates)
            if (c.starts_with(word)) return std::string(c);
    return {};
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    while (!text.empty() && text.front() == ' ')
        text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ')
        text.remove_suffix(1);
    if (text == "0") return std::chrono::milliseconds{0};

    std::size_t i = 0;
    long double value = 0;
    std::size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        value = value * 10 + (text[i] - '0');
        ++i;
        ++digits;
    }
    if (i < text.size() && text[i] == '.') {
        ++i;
        long double scale = 0.1L;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            value += (text[i] - '0') * scale;
            scale /= 10;
            ++i;
            ++digits;
        }
    }
    if (digits == 0 || digits > 18) return std::nullopt;
    auto unit = text.substr(i);
    if (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);

    long double us_per_unit = 0;
    if (unit == "us")
        us_per_unit = 1;
    else if (unit == "ms")
        us_per_unit = 1e3L;
    else if (unit == "s")
        us_per_unit = 1e6L;
    else if (unit == "m" || unit == "min")
        us_per_unit = 60e6L;
    else if (unit == "h")
        us_per_unit = 3600e6L;
    else
        return std::nullopt;

    long double ms = value * us_per_unit / 1000;
    // Beyond about 30 years nothing sensible is meant; keep far away from overflow.
    if (ms > 1e12L) return std::nullopt;
    return std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(ms))};
}

} // namespace post

namespace post::policy_detail {

std::size_t edit_distance(std::string_view a, std::string_view b, bool transpositions) {
    // Levenshtein (optionally counting a swap of neighbours as one edit, the "optimal string
    // alignment" variant). Inputs are short keys; long fuzzed words are capped to keep the
    // cost bounded.
    a = a.substr(0, 128);
    b = b.substr(0, 128);
    std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (transpositions && i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                cur[j] = std::min(cur[j], before[j - 2] + 1);
        }
        std::swap(before, prev);
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
    auto n = nearest(word, candidates);
    if (n.empty() || n == word) return {};
    return "; did you mean '" + n + "'?";
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string text;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) text += separator;
        text += items[i];
    }
    return text;
}

std::string stack_name(const std::vector<std::string>& layers) {
    return "[" + join(layers, ", ") + "]";
}

const std::vector<std::string_view>& preference_names() {
    static const std::vector<std::string_view> names{"require", "prefer", "no-preference", "avoid",
                                                     "prohibit"};
    return names;
}

std::optional<preference> parse_preference(std::string_view text) {
    if (text == "require") return preference::require;
    if (text == "prefer") return preference::prefer;
    if (text == "no-preference") return preference::no_preference;
    if (text == "avoid") return preference::avoid;
    if (text == "prohibit") return preference::prohibit;
    return std::nullopt;
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);
    if (text.empty()) return std::nullopt;
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::int64_t> parse_size(std::string_view text) {
    std::int64_t scale = 1;
    auto strip = [&](std::string_view suffix, std::int64_t s) {
        if (text.size() > suffix.size() && text.ends_with(suffix)) {
            text.remove_suffix(suffix.size());
            if (text.back() == ' ') text.remove_suffix(1);
            scale = s;
            return true;
        }
        return false;
    };
    strip("KiB", 1024) || strip("MiB", 1024 * 1024) || strip("GiB", 1024 * 1024 * 1024);
    auto value = parse_integer(text);
    if (!value) return std::nullopt;
    if (*value > std::numeric_limits<std::int64_t>::max() / scale ||
        *value < std::numeric_limits<std::int64_t>::min() / scale)
        return std::nullopt;
    return *value * scale;
}

std::optional<bool> parse_boolean(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "true" || lower == "yes" || lower == "on") return true;
    if (lower == "false" || lower == "no" || lower == "off") return false;
    return std::nullopt;
}

} // namespace post::policy_detail
