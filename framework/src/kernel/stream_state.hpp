// What the kernel's entry points need from the stream implementation: a stream for a carrier
// that was started over a byte-stream stack (so it may be morphed while still establishing).
#pragma once

#include <post/carrier.hpp>
#include <post/stream.hpp>

namespace post::detail {

/// Morph `c`, a carrier just started by initiate_stream() over stream-top candidates only.
stream stream_for_new_carrier(carrier c);

} // namespace post::detail
