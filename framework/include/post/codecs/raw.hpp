// The identity codec: the PDU is the payload's bytes. Useful as the inner codec of a framing
// codec and for carriers whose application already speaks in byte buffers.
#pragma once

#include <post/codec.hpp>

namespace post {

struct raw_codec {
    using pdu_type = std::vector<std::byte>;

    std::vector<std::byte> encode(const pdu_type& pdu) const { return pdu; }

    /// Takes everything it is given: a raw PDU has no boundary of its own.
    decode_result<pdu_type> decode(std::span<const std::byte> bytes) const {
        return decoded(pdu_type(bytes.begin(), bytes.end()), bytes.size());
    }
};

} // namespace post
