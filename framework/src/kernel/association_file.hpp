// Associations persisted between runs (docs/associations.md): layer state such as TLS session
// tickets, and the last racing winner, in a JSON file only its owner may read.
#pragma once

#include <post/association.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace post::detail {

inline constexpr int association_file_version = 1;

/// Read `file`. An absent file gives nothing and no warning; anything unusable (unreadable,
/// readable by others, corrupt, another version, over the size limits) is ignored as a whole or
/// per entry, with a warning saying what and why. Never throws.
std::vector<association::saved> load_association_file(const std::filesystem::path& file,
                                                      std::vector<std::string>& warnings);

/// The parser alone (what load_association_file does once the file is read): `name` is used in
/// warnings. Never throws; also the fuzz target's entry point.
std::vector<association::saved> parse_association_text(std::string_view text,
                                                       const std::string& name,
                                                       std::vector<std::string>& warnings);

/// Write atomically (a temporary file, then rename) with mode 0600, creating the folder with
/// mode 0700 if needed. Returns an empty string, or why it failed. Never throws.
std::string save_association_file(const std::filesystem::path& file,
                                  const std::vector<association::saved>& associations);

} // namespace post::detail
