// libFuzzer target for the framer's frame_decoder.
// Input layout: byte 0 picks max-message-size, byte 1 seeds the split points, the rest is the
// byte stream. The stream is decoded once whole and once in pieces; both must agree, and every
// invariant of the decoder must hold after every piece.
//   Seed corpus: tests/fuzz/corpus/frame_decoder/
#include "frame_decoder.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

using post::plugins::framing::encode_frame_header;
using post::plugins::framing::frame_buffer;
using post::plugins::framing::frame_decoder;
using post::plugins::framing::frame_header_size;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

constexpr std::uint64_t max_sizes[] = {0, 1, 7, 64, 255, 4096, 65536, 16777216};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint64_t max = max_sizes[data[0] % std::size(max_sizes)];
    std::uint32_t rng = 0x9E3779B9u ^ (std::uint32_t(data[1]) * 2654435761u);
    const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2), size - 2);

    // Whole.
    frame_decoder whole(max);
    std::vector<frame_buffer> whole_out;
    const bool whole_ok = whole.feed(stream, whole_out);
    check(whole.buffered() <= max + frame_header_size);
    check(whole_ok != whole.failed());

    // In pieces of 0..(2^k) bytes, the sizes drawn from the seed byte.
    frame_decoder pieces(max);
    std::vector<frame_buffer> pieces_out;
    bool pieces_ok = true;
    std::size_t at = 0;
    while (at < stream.size()) {
        rng = rng * 1664525u + 1013904223u;
        const std::size_t limit = std::size_t(1) << ((rng >> 28) % 12);
        const std::size_t n = std::min<std::size_t>((rng >> 8) % (limit + 1), stream.size() - at);
        pieces_ok = pieces.feed(stream.subspan(at, n), pieces_out) && pieces_ok;
        check(pieces.buffered() <= max + frame_header_size);
        at += n;
    }
    check(pieces_ok == whole_ok);
    check(pieces.error() == whole.error());
    check(pieces_out == whole_out);
    if (whole_ok) check(pieces.buffered() == whole.buffered());

    // The messages re-encode to the start of the stream; on success the rest is the partial
    // frame still buffered.
    std::size_t encoded = 0;
    for (const auto& m : whole_out) {
        check(m.size() <= max);
        const auto h = encode_frame_header(static_cast<std::uint32_t>(m.size()));
        check(encoded + h.size() + m.size() <= stream.size());
        for (std::size_t i = 0; i < h.size(); ++i)
            check(stream[encoded + i] == h[i]);
        encoded += h.size();
        for (std::size_t i = 0; i < m.size(); ++i)
            check(stream[encoded + i] == m[i]);
        encoded += m.size();
    }
    if (whole_ok)
        check(encoded + whole.buffered() == stream.size());
    else
        check(!whole.error().empty());
    return 0;
}
