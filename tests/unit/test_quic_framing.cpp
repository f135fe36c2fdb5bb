// The quic plugin's stream framing (plugins/quic/quic_framing.hpp): varint lengths, and the
// reassembly of messages from a stream's bytes however they are split.
#define BOOST_TEST_MODULE quic framing
#include <boost/test/unit_test.hpp>

#include "quic_framing.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <random>
#include <span>
#include <stdexcept>
#include <vector>

using namespace post::plugins::quic;

namespace {

using messages = std::deque<message_bytes>;

message_bytes bytes(std::initializer_list<unsigned> values) {
    message_bytes out;
    for (auto v : values)
        out.push_back(std::byte(v));
    return out;
}

/// A message of `size` bytes whose content depends on `tag`, so swapped or shifted messages
/// are told apart.
message_bytes pattern(std::size_t size, unsigned tag) {
    message_bytes m(size);
    for (std::size_t i = 0; i < size; ++i)
        m[i] = std::byte(static_cast<unsigned char>(i * 31 + tag * 7 + (i >> 8)));
    return m;
}

message_bytes encode(const std::vector<message_bytes>& ms) {
    message_bytes wire;
    for (const auto& m : ms) {
        put_varint(wire, m.size());
        wire.insert(wire.end(), m.begin(), m.end());
    }
    return wire;
}

std::vector<message_bytes> as_vector(const messages& ms) {
    return {ms.begin(), ms.end()};
}

/// Feeds `wire` cut at `cuts` (ascending offsets); every feed must succeed.
messages feed_cut(message_reassembler& r, std::span<const std::byte> wire,
                  const std::vector<std::size_t>& cuts) {
    messages out;
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
        BOOST_REQUIRE(static_cast<bool>(r.feed(wire.subspan(at, cut - at), out)));
        at = cut;
    }
    BOOST_REQUIRE(static_cast<bool>(r.feed(wire.subspan(at), out)));
    return out;
}

constexpr std::uint64_t mib = 1024 * 1024;

} // namespace

BOOST_AUTO_TEST_CASE(varints_have_the_rfc_9000_encodings) {
    auto enc = [](std::uint64_t v) {
        message_bytes out;
        put_varint(out, v);
        BOOST_TEST(out.size() == varint_size(v));
        return out;
    };
    // RFC 9000 A.1 examples, and the boundaries of each size.
    BOOST_TEST((enc(37) == bytes({0x25})));
    BOOST_TEST((enc(15293) == bytes({0x7b, 0xbd})));
    BOOST_TEST((enc(494878333) == bytes({0x9d, 0x7f, 0x3e, 0x7d})));
    BOOST_TEST(
        (enc(151288809941952652) == bytes({0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c})));
    BOOST_TEST((enc(0) == bytes({0x00})));
    BOOST_TEST((enc(63) == bytes({0x3f})));
    BOOST_TEST((enc(64) == bytes({0x40, 0x40})));
    BOOST_TEST((enc(16383) == bytes({0x7f, 0xff})));
    BOOST_TEST((enc(16384) == bytes({0x80, 0x00, 0x40, 0x00})));
    BOOST_TEST((enc((1u << 30) - 1) == bytes({0xbf, 0xff, 0xff, 0xff})));
    BOOST_TEST((enc(1u << 30) == bytes({0xc0, 0, 0, 0, 0x40, 0, 0, 0})));
    BOOST_TEST((enc(max_varint) == bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));

    message_bytes out;
    BOOST_CHECK_THROW(put_varint(out, max_varint + 1), std::invalid_argument);
    BOOST_CHECK_THROW(put_varint(out, ~std::uint64_t{0}), std::invalid_argument);
    BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(small_messages_survive_a_split_at_every_byte_boundary) {
    for (std::size_t size : {0, 1, 63, 64}) {
        BOOST_TEST_CONTEXT("size " << size) {
            // The message between two others, so a wrong length shows up in its neighbours.
            const std::vector<message_bytes> sent{pattern(3, 1), pattern(size, 2), pattern(2, 3)};
            const auto wire = encode(sent);
            for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
                message_reassembler r(mib);
                BOOST_TEST((as_vector(feed_cut(r, wire, {cut})) == sent), "cut at " << cut);
                BOOST_TEST(!r.mid_message());
                BOOST_TEST(r.buffered() == 0u);
            }
            // And one byte per feed.
            message_reassembler r(mib);
            std::vector<std::size_t> every;
            for (std::size_t i = 1; i < wire.size(); ++i)
                every.push_back(i);
            BOOST_TEST((as_vector(feed_cut(r, wire, every)) == sent));
        }
    }
}

