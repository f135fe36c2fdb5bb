// libFuzzer target for the post-frame decoder (layer `framer`).
// Input layout: byte 0 picks the limits and whether a valid preface comes first (bit 7: the
// bytes go through the preface matcher instead), byte 1 seeds the split points, the rest is the
// byte stream. The stream is decoded once whole and once in pieces; both must agree, and the
// decoder's bounds must hold.
//   Seed corpus: tests/fuzz/corpus/post_frame/
#include "post_frame_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace pf = post::plugins::framing::post_frame;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

constexpr std::uint64_t max_sizes[] = {0, 1, 100, 65536};
constexpr std::size_t max_in_flight[] = {1, 2, 64};

bool same(const std::vector<pf::decoded>& a, const std::vector<pf::decoded>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].what != b[i].what || a[i].id != b[i].id || a[i].data != b[i].data ||
            a[i].end != b[i].end || a[i].expired != b[i].expired)
            return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    pf::decoder_limits limits;
    limits.max_message_size = max_sizes[data[0] % std::size(max_sizes)];
    limits.max_in_flight = max_in_flight[(data[0] >> 2) % std::size(max_in_flight)];
    limits.partial_delivery = (data[0] & 0x40) ? 10 : 0;
    const bool through_preface = data[0] & 0x80;
    std::uint32_t rng = 0x9E3779B9u ^ (std::uint32_t(data[1]) * 2654435761u);
    std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2), size - 2);

    if (through_preface) {
        // Arbitrary bytes where the initiator's preface should be: only an exact match goes on.
        pf::preface_matcher m(pf::initiator_preface);
        std::size_t used = 0;
        const auto r = m.feed(stream, used);
        check(used <= pf::preface_size && m.seen().size() == used);
        if (r != pf::preface_matcher::result::matched) return 0;
        stream = stream.subspan(used);
    }
    const auto now = pf::clock::now();

    pf::decoder whole(limits);
    std::vector<pf::decoded> whole_out;
    const bool whole_ok = whole.feed(stream, now, whole_out);
    check(whole_ok != whole.failed());
    check(whole.open_messages() <= limits.max_in_flight);
    for (const auto& d : whole_out)
        check(d.data.size() <= limits.max_message_size);

    pf::decoder pieces(limits);
    std::vector<pf::decoded> pieces_out;
    bool pieces_ok = true;
    std::size_t at = 0;
    while (at < stream.size()) {
        rng = rng * 1664525u + 1013904223u;
        const std::size_t limit = std::size_t(1) << ((rng >> 28) % 12);
        const std::size_t n = std::min<std::size_t>((rng >> 8) % (limit + 1), stream.size() - at);
        pieces_ok = pieces.feed(stream.subspan(at, n), now, pieces_out) && pieces_ok;
        check(pieces.open_messages() <= limits.max_in_flight);
        at += n;
    }
    check(pieces_ok == whole_ok);
    check(pieces.error() == whole.error());
    check(same(pieces_out, whole_out));
    if (whole_ok) check(pieces.truncation() == whole.truncation());
    return 0;
}
