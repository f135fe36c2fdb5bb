// Newline-terminated text lines: PDU = one line without its '\n'. The line-oriented framing of
// many text protocols; the bound on line length stops a peer that never sends '\n' from
// growing the reader's buffer without limit.
#pragma once

#include <post/codec.hpp>

#include <algorithm>
#include <string>

namespace post {

class newline_codec {
public:
    using pdu_type = std::string;
    static constexpr std::size_t default_max_line = 64u << 10;

    /// `max_line`: the longest line accepted, in bytes, not counting the '\n'.
    explicit newline_codec(std::size_t max_line = default_max_line)
        : max_line_(max_line) {}

    std::size_t max_line() const noexcept { return max_line_; }

    std::vector<std::byte> encode(const pdu_type& line) const {
        if (line.find('\n') != std::string::npos)
            throw encode_error("newline_codec: the line contains '\\n' at offset " +
                               std::to_string(line.find('\n')));
        if (line.size() > max_line_)
            throw encode_error("newline_codec: line of " + std::to_string(line.size()) +
                               " bytes is longer than the maximum " + std::to_string(max_line_));
        std::vector<std::byte> out(line.size() + 1);
        std::transform(line.begin(), line.end(), out.begin(),
                       [](char c) { return static_cast<std::byte>(c); });
        out.back() = std::byte{'\n'};
        return out;
    }

    decode_result<pdu_type> decode(std::span<const std::byte> bytes) const {
        // Only look as far as a legal line can reach.
        auto window = bytes.first(std::min(bytes.size(), max_line_ + 1));
        auto nl = std::find(window.begin(), window.end(), std::byte{'\n'});
        if (nl == window.end()) {
            if (bytes.size() > max_line_)
                return parse_error{"no '\\n' within the maximum line length of " +
                                   std::to_string(max_line_) + " bytes"};
            return need_more_data();
        }
        auto length = static_cast<std::size_t>(nl - window.begin());
        return decoded(std::string(reinterpret_cast<const char*>(bytes.data()), length),
                       length + 1);
    }

private:
    std::size_t max_line_;
};

} // namespace post
