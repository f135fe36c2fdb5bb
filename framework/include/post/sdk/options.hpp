// Per-layer options: the schema a layer declares and the validated values it receives.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace post::sdk {

enum class option_type : std::uint8_t { boolean, integer, string, duration, string_list };

/// One entry of a layer's option schema. Plain data so it can live in a static descriptor.
struct option_spec {
    const char* name;
    option_type type;
    const char* description;
    const char* default_value; ///< In policy syntax ("true", "64KiB" is not parsed: integers only).
    std::int64_t min = 0;      ///< For integers (inclusive); min == max means unbounded.
    std::int64_t max = 0;
};

using option_value = std::variant<bool, std::int64_t, std::string, std::chrono::milliseconds,
                                  std::vector<std::string>>;

/// Validated options for one layer: every key is in the layer's schema and has the right type.
/// Keys the policy did not set hold the schema default.
class options {
public:
    void set(std::string key, option_value v) { values_[std::move(key)] = std::move(v); }

    bool contains(const std::string& key) const { return values_.count(key) != 0; }

    template <class T> std::optional<T> get(const std::string& key) const {
        auto it = values_.find(key);
        if (it == values_.end()) return std::nullopt;
        if (auto* p = std::get_if<T>(&it->second)) return *p;
        return std::nullopt;
    }

    template <class T> T get_or(const std::string& key, T fallback) const {
        auto v = get<T>(key);
        return v ? *v : fallback;
    }

    const std::map<std::string, option_value>& values() const { return values_; }

private:
    std::map<std::string, option_value> values_;
};

} // namespace post::sdk
