// Fuzz the association file parser: any input gives entries and/or warnings, never a crash;
// what it accepts saves and parses back to the same entries.
#include "association_file.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> warnings;
    auto entries = post::detail::parse_association_text(text, "fuzz", warnings);
    if (entries.empty()) return 0;
    for (const auto& w : warnings)
        if (w.empty()) std::abort(); // every problem has a reason
    // Round trip through a real file (the writer is what a later run reads).
    static const auto file = std::filesystem::temp_directory_path() /
                             ("post-fuzz-assoc-" + std::to_string(::getpid()) + ".json");
    if (!post::detail::save_association_file(file, entries).empty()) std::abort();
    std::vector<std::string> again_warnings;
    auto again = post::detail::load_association_file(file, again_warnings);
    std::size_t kept = 0;
    for (const auto& e : entries)
        if (e.winner || !e.state.empty()) ++kept; // empty entries are not written
    if (again.size() != kept || !again_warnings.empty()) std::abort();
    return 0;
}
