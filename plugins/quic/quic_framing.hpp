// The framing of messages on a QUIC stream (docs/quic.md "Messages on a stream"): each message
// is a QUIC variable-length integer (RFC 9000 16) giving its length, then its bytes. The
// reassembler is sans-I/O (bytes in, whole messages out) and depends on nothing but the standard
// library, so unit tests and the fuzzer (tests/fuzz/fuzz_quic_framing.cpp) drive it directly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

namespace post::plugins::quic {

using message_bytes = std::vector<std::byte>; // == post::sdk::byte_buffer

/// The largest value a QUIC varint holds (2^62 - 1): its 8-byte form has 62 value bits.
inline constexpr std::uint64_t max_varint = (std::uint64_t{1} << 62) - 1;
/// The longest varint encoding.
inline constexpr std::size_t max_varint_size = 8;

/// Bytes of the shortest encoding of `v` (1, 2, 4 or 8); `v` <= max_varint.
std::size_t varint_size(std::uint64_t v) noexcept;

/// Appends the shortest QUIC varint encoding of `v`. Throws std::invalid_argument when
/// `v` > max_varint (it has no encoding).
void put_varint(message_bytes& out, std::uint64_t v);

/// Outcome of message_reassembler::feed().
struct feed_result {
    /// The stream announced a message longer than the reassembler's max_message_size.
    bool oversize = false;
    /// That announced length (0 unless `oversize`).
    std::uint64_t announced = 0;

    explicit operator bool() const noexcept { return !oversize; }
};

/// Reassembles the messages of one stream from its bytes as they arrive, in any split.
/// Never holds more than max_message_size + 8 bytes of an incomplete message (plus what it
/// reserves ahead, at most 1 MiB).
class message_reassembler {
public:
    explicit message_reassembler(std::uint64_t max_message_size) noexcept
        : max_message_size_(max_message_size) {}

    /// Consumes `data`, appending every message it completes to `out`, in order. A length
    /// above max_message_size fails: messages before it are still appended, the rest of the
    /// input is dropped, and from then on every feed returns the same failure without reading.
    /// A length may use a longer encoding than needed (RFC 9000 allows it).
    feed_result feed(std::span<const std::byte> data, std::deque<message_bytes>& out);
    feed_result feed(const std::uint8_t* data, std::size_t size, std::deque<message_bytes>& out) {
        return feed({reinterpret_cast<const std::byte*>(data), size}, out);
    }

    /// True when the input so far ends inside a message (inside its length or its bytes):
    /// a stream that ends here is truncated. False once failed.
    bool mid_message() const noexcept { return header_len_ != 0 || need_.has_value(); }
    /// Bytes held of the message not yet complete: those of its length until the length is
    /// whole, then those of its body.
    std::size_t buffered() const noexcept { return header_len_ + body_.size(); }
    bool failed() const noexcept { return failure_.oversize; }
    /// The failure feed() returned, or a success while not failed.
    const feed_result& failure() const noexcept { return failure_; }
    std::uint64_t max_message_size() const noexcept { return max_message_size_; }

    /// Drops the incomplete message and any failure (the stream ended: nothing more to read).
    void reset() noexcept;

private:
    std::uint64_t max_message_size_;
    std::array<std::uint8_t, max_varint_size> header_{};
    std::size_t header_len_ = 0;
    std::optional<std::uint64_t> need_; ///< Length of the message being reassembled.
    message_bytes body_;
    feed_result failure_;
};

} // namespace post::plugins::quic
