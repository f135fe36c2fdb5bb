// The wire format of the `length-prefix` layer: each message is a 4-byte big-endian
// length followed by that many payload bytes. The decoder is sans-I/O (bytes in, messages out)
// so tests and the fuzzer drive it without sockets.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace post::plugins::framing {

using frame_buffer = std::vector<std::byte>; // == post::sdk::byte_buffer

inline constexpr std::size_t frame_header_size = 4;
/// The length field has 32 bits.
inline constexpr std::uint64_t max_frame_length = 0xFFFFFFFFu;

/// The header announcing a payload of `length` bytes.
std::array<std::byte, frame_header_size> encode_frame_header(std::uint32_t length) noexcept;

class frame_decoder {
public:
    explicit frame_decoder(std::uint64_t max_message_size) noexcept
        : max_message_size_(max_message_size) {}

    /// Consume `data`, appending every message it completes to `out` in order. Returns false
    /// once the byte stream is malformed (then error() says why); from then on input is ignored.
    /// Never holds more than max_message_size + 4 bytes.
    bool feed(std::span<const std::byte> data, std::vector<frame_buffer>& out);

    bool failed() const noexcept { return !error_.empty(); }
    const std::string& error() const noexcept { return error_; }
    /// Bytes held for the frame not yet complete (header bytes plus payload bytes).
    std::size_t buffered() const noexcept;
    /// True when the input so far ends inside a frame: a stream ending here is truncated.
    bool mid_frame() const noexcept { return buffered() != 0 || in_body_; }
    /// Payload bytes the current frame still needs (0 between frames).
    std::size_t missing() const noexcept { return in_body_ ? need_ - body_.size() : 0; }
    std::uint64_t max_message_size() const noexcept { return max_message_size_; }

private:
    std::uint64_t max_message_size_;
    std::array<std::byte, frame_header_size> header_{};
    std::size_t header_have_ = 0;
    bool in_body_ = false;
    std::size_t need_ = 0; ///< Payload length of the current frame.
    frame_buffer body_;
    std::string error_;
};

} // namespace post::plugins::framing