BOOST_AUTO_TEST_CASE(large_messages_survive_random_splits) {
    std::mt19937_64 rng(20240611);
    for (std::size_t size : {std::size_t{16383}, std::size_t{16384}, std::size_t{mib}}) {
        BOOST_TEST_CONTEXT("size " << size) {
            const std::vector<message_bytes> sent{pattern(size, 4), pattern(0, 5),
                                                  pattern(size, 6)};
            const auto wire = encode(sent);
            for (int round = 0; round < 8; ++round) {
                std::vector<std::size_t> cuts;
                // Pieces from 1 byte to 64 KiB, as QUIC STREAM frames come in.
                for (std::size_t at = 0;;) {
                    const std::size_t max_piece = std::size_t{1} << (rng() % 17);
                    at += 1 + rng() % max_piece;
                    if (at >= wire.size()) break;
                    cuts.push_back(at);
                }
                message_reassembler r(size);
                BOOST_TEST((as_vector(feed_cut(r, wire, cuts)) == sent), "round " << round);
                BOOST_TEST(!r.mid_message());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(an_empty_message_is_a_message) {
    message_reassembler r(0);
    messages out;
    BOOST_TEST(static_cast<bool>(r.feed(bytes({0x00, 0x00, 0x40}), out)));
    BOOST_TEST(out.size() == 2u);
    BOOST_TEST(r.mid_message()); // inside the third one's two-byte length
    BOOST_TEST(static_cast<bool>(r.feed(bytes({0x00}), out)));
    BOOST_TEST(out.size() == 3u);
    for (const auto& m : out)
        BOOST_TEST(m.empty());
    BOOST_TEST(!r.mid_message());
}

BOOST_AUTO_TEST_CASE(a_longer_encoding_than_needed_is_accepted) {
    // The length 3 in 1, 2, 4 and 8 bytes.
    const auto wire = bytes({0x03, 'a',  'b',  'c',                 //
                             0x40, 0x03, 'd',  'e',  'f',           //
                             0x80, 0x00, 0x00, 0x03, 'g', 'h', 'i', //
                             0xc0, 0,    0,    0,    0,   0,   0,   0x03, 'j', 'k', 'l'});
    message_reassembler r(3);
    messages out;
    BOOST_TEST(static_cast<bool>(r.feed(wire, out)));
    BOOST_TEST((as_vector(out) ==
                std::vector<message_bytes>{bytes({'a', 'b', 'c'}), bytes({'d', 'e', 'f'}),
                                           bytes({'g', 'h', 'i'}), bytes({'j', 'k', 'l'})}));
}

BOOST_AUTO_TEST_CASE(a_length_header_split_across_feeds_is_joined) {
    message_bytes wire;
    // An 8-byte length, fed one byte at a time: a message is held back until it is whole.
    const auto body = pattern(300, 9);
    wire = bytes({0xc0, 0, 0, 0, 0, 0, 0x01, 0x2c});
    wire.insert(wire.end(), body.begin(), body.end());
    message_reassembler r(1000);
    messages out;
    for (std::size_t i = 0; i < 8; ++i) {
        BOOST_TEST(static_cast<bool>(r.feed(std::span(wire).subspan(i, 1), out)));
        BOOST_TEST(r.mid_message());
        BOOST_TEST(r.buffered() == (i + 1) % 8); // the length's bytes, then none of the body
    }
    BOOST_TEST(static_cast<bool>(r.feed(std::span(wire).subspan(8, 100), out)));
    BOOST_TEST(out.empty());
    BOOST_TEST(r.buffered() == 100u);
    BOOST_TEST(static_cast<bool>(r.feed(std::span(wire).subspan(108), out)));
    BOOST_REQUIRE(out.size() == 1u);
    BOOST_TEST((out.front() == body));
    BOOST_TEST(!r.mid_message());
}

BOOST_AUTO_TEST_CASE(a_length_above_the_limit_fails_with_the_announced_length) {
    message_reassembler r(100);
    messages out;
    auto wire = encode({pattern(100, 1)});
    // 101 in four bytes, its last byte in the next feed.
    const auto bad = bytes({0x80, 0x00, 0x00, 0x65, 'x', 'y'});
    wire.insert(wire.end(), bad.begin(), bad.end() - 3);
    auto res = r.feed(wire, out);
    BOOST_TEST(static_cast<bool>(res));
    BOOST_TEST(out.size() == 1u); // the message before the bad length is delivered
    res = r.feed(std::span(bad).subspan(3), out);
    BOOST_TEST(!res);
    BOOST_TEST(res.oversize);
    BOOST_TEST(res.announced == 101u);
    BOOST_TEST(r.failed());
    BOOST_TEST(r.failure().announced == 101u);
    BOOST_TEST(!r.mid_message());

    // Failed for good: further bytes are not read.
    res = r.feed(encode({pattern(1, 1)}), out);
    BOOST_TEST(res.oversize);
    BOOST_TEST(res.announced == 101u);
    BOOST_TEST(out.size() == 1u);

    // The largest length the wire can express is 2^62 - 1.
    message_reassembler big(16 * mib);
    res = big.feed(bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), out);
    BOOST_TEST(res.oversize);
    BOOST_TEST(res.announced == max_varint);

    // With a limit of 0 only empty messages pass.
    message_reassembler zero(0);
    messages empties;
    res = zero.feed(bytes({0x00, 0x01, 'z'}), empties);
    BOOST_TEST(res.announced == 1u);
    BOOST_TEST(empties.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_stream_ending_inside_a_message_is_reported_as_truncated) {
    const auto wire = encode({pattern(5, 1), pattern(70, 2)});
    // Every end point: only the ends between messages are clean.
    for (std::size_t end = 0; end <= wire.size(); ++end) {
        message_reassembler r(1000);
        messages out;
        BOOST_TEST(static_cast<bool>(r.feed(std::span(wire).first(end), out)));
        const bool clean = end == 0 || end == 6 || end == wire.size();
        BOOST_TEST(r.mid_message() == !clean, "end at " << end);
        BOOST_TEST(out.size() == std::size_t{end >= 6} + std::size_t{end == wire.size()});
        // Held: the length's bytes until it is complete, then the body's.
        const std::size_t held = end == 0 || end == 6 ? 0
                                 : end < 6            ? end - 1
                                 : end == 7           ? 1
                                 : end == wire.size() ? 0
                                                      : end - 8;
        BOOST_TEST(r.buffered() == held, "end at " << end);
        r.reset();
        BOOST_TEST(!r.mid_message());
        BOOST_TEST(r.buffered() == 0u);
    }
}
