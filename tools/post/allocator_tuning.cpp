// Every message a carrier delivers is a fresh allocation of its size, which the application
// owns and frees. With glibc's defaults, freeing a 1 MiB message on a thread other than main
// leaves more than the (adaptive, ~2 MiB) trim threshold free at the top of that thread's
// arena, so glibc hands the pages back to the kernel, and the next message faults all 256 of
// them in again. Measured with `post bench hol` on the build VM, where a page fault is costly:
// the receiver spent its time in page faults, bulk throughput fell from ~20 to ~3.5 Gbit/s and
// urgent messages waited ~2 ms behind each bulk message (p99 3.7 ms instead of 0.1 ms).
// 8 MiB messages did not show it: their free raises the threshold to 16 MiB.
//
// This is the application's choice, not the library's: a library must not change a process's
// allocator. The `post` program makes it for itself, and docs/messages.md ("Large messages and
// the allocator") tells other applications how to make it.
#include "allocator_tuning.hpp"

#include <cstdlib>
#include <cstring>

#include <malloc.h>

namespace post_tool {

void tune_allocator_for_large_messages() {
#if defined(__GLIBC__)
    // The user's own GLIBC_TUNABLES for malloc win.
    if (const char* t = std::getenv("GLIBC_TUNABLES"); t && std::strstr(t, "glibc.malloc.")) return;
    // Blocks up to 32 MiB come from the arenas (the largest default bulk message is far below),
    // and up to 64 MiB of free memory may stay in an arena before it is returned.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

} // namespace post_tool
