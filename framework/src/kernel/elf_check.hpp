// A pre-flight check of a plugin file before dlopen. The dynamic loader trusts an ELF file's
// headers: a truncated file makes it map segments past the end of the file, and the process
// dies with SIGBUS on first access. Reading the headers ourselves turns that into a refusal.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

namespace post::detail {

/// `head` is the start of the file (at least the ELF and program headers), `file_size` its
/// full size. Returns why the image cannot be loaded safely, or nullopt when it looks sound.
std::optional<std::string> check_elf_image(std::span<const std::uint8_t> head,
                                           std::uint64_t file_size);

/// Reads the headers of `file` and checks them.
std::optional<std::string> check_elf_file(const std::filesystem::path& file);

} // namespace post::detail
