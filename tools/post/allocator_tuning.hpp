// How the `post` program sets up glibc's allocator for large messages (see the .cpp).
#pragma once

namespace post_tool {

/// Keeps freed memory in the process up to a bound, unless the user tuned malloc through
/// GLIBC_TUNABLES. Call once, first thing in main.
void tune_allocator_for_large_messages();

} // namespace post_tool
