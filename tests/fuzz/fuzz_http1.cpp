// libFuzzer target for the http1 layer's decoder (plugins/http/http1_decoder) and, with what it
// parses, the encoder.
// Input layout: byte 0 picks the mode (bit 0: request or response), whether the stream then
// ends (bit 1), the bounds (bits 2-3) and whether the next response answers HEAD (bit 4); byte
// 1 seeds the split points; the rest is the byte stream. The stream is decoded once whole and
// once in pieces: both must give the same messages (or both fail), and no message may exceed
// the bounds.
//   Seed corpus: tests/fuzz/corpus/http1/
#include "http1_decoder.hpp"
#include "http1_encoder.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace http = post::plugins::http;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

constexpr http::http1_limits limits[] = {
    {0, 256}, {16, 512}, {4096, 4096}, {16 * 1024 * 1024, 65536}};

struct result {
    std::vector<http::http1_message> messages;
    bool ok = true;
};

result decode(std::uint8_t flags, std::span<const std::byte> stream, std::uint8_t seed) {
    const auto mode =
        (flags & 1) ? http::http1_decoder::mode::response : http::http1_decoder::mode::request;
    const auto lim = limits[(flags >> 2) & 3];
    http::http1_decoder d(mode, lim);
    if (flags & 16) d.expect_response(true);
    result r;
    std::size_t pos = 0;
    std::uint32_t state = seed;
    while (pos < stream.size() && r.ok) {
        std::size_t piece = stream.size() - pos;
        if (seed != 0) {
            state = state * 1103515245u + 12345u;
            piece = std::min<std::size_t>(piece, 1 + (state >> 16) % 17);
        }
        r.ok = d.feed(stream.subspan(pos, piece), r.messages);
        check(r.ok || !d.error().empty());
        pos += piece;
    }
    if (r.ok && (flags & 2)) r.ok = d.finish(r.messages);
    for (const auto& m : r.messages) {
        check(m.body.size() <= lim.max_body);
        check(m.properties.count(mode == http::http1_decoder::mode::request ? ":method"
                                                                            : ":status") == 1);
    }
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t flags = data[0];
    const std::uint8_t seed = data[1];
    const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2), size - 2);
    const auto whole = decode(flags, stream, 0);
    const auto pieces = decode(flags, stream, seed | 1);
    check(whole.ok == pieces.ok);
    check(whole.messages.size() == pieces.messages.size());
    for (std::size_t i = 0; i < whole.messages.size(); ++i) {
        check(whole.messages[i].properties == pieces.messages[i].properties);
        check(whole.messages[i].body == pieces.messages[i].body);
        // What was parsed can be written again, or is refused with a reason (never a crash).
        std::string head, error;
        http::sent_request info;
        bool with_body = false, close = false;
        const bool ok =
            (flags & 1)
                ? http::encode_response(whole.messages[i].properties, whole.messages[i].body.size(),
                                        false, head, with_body, close, error)
                : http::encode_request(whole.messages[i].properties, whole.messages[i].body.size(),
                                       "fuzz", head, info, error);
        check(ok || !error.empty());
    }
    return 0;
}
