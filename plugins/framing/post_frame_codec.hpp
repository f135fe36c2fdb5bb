// The post-frame wire format (docs/framing.md): preface, frame encoder and a bounded decoder.
// Sans-I/O: bytes and the current time in, frames and decoded units out, so unit tests and the
// fuzzer drive it without sockets or an executor.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace post::plugins::framing::post_frame {

using buffer = std::vector<std::byte>; // == post::sdk::byte_buffer
using clock = std::chrono::steady_clock;

inline constexpr std::size_t preface_size = 8;
/// "POSTFRM" then the version (1) with the high bit set by the responder, so that an echo of our
/// own preface is never taken for the peer's.
inline constexpr std::array<std::byte, preface_size> initiator_preface{
    std::byte{'P'}, std::byte{'O'}, std::byte{'S'}, std::byte{'T'},
    std::byte{'F'}, std::byte{'R'}, std::byte{'M'}, std::byte{0x01}};
inline constexpr std::array<std::byte, preface_size> responder_preface{
    std::byte{'P'}, std::byte{'O'}, std::byte{'S'}, std::byte{'T'},
    std::byte{'F'}, std::byte{'R'}, std::byte{'M'}, std::byte{0x81}};

/// type(1) flags(1) payload-length(4) message-id(8).
inline constexpr std::size_t header_size = 14;
/// After the header of a FIRST chunk: total message length(8) and lifetime in ms(4).
inline constexpr std::size_t first_extension_size = 12;
/// No chunk carries more payload than this, whatever the sender's chunk-size.
inline constexpr std::size_t max_chunk_size = 1024 * 1024;

enum class frame_type : std::uint8_t { data = 0, abort = 1, ack = 2 };

namespace flag {
inline constexpr std::uint8_t first = 0x01;         ///< DATA: first chunk (extension follows)
inline constexpr std::uint8_t last = 0x02;          ///< DATA: last chunk
inline constexpr std::uint8_t ack_requested = 0x04; ///< DATA with FIRST: please ACK
inline constexpr std::uint8_t expired = 0x01;       ///< ACK: discarded, its lifetime had passed
} // namespace flag

// ---- encoder: each appends one frame to `out` (one buffer, so many frames make one write) ----

/// A DATA frame carrying `chunk`. `total` and `lifetime_ms` are written only when `first`.
void append_data(buffer& out, std::uint64_t id, bool first, bool last, bool ack_requested,
                 std::uint64_t total, std::uint32_t lifetime_ms, std::span<const std::byte> chunk);
/// The header of a DATA frame carrying a whole message (FIRST|LAST) of `total` bytes, whose
/// payload the caller sends right after it in a separate buffer (no copy of big payloads).
void append_whole_header(buffer& out, std::uint64_t id, bool ack_requested, std::uint32_t total,
                         std::uint32_t lifetime_ms);
void append_abort(buffer& out, std::uint64_t id);
void append_ack(buffer& out, std::uint64_t id, bool expired);

/// Remaining lifetime as sent on the wire: what is left at `now` minus `transit` (the longest
/// the frame may take to reach the peer), in whole milliseconds rounded down, at least 1 (so a
/// live message never reads as "no lifetime"), at most 2^32-1; 0 when there is no deadline.
/// The peer counts the lifetime from the frame's arrival: without `transit` a message delayed
/// on the way could be delivered after its deadline.
std::uint32_t lifetime_ms(std::optional<clock::time_point> deadline, clock::time_point now,
                          clock::duration transit = {});

/// "50 4f 53 54 ..." of at most `limit` bytes, for error messages.
std::string hex_prefix(std::span<const std::byte> bytes, std::size_t limit = 8);

// ---- preface ----

/// Checks the peer's first bytes against the preface it must send, byte by byte, so a peer
/// that says something else is recognised at its first wrong byte.
class preface_matcher {
public:
    enum class result : std::uint8_t { need_more, matched, mismatch };

    explicit preface_matcher(const std::array<std::byte, preface_size>& expected) noexcept
        : expected_(expected) {}

    /// Consumes preface bytes from the front of `data` and sets `used` to how many. On
    /// `mismatch` the peer's bytes are seen() followed by data[used...].
    result feed(std::span<const std::byte> data, std::size_t& used) noexcept;
    std::span<const std::byte> seen() const noexcept { return {seen_.data(), have_}; }
    bool started() const noexcept { return have_ != 0; }

private:
    std::array<std::byte, preface_size> expected_;
    std::array<std::byte, preface_size> seen_{};
    std::size_t have_ = 0;
};

// ---- decoder ----

struct decoder_limits {
    std::uint64_t max_message_size = 16 * 1024 * 1024;
    std::size_t max_in_flight = 64;
    /// Messages longer than this are delivered in parts; 0 = never.
    std::uint64_t partial_delivery = 0;
};

/// One thing the peer said, in stream order.
struct decoded {
    enum class kind : std::uint8_t {
        message, ///< a whole message (data)
        part,    ///< a part of a message delivered in parts; `end` on its last part
        abort,   ///< the sender dropped message `id`; what was received of it is discarded
        ack,     ///< the peer delivered (or, with `expired`, discarded) our message `id`
    };
    kind what = kind::message;
    std::uint64_t id = 0;
    buffer data;
    bool end = true;
    bool ack_requested = false; ///< message/part: the sender wants an ACK after delivery
    bool expired = false;       ///< ack: the peer discarded it, its lifetime had passed
    std::optional<clock::time_point> deadline; ///< message/part: arrival of FIRST + lifetime
};

/// Frames in, decoded units out. Memory: at most max_in_flight open messages, each holding what
/// has arrived of it (at most max_message_size), plus one frame header.
class decoder {
public:
    explicit decoder(decoder_limits limits)
        : limits_(limits) {}

    /// Consume `data` (bytes after the preface), appending what it completes to `out`. Returns
    /// false once the stream is malformed (error() says why); from then on input is ignored.
    bool feed(std::span<const std::byte> data, clock::time_point now, std::vector<decoded>& out);

    bool failed() const noexcept { return !error_.empty(); }
    const std::string& error() const noexcept { return error_; }
    /// Why a stream ending here would be truncated; empty when it ends at a clean boundary.
    std::string truncation() const;
    std::size_t open_messages() const noexcept { return open_.size(); }
    const decoder_limits& limits() const noexcept { return limits_; }

private:
    struct open_message {
        std::uint64_t total = 0;
        std::uint64_t received = 0;
        bool partial = false;
        bool ack_requested = false;
        std::optional<clock::time_point> deadline;
        buffer data; ///< the whole message so far, or (partial) the current chunk
    };

    bool fail(std::string why);
    bool on_header(clock::time_point now, std::vector<decoded>& out);
    bool check_chunk(std::uint64_t id, const open_message& m);
    void finish_chunk(std::vector<decoded>& out);

    decoder_limits limits_;
    std::array<std::byte, header_size + first_extension_size> head_{};
    std::size_t head_have_ = 0;
    std::size_t head_need_ = header_size;
    // The frame whose payload is being read (valid while chunk_left_ > 0 or in_payload_).
    bool in_payload_ = false;
    std::uint64_t cur_id_ = 0;
    std::uint8_t cur_flags_ = 0;
    std::size_t chunk_left_ = 0;
    open_message* cur_ = nullptr;
    open_message single_; ///< a FIRST|LAST message never enters open_
    std::unordered_map<std::uint64_t, open_message> open_;
    std::uint64_t last_started_ = 0;
    std::string error_;
};

} // namespace post::plugins::framing::post_frame
