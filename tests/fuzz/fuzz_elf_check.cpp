// Fuzz the ELF pre-flight check the plugin loader runs before dlopen: arbitrary headers and
// claimed sizes must give a verdict, never read out of bounds.
#include "elf_check.hpp"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    std::uint64_t claimed;
    std::memcpy(&claimed, data, 8); // the file size the image pretends to have
    std::span<const std::uint8_t> image(data + 8, size - 8);
    (void)post::detail::check_elf_image(image, claimed);
    (void)post::detail::check_elf_image(image, image.size());
    return 0;
}
