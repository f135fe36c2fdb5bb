// Every shipped message codec fed arbitrary bytes: decode must answer (a PDU, "need more data"
// or a parse error) without crashing, never claim more bytes than it was given, and whatever it
// decodes must encode, decode and encode again to the same bytes (a JSON 1e400 becomes null
// once, then stays null). The first byte picks the codec.
#include <post/codec.hpp>
#include <post/codecs/json.hpp>
#include <post/codecs/length_prefixed.hpp>
#include <post/codecs/newline.hpp>
#include <post/codecs/raw.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

namespace {

template <class Codec> void exercise(Codec& codec, std::span<const std::byte> input) {
    auto r = codec.decode(input);
    if (r.has_value()) {
        if (r.consumed() == 0 || r.consumed() > input.size()) std::abort();
        std::vector<std::byte> again;
        try {
            again = codec.encode(r.value());
        } catch (const post::encode_error&) {
            return; // a value the codec cannot represent (e.g. too large): fine to refuse
        }
        auto back = codec.decode(again);
        if (!back.has_value() || back.consumed() != again.size()) std::abort();
        if (codec.encode(back.value()) != again) std::abort();
    } else if (r.is_error() && r.reason().empty()) {
        std::abort(); // a parse error always says why
    }
    // Whole-message decoding (one message = one PDU) must agree or report an error.
    (void)post::decode_whole(codec, input);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    switch (data[0] % 5) {
    case 0: {
        post::raw_codec c;
        if (!input.empty()) exercise(c, input);
        break;
    }
    case 1: {
        post::length_prefixed_codec<> c(4096);
        exercise(c, input);
        break;
    }
    case 2: {
        post::newline_codec c(4096);
        exercise(c, input);
        break;
    }
    case 3: {
        post::json_codec<> c;
        exercise(c, input);
        break;
    }
    default: {
        post::length_prefixed_codec<post::newline_codec> c(4096, post::newline_codec(1024));
        exercise(c, input);
        break;
    }
    }
    return 0;
}
