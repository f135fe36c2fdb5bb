// The shipped codecs on their own: round trips, stream decoding at every split point, and
// bad input turning into parse errors with a reason (never an exception out of decode).
#define BOOST_TEST_MODULE codecs
#include <boost/test/unit_test.hpp>

#include <post/codec.hpp>
#include <post/codecs/json.hpp>
#include <post/codecs/length_prefixed.hpp>
#include <post/codecs/newline.hpp>
#include <post/codecs/raw.hpp>

#include <string>
#include <vector>

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
    auto first = reinterpret_cast<const std::byte*>(s.data());
    return {first, first + s.size()};
}

struct point {
    int x = 0;
    int y = 0;
    std::string label;
    bool operator==(const point&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(point, x, y, label)

static_assert(post::message_codec<post::raw_codec>);
static_assert(post::message_codec<post::newline_codec>);
static_assert(post::message_codec<post::length_prefixed_codec<>>);
static_assert(post::message_codec<post::length_prefixed_codec<post::newline_codec>>);
static_assert(post::message_codec<post::json_codec<>>);
static_assert(post::message_codec<post::json_codec<point>>);
static_assert(!post::message_codec<int>);

/// Every proper prefix of `encoding` must ask for more data, and the whole must decode to
/// `expected`, taking exactly the encoding (also when more bytes follow).
template <class Codec>
void check_stream_decoding(Codec& codec, const typename Codec::pdu_type& expected) {
    auto encoding = codec.encode(expected);
    std::span<const std::byte> all(encoding);
    for (std::size_t n = 0; n < encoding.size(); ++n) {
        auto r = codec.decode(all.first(n));
        BOOST_TEST_CONTEXT("prefix of " << n << " of " << encoding.size() << " bytes") {
            BOOST_TEST(r.needs_more());
            BOOST_TEST(!r.has_value());
        }
    }
    auto whole = codec.decode(all);
    BOOST_REQUIRE(whole.has_value());
    BOOST_TEST(whole.consumed() == encoding.size());
    BOOST_TEST((whole.value() == expected));

    auto two = encoding;
    two.insert(two.end(), encoding.begin(), encoding.end());
    auto first = codec.decode(std::span<const std::byte>(two));
    BOOST_REQUIRE(first.has_value());
    BOOST_TEST(first.consumed() == encoding.size());
    auto second = codec.decode(std::span<const std::byte>(two).subspan(first.consumed()));
    BOOST_REQUIRE(second.has_value());
    BOOST_TEST((second.value() == expected));
}

} // namespace

BOOST_AUTO_TEST_CASE(decode_result_holds_one_of_three) {
    post::decode_result<int> ok = post::decoded(7, 3);
    BOOST_TEST(ok.has_value());
    BOOST_TEST(static_cast<bool>(ok));
    BOOST_TEST(ok.value() == 7);
    BOOST_TEST(ok.consumed() == 3u);
    BOOST_TEST(ok.reason().empty());

    post::decode_result<int> more = post::need_more_data();
    BOOST_TEST(more.needs_more());
    BOOST_TEST(!more.has_value());
    BOOST_TEST(!more.is_error());
    BOOST_TEST(more.consumed() == 0u);

    post::decode_result<int> bad = post::parse_error{"nope"};
    BOOST_TEST(bad.is_error());
    BOOST_TEST(!bad);
    BOOST_TEST(bad.reason() == "nope");
}

BOOST_AUTO_TEST_CASE(raw_round_trip_takes_everything) {
    post::raw_codec c;
    auto pdu = bytes_of(std::string("a\0b\nc", 5));
    auto enc = c.encode(pdu);
    BOOST_TEST((enc == pdu));
    auto r = c.decode(enc);
    BOOST_REQUIRE(r.has_value());
    BOOST_TEST(r.consumed() == 5u);
    BOOST_TEST((r.value() == pdu));
    auto empty = c.decode({});
    BOOST_REQUIRE(empty.has_value());
    BOOST_TEST(empty.value().empty());
}

BOOST_AUTO_TEST_CASE(length_prefixed_wire_format_and_splits) {
    post::length_prefixed_codec<> c(1024);
    auto enc = c.encode(bytes_of("hey"));
    BOOST_TEST(
        (enc == std::vector<std::byte>{std::byte{0}, std::byte{0}, std::byte{0}, std::byte{3},
                                       std::byte{'h'}, std::byte{'e'}, std::byte{'y'}}));
    check_stream_decoding(c, bytes_of("hello, world"));
    check_stream_decoding(c, std::vector<std::byte>{});
    std::vector<std::byte> big(1000, std::byte{0x5a});
    check_stream_decoding(c, big);
}

BOOST_AUTO_TEST_CASE(length_prefixed_bounds_the_size) {
    post::length_prefixed_codec<> c(8);
    BOOST_TEST(c.max_size() == 8u);
    BOOST_CHECK_THROW(c.encode(std::vector<std::byte>(9)), post::encode_error);
    BOOST_CHECK_NO_THROW(c.encode(std::vector<std::byte>(8)));
    // A prefix announcing 2^32 - 1 bytes fails at once instead of waiting for them.
    auto huge =
        std::vector<std::byte>{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}};
    auto r = c.decode(huge);
    BOOST_TEST(r.is_error());
    BOOST_TEST(r.reason().find("4294967295") != std::string::npos);
    BOOST_TEST(r.reason().find("exceeds the maximum 8") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(length_prefixed_around_an_inner_codec) {
    post::length_prefixed_codec<post::newline_codec> c(64, post::newline_codec(16));
    check_stream_decoding(c, std::string("a line"));
    // A frame whose body is not a valid inner encoding: "ab" without its '\n'.
    auto frame = std::vector<std::byte>{std::byte{0}, std::byte{0},   std::byte{0},
                                        std::byte{2}, std::byte{'a'}, std::byte{'b'}};
    auto r = c.decode(frame);
    BOOST_TEST(r.is_error());
    BOOST_TEST(r.reason().find("length-prefixed frame") != std::string::npos);
    BOOST_TEST(r.reason().find("truncated") != std::string::npos);
    // Trailing bytes inside a frame are an error too: "ab\nc".
    frame = {std::byte{0},   std::byte{0},   std::byte{0},    std::byte{4},
             std::byte{'a'}, std::byte{'b'}, std::byte{'\n'}, std::byte{'c'}};
    r = c.decode(frame);
    BOOST_TEST(r.is_error());
    BOOST_TEST(r.reason().find("trailing") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(newline_round_trip_and_splits) {
    post::newline_codec c(32);
    BOOST_TEST((c.encode("hi") == bytes_of("hi\n")));
    check_stream_decoding(c, std::string("GET /index.html"));
    check_stream_decoding(c, std::string());
    check_stream_decoding(c, std::string(32, 'x')); // exactly the bound
    auto crlf = c.decode(bytes_of("a\r\n"));
    BOOST_REQUIRE(crlf.has_value());
    BOOST_TEST(crlf.value() == "a\r"); // the codec splits on '\n' only, as documented
}

BOOST_AUTO_TEST_CASE(newline_rejects_bad_lines) {
    post::newline_codec c(8);
    BOOST_CHECK_THROW(c.encode("two\nlines"), post::encode_error);
    BOOST_CHECK_THROW(c.encode(std::string(9, 'x')), post::encode_error);
    // Eight bytes without '\n' may still be a legal line; nine cannot be.
    BOOST_TEST(c.decode(bytes_of("12345678")).needs_more());
    auto r = c.decode(bytes_of("123456789"));
    BOOST_TEST(r.is_error());
    BOOST_TEST(r.reason().find("maximum line length of 8") != std::string::npos);
    // A long line is an error even when its '\n' has arrived.
    BOOST_TEST(c.decode(bytes_of("123456789\n")).is_error());
}

BOOST_AUTO_TEST_CASE(json_round_trips) {
    post::json_codec<> any;
    nlohmann::json j = {{"op", "put"}, {"n", 3}, {"list", {1, 2, 3}}};
    auto enc = any.encode(j);
    auto r = any.decode(enc);
    BOOST_REQUIRE(r.has_value());
    BOOST_TEST(r.consumed() == enc.size());
    BOOST_TEST((r.value() == j));

    post::json_codec<point> typed;
    point p{3, -4, "héllo"};
    auto penc = typed.encode(p);
    BOOST_TEST(std::string(reinterpret_cast<const char*>(penc.data()), penc.size()) ==
               R"({"label":"héllo","x":3,"y":-4})");
    auto pr = typed.decode(penc);
    BOOST_REQUIRE(pr.has_value());
    BOOST_TEST((pr.value() == p));
}

BOOST_AUTO_TEST_CASE(json_bad_input_is_a_parse_error_not_an_exception) {
    post::json_codec<point> c;
    for (std::string_view bad :
         {"", "{", "{\"x\":1,", "not json", "{\"x\":1} trailing", "\xff\xfe", "[1,2]"}) {
        BOOST_TEST_CONTEXT("input: " << bad) {
            post::decode_result<point> r = post::need_more_data();
            BOOST_CHECK_NO_THROW(r = c.decode(bytes_of(bad)));
            BOOST_TEST(r.is_error());
            BOOST_TEST(!r.reason().empty());
        }
    }
    // Valid JSON of the wrong shape: from_json's complaint becomes the reason.
    auto r = c.decode(bytes_of(R"({"x":"one","y":2,"label":"a"})"));
    BOOST_TEST(r.is_error());
    BOOST_TEST(r.reason().find("type must be number") != std::string::npos);
    auto missing = c.decode(bytes_of(R"({"x":1})"));
    BOOST_TEST(missing.is_error());
    BOOST_TEST(missing.reason().find("key 'y' not found") != std::string::npos);
    // Text nlohmann cannot serialise (invalid UTF-8) is an encode_error.
    BOOST_CHECK_THROW(post::json_codec<>{}.encode(nlohmann::json("\xff")), post::encode_error);
}

BOOST_AUTO_TEST_CASE(decode_whole_demands_exactly_one_pdu) {
    post::newline_codec c;
    auto ok = post::decode_whole(c, bytes_of("one\n"));
    BOOST_REQUIRE(ok.has_value());
    BOOST_TEST(ok.value() == "one");
    auto trailing = post::decode_whole(c, bytes_of("one\ntwo\n"));
    BOOST_TEST(trailing.is_error());
    BOOST_TEST(trailing.reason().find("4 trailing bytes") != std::string::npos);
    auto truncated = post::decode_whole(c, bytes_of("one"));
    BOOST_TEST(truncated.is_error());
    BOOST_TEST(truncated.reason().find("truncated") != std::string::npos);
}
