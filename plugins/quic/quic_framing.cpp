#include "quic_framing.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace post::plugins::quic {

namespace {

/// Room reserved up front for a message's bytes: a peer announcing a huge length must send the
/// bytes before it costs us the memory.
constexpr std::uint64_t max_reserve = std::uint64_t{1} << 20;

} // namespace

std::size_t varint_size(std::uint64_t v) noexcept {
    if (v < (std::uint64_t{1} << 6)) return 1;
    if (v < (std::uint64_t{1} << 14)) return 2;
    if (v < (std::uint64_t{1} << 30)) return 4;
    return 8;
}

void put_varint(message_bytes& out, std::uint64_t v) {
    if (v > max_varint)
        throw std::invalid_argument("quic: " + std::to_string(v) +
                                    " does not fit a QUIC variable-length integer (max 2^62-1)");
    const std::size_t n = varint_size(v);
    // The two top bits of the first byte give the encoding's length: log2(n).
    const auto prefix = static_cast<std::uint8_t>(n == 1   ? 0x00
                                                  : n == 2 ? 0x40
                                                  : n == 4 ? 0x80
                                                           : 0xc0);
    for (std::size_t i = n; i-- > 0;) {
        auto b = static_cast<std::uint8_t>(v >> (8 * i));
        if (i == n - 1) b = static_cast<std::uint8_t>(b | prefix);
        out.push_back(std::byte{b});
    }
}

feed_result message_reassembler::feed(std::span<const std::byte> data,
                                      std::deque<message_bytes>& out) {
    if (failure_.oversize) return failure_;
    const std::byte* p = data.data();
    std::size_t n = data.size();
    while (n > 0) {
        if (!need_) {
            header_[header_len_++] = std::to_integer<std::uint8_t>(*p++);
            --n;
            const std::size_t want = std::size_t{1} << (header_[0] >> 6);
            if (header_len_ < want) continue;
            // At most 62 value bits: a length of 2^62 or more cannot be expressed.
            std::uint64_t v = header_[0] & 0x3f;
            for (std::size_t i = 1; i < want; ++i)
                v = (v << 8) | header_[i];
            header_len_ = 0;
            if (v > max_message_size_) {
                failure_ = {true, v};
                return failure_;
            }
            need_ = v;
            body_.clear();
            body_.reserve(static_cast<std::size_t>(std::min(v, max_reserve)));
        }
        const auto take_now =
            static_cast<std::size_t>(std::min<std::uint64_t>(*need_ - body_.size(), n));
        body_.insert(body_.end(), p, p + take_now);
        p += take_now;
        n -= take_now;
        if (body_.size() == *need_) {
            out.push_back(std::exchange(body_, {}));
            need_.reset();
        }
    }
    return {};
}

void message_reassembler::reset() noexcept {
    header_len_ = 0;
    need_.reset();
    message_bytes{}.swap(body_);
    failure_ = {};
}

} // namespace post::plugins::quic
