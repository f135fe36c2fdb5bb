// Fuzz the URL and local-address parsers: any input gives a value or a reason, and a parsed
// URL prints back to something that parses to the same value.
#include <post/remote.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string why;
    if (auto u = post::url::parse(text, &why)) {
        auto again = post::url::parse(u->to_string());
        if (!again || again->host != u->host || again->port != u->port ||
            again->scheme != u->scheme || again->path != u->path)
            std::abort(); // round trip must hold
    } else if (why.empty()) {
        std::abort(); // every refusal has a reason
    }
    try {
        (void)post::local::parse(text);
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
