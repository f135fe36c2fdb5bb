#include "elf_check.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <vector>

namespace post::detail {

std::optional<std::string> check_elf_image(std::span<const std::uint8_t> head,
                                           std::uint64_t file_size) {
    if (head.size() < EI_NIDENT || std::memcmp(head.data(), ELFMAG, SELFMAG) != 0)
        return "not an ELF file";
    if (head[EI_CLASS] != ELFCLASS64 || head[EI_DATA] != ELFDATA2LSB)
        return "not a 64-bit little-endian ELF file";
    if (head.size() < sizeof(Elf64_Ehdr)) return "ELF header is truncated";
    Elf64_Ehdr eh;
    std::memcpy(&eh, head.data(), sizeof eh);
    if (eh.e_type != ET_DYN)
        return "not a shared object (ELF type " + std::to_string(eh.e_type) + ")";
#if defined(__x86_64__)
    if (eh.e_machine != EM_X86_64)
        return "built for another machine (ELF machine " + std::to_string(eh.e_machine) + ")";
#elif defined(__aarch64__)
    if (eh.e_machine != EM_AARCH64)
        return "built for another machine (ELF machine " + std::to_string(eh.e_machine) + ")";
#endif
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256)
        return "ELF program header table is malformed";
    const std::uint64_t ph_end = eh.e_phoff + std::uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr);
    if (eh.e_phoff > file_size || ph_end > file_size || ph_end < eh.e_phoff)
        return "file is truncated (program headers end at byte " + std::to_string(ph_end) + " of " +
               std::to_string(file_size) + ")";
    if (ph_end > head.size()) return "ELF program headers are not where the loader expects them";
    if (eh.e_shnum != 0) {
        const std::uint64_t sh_end = eh.e_shoff + std::uint64_t(eh.e_shnum) * eh.e_shentsize;
        if (eh.e_shoff > file_size || sh_end > file_size || sh_end < eh.e_shoff)
            return "file is truncated (section headers end at byte " + std::to_string(sh_end) +
                   " of " + std::to_string(file_size) + ")";
    }
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, head.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof ph);
        if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC) continue;
        const std::uint64_t end = ph.p_offset + ph.p_filesz;
        if (end < ph.p_offset || end > file_size)
            return "file is truncated (segment " + std::to_string(i) + " ends at byte " +
                   std::to_string(end) + " of " + std::to_string(file_size) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> check_elf_file(const std::filesystem::path& file) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) return "cannot read: " + ec.message();
    std::ifstream in(file, std::ios::binary);
    if (!in) return "cannot open for reading";
    std::vector<std::uint8_t> head(
        static_cast<std::size_t>(std::min<std::uint64_t>(size, 64 * 1024)));
    in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
    if (!in) return "cannot read the file's headers";
    return check_elf_image(head, size);
}

} // namespace post::detail
