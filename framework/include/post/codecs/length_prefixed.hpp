// Length-prefixed framing around an inner codec: a 4-byte big-endian length, then the inner
// encoding. It finds PDU boundaries in a byte stream, and its bound on the length keeps a bad
// or hostile prefix from making a reader wait for (or allocate) gigabytes.
#pragma once

#include <post/codec.hpp>
#include <post/codecs/raw.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace post {

template <message_codec Inner = raw_codec> class length_prefixed_codec {
public:
    using pdu_type = typename Inner::pdu_type;
    static constexpr std::size_t prefix_size = 4;
    static constexpr std::size_t default_max_size = 16u << 20;

    /// `max_size`: the largest inner encoding accepted, in bytes (at most 2^32 - 1).
    explicit length_prefixed_codec(std::size_t max_size = default_max_size, Inner inner = {})
        : max_size_(max_size < std::numeric_limits<std::uint32_t>::max()
                        ? max_size
                        : std::numeric_limits<std::uint32_t>::max())
        , inner_(std::move(inner)) {}

    std::size_t max_size() const noexcept { return max_size_; }
    Inner& inner() noexcept { return inner_; }

    std::vector<std::byte> encode(const pdu_type& pdu) {
        auto body = inner_.encode(pdu);
        if (body.size() > max_size_)
            throw encode_error("length_prefixed_codec: PDU encodes to " +
                               std::to_string(body.size()) + " bytes, more than the maximum " +
                               std::to_string(max_size_));
        std::vector<std::byte> out(prefix_size + body.size());
        auto n = static_cast<std::uint32_t>(body.size());
        for (std::size_t i = 0; i < prefix_size; ++i)
            out[i] = std::byte((n >> (8 * (prefix_size - 1 - i))) & 0xff);
        std::copy(body.begin(), body.end(), out.begin() + prefix_size);
        return out;
    }

    decode_result<pdu_type> decode(std::span<const std::byte> bytes) {
        if (bytes.size() < prefix_size) return need_more_data();
        std::uint32_t n = 0;
        for (std::size_t i = 0; i < prefix_size; ++i)
            n = (n << 8) | std::to_integer<std::uint32_t>(bytes[i]);
        // Checked before waiting for the body, so an absurd prefix fails at once.
        if (n > max_size_)
            return parse_error{"length prefix " + std::to_string(n) + " exceeds the maximum " +
                               std::to_string(max_size_)};
        if (bytes.size() - prefix_size < n) return need_more_data();
        auto inner = decode_whole(inner_, bytes.subspan(prefix_size, n));
        if (inner.is_error()) return parse_error{"in a length-prefixed frame: " + inner.reason()};
        return decoded(std::move(inner).value(), prefix_size + n);
    }

private:
    std::size_t max_size_;
    Inner inner_;
};

} // namespace post
