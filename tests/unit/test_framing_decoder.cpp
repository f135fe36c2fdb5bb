// The length-prefix frame decoder on its own: splitting, joining, limits, errors.
#define BOOST_TEST_MODULE framing decoder
#include <boost/test/unit_test.hpp>

#include "frame_decoder.hpp"

#include <string>
#include <vector>

using post::plugins::framing::encode_frame_header;
using post::plugins::framing::frame_buffer;
using post::plugins::framing::frame_decoder;

namespace {

frame_buffer payload(std::string_view s) {
    frame_buffer b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        b[i] = std::byte(s[i]);
    return b;
}

frame_buffer frame(const frame_buffer& p) {
    auto h = encode_frame_header(static_cast<std::uint32_t>(p.size()));
    frame_buffer f(h.begin(), h.end());
    f.insert(f.end(), p.begin(), p.end());
    return f;
}

frame_buffer concat(const std::vector<frame_buffer>& parts) {
    frame_buffer out;
    for (const auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

std::span<const std::byte> span_of(const frame_buffer& b, std::size_t from, std::size_t to) {
    return std::span<const std::byte>(b).subspan(from, to - from);
}

} // namespace

BOOST_AUTO_TEST_CASE(header_is_big_endian) {
    auto h = encode_frame_header(0x01020304u);
    BOOST_TEST(std::to_integer<int>(h[0]) == 1);
    BOOST_TEST(std::to_integer<int>(h[3]) == 4);
}

BOOST_AUTO_TEST_CASE(joined_frames_in_one_feed) {
    const std::vector<frame_buffer> msgs{payload("alpha"), payload(""), payload("b"),
                                         payload(std::string(1000, 'x'))};
    std::vector<frame_buffer> frames;
    for (const auto& m : msgs)
        frames.push_back(frame(m));
    const auto wire = concat(frames);

    frame_decoder d(1 << 20);
    std::vector<frame_buffer> out;
    BOOST_TEST(d.feed(wire, out));
    BOOST_REQUIRE_EQUAL(out.size(), msgs.size());
    for (std::size_t i = 0; i < msgs.size(); ++i)
        BOOST_TEST((out[i] == msgs[i]));
    BOOST_TEST(d.buffered() == 0u);
    BOOST_TEST(!d.mid_frame());
}

BOOST_AUTO_TEST_CASE(every_split_point_gives_the_same_messages) {
    const std::vector<frame_buffer> msgs{payload("hello"), payload(""), payload("world!")};
    std::vector<frame_buffer> frames;
    for (const auto& m : msgs)
        frames.push_back(frame(m));
    const auto wire = concat(frames);

    for (std::size_t a = 0; a <= wire.size(); ++a) {
        for (std::size_t b = a; b <= wire.size(); ++b) {
            frame_decoder d(64);
            std::vector<frame_buffer> out;
            BOOST_REQUIRE(d.feed(span_of(wire, 0, a), out));
            BOOST_REQUIRE(d.feed(span_of(wire, a, b), out));
            BOOST_REQUIRE(d.feed(span_of(wire, b, wire.size()), out));
            BOOST_REQUIRE_MESSAGE(out.size() == msgs.size(), "split at " << a << "," << b);
            for (std::size_t i = 0; i < msgs.size(); ++i)
                BOOST_REQUIRE_MESSAGE(out[i] == msgs[i], "split at " << a << "," << b);
        }
    }
}

BOOST_AUTO_TEST_CASE(byte_by_byte) {
    const auto msg = payload("one byte at a time");
    const auto wire = frame(msg);
    frame_decoder d(100);
    std::vector<frame_buffer> out;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        BOOST_REQUIRE(d.feed(span_of(wire, i, i + 1), out));
        if (i + 1 < wire.size()) {
            BOOST_TEST(out.empty());
            BOOST_TEST(d.mid_frame());
            BOOST_TEST(d.buffered() == i + 1);
        }
    }
    BOOST_REQUIRE_EQUAL(out.size(), 1u);
    BOOST_TEST((out[0] == msg));
}

BOOST_AUTO_TEST_CASE(zero_length_messages) {
    frame_decoder d(0); // only empty messages allowed
    std::vector<frame_buffer> out;
    const auto wire = concat({frame({}), frame({}), frame({})});
    BOOST_TEST(d.feed(wire, out));
    BOOST_TEST(out.size() == 3u);
    for (const auto& m : out)
        BOOST_TEST(m.empty());
}

BOOST_AUTO_TEST_CASE(message_of_exactly_max_size_is_accepted) {
    const frame_buffer msg(4096, std::byte{7});
    frame_decoder d(4096);
    std::vector<frame_buffer> out;
    BOOST_TEST(d.feed(frame(msg), out));
    BOOST_REQUIRE_EQUAL(out.size(), 1u);
    BOOST_TEST((out[0] == msg));
}

BOOST_AUTO_TEST_CASE(oversized_length_is_rejected_with_the_reason) {
    frame_decoder d(16777216);
    std::vector<frame_buffer> out;
    const frame_buffer wire{std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                            std::byte{0xFF}, std::byte{'j'},  std::byte{'u'}};
    BOOST_TEST(!d.feed(wire, out));
    BOOST_TEST(d.failed());
    BOOST_TEST(d.error() == "frame of 4294967295 bytes exceeds max-message-size 16777216");
    BOOST_TEST(out.empty());
    BOOST_TEST(d.buffered() == 0u);
}

BOOST_AUTO_TEST_CASE(one_byte_over_the_limit_is_rejected) {
    frame_decoder d(10);
    std::vector<frame_buffer> out;
    BOOST_TEST(!d.feed(frame(frame_buffer(11)), out));
    BOOST_TEST(d.error() == "frame of 11 bytes exceeds max-message-size 10");
}

BOOST_AUTO_TEST_CASE(messages_before_the_error_are_kept_and_garbage_after_it_ignored) {
    frame_decoder d(10);
    std::vector<frame_buffer> out;
    auto wire = concat({frame(payload("ok")), frame(frame_buffer(50)), frame(payload("late"))});
    BOOST_TEST(!d.feed(wire, out));
    BOOST_REQUIRE_EQUAL(out.size(), 1u);
    BOOST_TEST((out[0] == payload("ok")));
    const std::string reason = d.error();
    // Further input, even well-formed, is ignored and the first reason stays.
    BOOST_TEST(!d.feed(frame(payload("x")), out));
    BOOST_TEST(out.size() == 1u);
    BOOST_TEST(d.error() == reason);
}

BOOST_AUTO_TEST_CASE(buffering_is_bounded_by_the_announced_size) {
    frame_decoder d(1000);
    std::vector<frame_buffer> out;
    auto wire = frame(frame_buffer(1000, std::byte{1}));
    BOOST_TEST(d.feed(span_of(wire, 0, 600), out));
    BOOST_TEST(d.buffered() == 600u);
    BOOST_TEST(d.missing() == 404u);
    BOOST_TEST(d.buffered() <= d.max_message_size() + 4);
    BOOST_TEST(d.feed(span_of(wire, 600, wire.size()), out));
    BOOST_TEST(out.size() == 1u);
}
