// libFuzzer target for the quic plugin's stream framing (plugins/quic/quic_framing.hpp).
// Input layout: byte 0 picks max-message-size, byte 1 seeds the split points, the rest is the
// stream's bytes. The stream is reassembled once whole and once in pieces; both must agree, the
// messages must be what the stream's varint lengths say, and re-encoding them must give them
// back.
//   Seed corpus: tests/fuzz/corpus/quic_framing/
#include "quic_framing.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <span>
#include <utility>

using post::plugins::quic::feed_result;
using post::plugins::quic::max_varint;
using post::plugins::quic::message_bytes;
using post::plugins::quic::message_reassembler;
using post::plugins::quic::put_varint;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

constexpr std::uint64_t max_sizes[] = {0, 1, 63, 64, 16383, 16384, 1 << 20, max_varint};

/// The varint at the start of `s` (which holds all of it): its value and its size.
std::pair<std::uint64_t, std::size_t> read_varint(std::span<const std::byte> s) {
    const auto first = std::to_integer<std::uint8_t>(s[0]);
    const std::size_t n = std::size_t{1} << (first >> 6);
    std::uint64_t v = first & 0x3f;
    for (std::size_t i = 1; i < n; ++i)
        v = (v << 8) | std::to_integer<std::uint8_t>(s[i]);
    return {v, n};
}

bool same(const feed_result& a, const feed_result& b) {
    return a.oversize == b.oversize && a.announced == b.announced;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint64_t max = max_sizes[data[0] % std::size(max_sizes)];
    std::uint32_t rng = 0x9E3779B9u ^ (std::uint32_t(data[1]) * 2654435761u);
    const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2), size - 2);

    // Whole.
    message_reassembler whole(max);
    std::deque<message_bytes> whole_out;
    const feed_result whole_res = whole.feed(stream, whole_out);
    check(whole.failed() == whole_res.oversize);
    check(same(whole.failure(), whole_res));
    check(!whole_res.oversize || whole_res.announced > max);
    check(whole_res.announced <= max_varint);
    check(whole.buffered() <= max + post::plugins::quic::max_varint_size);

    // In pieces of 0..2^k bytes (empty feeds included), the sizes drawn from the seed byte.
    message_reassembler pieces(max);
    std::deque<message_bytes> pieces_out;
    feed_result pieces_res;
    std::size_t at = 0;
    while (at < stream.size()) {
        rng = rng * 1664525u + 1013904223u;
        const std::size_t limit = std::size_t(1) << ((rng >> 28) % 12);
        const std::size_t n = std::min<std::size_t>((rng >> 8) % (limit + 1), stream.size() - at);
        const auto* p = reinterpret_cast<const std::uint8_t*>(stream.data() + at);
        const feed_result r = pieces.feed(p, n, pieces_out);
        // Once failed, it stays failed with the same length.
        if (pieces_res.oversize) check(same(r, pieces_res));
        pieces_res = r;
        check(pieces.buffered() <= max + post::plugins::quic::max_varint_size);
        at += n;
    }
    check(same(pieces_res, whole_res));
    check(pieces_out == whole_out);
    check(pieces.mid_message() == whole.mid_message());
    check(pieces.buffered() == whole.buffered());

    // The messages are what the stream's lengths say (any encoding of a length is accepted).
    std::size_t pos = 0;
    for (const auto& m : whole_out) {
        check(m.size() <= max);
        check(pos < stream.size());
        const auto n = std::size_t{1} << (std::to_integer<std::uint8_t>(stream[pos]) >> 6);
        check(pos + n <= stream.size());
        const auto [len, len_size] = read_varint(stream.subspan(pos, n));
        check(len == m.size());
        pos += len_size;
        check(pos + m.size() <= stream.size());
        for (std::size_t i = 0; i < m.size(); ++i)
            check(stream[pos + i] == m[i]);
        pos += m.size();
    }
    // What follows the last message: nothing, an incomplete one, or the length too large.
    const auto rest = stream.subspan(pos);
    if (rest.empty()) {
        check(!whole_res.oversize && !whole.mid_message() && whole.buffered() == 0);
    } else {
        const auto n = std::size_t{1} << (std::to_integer<std::uint8_t>(rest[0]) >> 6);
        if (rest.size() < n) {
            check(!whole_res.oversize && whole.mid_message() && whole.buffered() == rest.size());
        } else {
            const auto [len, len_size] = read_varint(rest.first(n));
            if (whole_res.oversize) {
                check(len == whole_res.announced);
                check(!whole.mid_message());
            } else {
                check(len <= max && len > rest.size() - len_size);
                check(whole.mid_message() && whole.buffered() == rest.size() - len_size);
            }
        }
    }

    // Re-encoded in the shortest form, the messages come back the same.
    message_bytes again;
    for (const auto& m : whole_out) {
        put_varint(again, m.size());
        again.insert(again.end(), m.begin(), m.end());
    }
    message_reassembler re(max);
    std::deque<message_bytes> re_out;
    check(static_cast<bool>(re.feed(again, re_out)));
    check(re_out == whole_out);
    check(!re.mid_message() && re.buffered() == 0);

    // reset() forgets the incomplete message and the failure.
    whole.reset();
    check(!whole.failed() && !whole.mid_message() && whole.buffered() == 0);
    return 0;
}
