// Typed messages: a codec turns an application's PDU objects into message payloads and back
// (the Post Sockets paper's MessageCodec<PDU> trait with its encode/decode pair).
//
// Decoding never throws: it answers with a decode_result, which is a PDU (plus how many bytes
// it took), "need more data", or a parse error with a reason. That shape serves both uses of a
// codec: on a carrier one message is one whole encoded PDU (see decode_whole), while on a byte
// stream a decoder is fed a growing buffer and reports how far it got.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace post {

/// Thrown by a codec's encode() when a PDU cannot be represented (an embedded terminator, a
/// size beyond the codec's bound, text the format cannot carry). Encoding bad input is the
/// sender's mistake, so it is an exception; decoding bad input is the peer's, so it is a value.
class encode_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// A PDU decoded from the front of the input, and how many bytes it took.
template <class PDU> struct decoded_pdu {
    PDU value;
    std::size_t consumed = 0;
};

/// The input ends inside a PDU; call again with more bytes.
struct need_more_data_t {};

/// The input is not a valid encoding; `reason` says why, for people.
struct parse_error {
    std::string reason;
};

template <class PDU> class decode_result {
public:
    using pdu_type = PDU;

    decode_result(decoded_pdu<PDU> d)
        : state_(std::move(d)) {}
    decode_result(need_more_data_t n)
        : state_(n) {}
    decode_result(parse_error e)
        : state_(std::move(e)) {}

    bool has_value() const noexcept { return state_.index() == 0; }
    bool needs_more() const noexcept { return state_.index() == 1; }
    bool is_error() const noexcept { return state_.index() == 2; }
    explicit operator bool() const noexcept { return has_value(); }

    /// Precondition for these three: has_value().
    PDU& value() & { return std::get<0>(state_).value; }
    const PDU& value() const& { return std::get<0>(state_).value; }
    PDU&& value() && { return std::move(std::get<0>(state_).value); }
    /// Bytes taken by the PDU; 0 unless has_value().
    std::size_t consumed() const noexcept { return has_value() ? std::get<0>(state_).consumed : 0; }
    /// Why decoding failed; empty unless is_error().
    const std::string& reason() const noexcept {
        static const std::string none;
        return is_error() ? std::get<2>(state_).reason : none;
    }

private:
    std::variant<decoded_pdu<PDU>, need_more_data_t, parse_error> state_;
};

/// Builders, so a decoder can `return post::decoded(std::move(v), n);`,
/// `return post::need_more_data();` or `return post::parse_error{"..."};`.
template <class PDU> decoded_pdu<std::decay_t<PDU>> decoded(PDU&& value, std::size_t consumed) {
    return {std::forward<PDU>(value), consumed};
}
inline need_more_data_t need_more_data() noexcept {
    return {};
}

/// A codec for PDU type `C::pdu_type`. encode() may throw encode_error; decode() must not
/// throw, and reads at most one PDU from the front of its input.
template <class C>
concept message_codec = requires(C& c, const typename C::pdu_type& pdu,
                                 std::span<const std::byte> bytes) {
    typename C::pdu_type;
    { c.encode(pdu) } -> std::same_as<std::vector<std::byte>>;
    { c.decode(bytes) } -> std::same_as<decode_result<typename C::pdu_type>>;
};

/// Decode one carrier message: the PDU must take exactly all of `bytes`. Trailing bytes and a
/// message that ends inside a PDU are parse errors here, because a message is never partial.
template <message_codec Codec>
decode_result<typename Codec::pdu_type> decode_whole(Codec& codec,
                                                     std::span<const std::byte> bytes) {
    auto r = codec.decode(bytes);
    if (r.needs_more())
        return parse_error{"truncated: the message (" + std::to_string(bytes.size()) +
                           " bytes) ends inside a PDU"};
    if (r.has_value() && r.consumed() != bytes.size())
        return parse_error{std::to_string(bytes.size() - r.consumed()) +
                           " trailing bytes after a PDU of " + std::to_string(r.consumed()) +
                           " bytes"};
    return r;
}

} // namespace post
