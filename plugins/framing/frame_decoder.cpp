#include "frame_decoder.hpp"

#include <algorithm>

namespace post::plugins::framing {

namespace {
constexpr std::size_t initial_reserve = 64 * 1024;
} // namespace

std::array<std::byte, frame_header_size> encode_frame_header(std::uint32_t length) noexcept {
    return {std::byte(length >> 24), std::byte(length >> 16), std::byte(length >> 8),
            std::byte(length)};
}

std::size_t frame_decoder::buffered() const noexcept {
    return in_body_ ? frame_header_size + body_.size() : header_have_;
}

bool frame_decoder::feed(std::span<const std::byte> data, std::vector<frame_buffer>& out) {
    if (failed()) return false;
    while (!data.empty()) {
        if (!in_body_) {
            const std::size_t take = std::min(frame_header_size - header_have_, data.size());
            std::copy_n(data.begin(), take, header_.begin() + header_have_);
            header_have_ += take;
            data = data.subspan(take);
            if (header_have_ < frame_header_size) break;
            const std::uint64_t length =
                (std::uint64_t(header_[0]) << 24) | (std::uint64_t(header_[1]) << 16) |
                (std::uint64_t(header_[2]) << 8) | std::uint64_t(header_[3]);
            header_have_ = 0;
            if (length > max_message_size_) {
                error_ = "frame of " + std::to_string(length) + " bytes exceeds max-message-size " +
                         std::to_string(max_message_size_);
                body_ = frame_buffer{}; // release memory; nothing more is accepted
                return false;
            }
            need_ = static_cast<std::size_t>(length);
            in_body_ = true;
            body_.clear();
            // Memory follows the bytes that actually arrive, not the announced length, so a
            // 4-byte header cannot make us allocate max-message-size up front.
            body_.reserve(std::min(need_, initial_reserve));
        }
        const std::size_t take = std::min(need_ - body_.size(), data.size());
        if (const std::size_t want = body_.size() + take; want > body_.capacity())
            // Geometric growth, capped at the announced length (<= max-message-size).
            body_.reserve(std::min(need_, std::max(want, 2 * body_.capacity())));
        body_.insert(body_.end(), data.begin(), data.begin() + take);
        data = data.subspan(take);
        if (body_.size() == need_) {
            out.push_back(std::move(body_));
            body_ = frame_buffer{};
            in_body_ = false;
            need_ = 0;
        }
    }
    return true;
}

} // namespace post::plugins::framing
