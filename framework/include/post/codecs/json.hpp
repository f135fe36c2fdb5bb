// JSON PDUs with nlohmann-json: PDU = any T with to_json/from_json (default: nlohmann::json
// itself). The one codec header that pulls in nlohmann, so the others stay light.
//
// One encoding is one JSON text (UTF-8, compact). decode takes the whole input as one text, so
// this codec suits carrier messages; put it inside length_prefixed_codec for a byte stream.
#pragma once

#include <post/codec.hpp>

#include <nlohmann/json.hpp>

#include <exception>
#include <string>
#include <type_traits>

namespace post {

template <class T = nlohmann::json> class json_codec {
public:
    using pdu_type = T;

    /// Throws encode_error when T's to_json throws or the text is not valid UTF-8.
    std::vector<std::byte> encode(const pdu_type& pdu) const {
        std::string text;
        try {
            nlohmann::json j = pdu;
            text = j.dump();
        } catch (const std::exception& e) {
            throw encode_error(std::string("json_codec: ") + e.what());
        }
        auto first = reinterpret_cast<const std::byte*>(text.data());
        return {first, first + text.size()};
    }

    /// Never throws: nlohmann's parse and conversion errors (and anything from_json throws)
    /// become parse errors carrying their message.
    decode_result<pdu_type> decode(std::span<const std::byte> bytes) const {
        auto first = reinterpret_cast<const char*>(bytes.data());
        try {
            auto j = nlohmann::json::parse(first, first + bytes.size());
            if constexpr (std::is_same_v<pdu_type, nlohmann::json>)
                return decoded(std::move(j), bytes.size());
            else
                return decoded(j.template get<pdu_type>(), bytes.size());
        } catch (const std::exception& e) {
            return parse_error{e.what()};
        } catch (...) {
            return parse_error{"json_codec: from_json threw a non-standard exception"};
        }
    }
};

} // namespace post
