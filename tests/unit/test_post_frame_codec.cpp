// The post-frame codec and scheduler on their own (sans-I/O): frames split at every byte,
// every malformed input class, bounds, ABORT, ACK, partial delivery, preface matching, and the
// order in which the scheduler picks messages.
#define BOOST_TEST_MODULE post - frame codec
#include <boost/test/unit_test.hpp>

#include "post_frame_codec.hpp"
#include "post_frame_scheduler.hpp"

#include <string>
#include <vector>

namespace pf = post::plugins::framing::post_frame;
using kind = pf::decoded::kind;

namespace {

pf::buffer bytes(std::string_view s) {
    pf::buffer b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        b[i] = std::byte(s[i]);
    return b;
}

std::string text(const pf::buffer& b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

pf::buffer pattern(std::size_t n, unsigned seed) {
    pf::buffer b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = std::byte((i * 31 + seed * 7) & 0xFF);
    return b;
}

/// A whole message as one or more DATA frames of at most `chunk` bytes.
void append_message(pf::buffer& out, std::uint64_t id, const pf::buffer& m, std::size_t chunk,
                    bool ack = false, std::uint32_t lifetime = 0) {
    std::size_t off = 0;
    do {
        const std::size_t n = std::min(chunk, m.size() - off);
        pf::append_data(out, id, off == 0, off + n == m.size(), ack, m.size(), lifetime,
                        std::span<const std::byte>(m).subspan(off, n));
        off += n;
    } while (off < m.size());
}

struct run_result {
    bool ok;
    std::string error;
    std::vector<pf::decoded> out;
};

run_result decode(const pf::buffer& wire, pf::decoder_limits limits = {}) {
    pf::decoder d(limits);
    run_result r;
    r.ok = d.feed(wire, pf::clock::now(), r.out);
    r.error = d.error();
    return r;
}

bool contains(const std::string& s, std::string_view what) {
    return s.find(what) != std::string::npos;
}

/// A raw frame header: type, flags, length, id (for malformed inputs the encoder never makes).
pf::buffer raw_header(std::uint8_t type, std::uint8_t flags, std::uint32_t len, std::uint64_t id) {
    pf::buffer b{std::byte(type), std::byte(flags)};
    for (int i = 3; i >= 0; --i)
        b.push_back(std::byte(len >> (8 * i)));
    for (int i = 7; i >= 0; --i)
        b.push_back(std::byte(id >> (8 * i)));
    return b;
}

} // namespace

BOOST_AUTO_TEST_CASE(small_message_is_one_header_plus_payload) {
    pf::buffer out;
    pf::append_data(out, 7, true, true, true, 5, 250, bytes("hello"));
    BOOST_REQUIRE_EQUAL(out.size(), pf::header_size + pf::first_extension_size + 5);
    // type DATA, flags FIRST|LAST|ACK, length 5, id 7, total 5, lifetime 250 ms.
    const pf::buffer expect = [] {
        pf::buffer e{std::byte(0), std::byte(0x07), std::byte(0),
                     std::byte(0), std::byte(0),    std::byte(5)};
        for (int i = 0; i < 7; ++i)
            e.push_back(std::byte(0));
        e.push_back(std::byte(7));
        for (int i = 0; i < 7; ++i)
            e.push_back(std::byte(0));
        e.push_back(std::byte(5));
        for (auto v : {0, 0, 0, 250})
            e.push_back(std::byte(v));
        auto h = bytes("hello");
        e.insert(e.end(), h.begin(), h.end());
        return e;
    }();
    BOOST_TEST((out == expect));
}

BOOST_AUTO_TEST_CASE(every_split_point_gives_the_same_units) {
    pf::buffer wire;
    const auto big = pattern(1000, 1);
    append_message(wire, 1, bytes("alpha"), 64, true, 100);
    append_message(wire, 2, pf::buffer{}, 64);
    append_message(wire, 3, big, 300);
    pf::append_ack(wire, 9, false);
    pf::append_ack(wire, 10, true);
    // Interleaved: message 4 starts, 5 runs whole inside it, 4 ends.
    const auto m4 = pattern(100, 4);
    pf::append_data(wire, 4, true, false, false, 100, 0,
                    std::span<const std::byte>(m4).subspan(0, 60));
    append_message(wire, 5, bytes("urgent"), 64);
    pf::append_data(wire, 4, false, true, false, 100, 0,
                    std::span<const std::byte>(m4).subspan(60));

    const auto whole = decode(wire);
    BOOST_REQUIRE(whole.ok);
    BOOST_REQUIRE_EQUAL(whole.out.size(), 7u);
    BOOST_TEST(text(whole.out[0].data) == "alpha");
    BOOST_TEST(whole.out[0].ack_requested);
    BOOST_TEST(whole.out[0].deadline.has_value());
    BOOST_TEST(whole.out[1].data.empty());
    BOOST_TEST(!whole.out[1].deadline.has_value());
    BOOST_TEST((whole.out[2].data == big));
    BOOST_TEST((whole.out[3].what == kind::ack && whole.out[3].id == 9u && !whole.out[3].expired));
    BOOST_TEST((whole.out[4].what == kind::ack && whole.out[4].id == 10u && whole.out[4].expired));
    BOOST_TEST((whole.out[5].id == 5u && text(whole.out[5].data) == "urgent"));
    BOOST_TEST((whole.out[6].id == 4u && whole.out[6].data == m4));

    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        for (std::size_t cut2 = cut; cut2 <= wire.size(); cut2 += 37) {
            pf::decoder d({});
            std::vector<pf::decoded> out;
            const auto now = pf::clock::now();
            bool ok = d.feed(std::span<const std::byte>(wire).subspan(0, cut), now, out);
            ok = d.feed(std::span<const std::byte>(wire).subspan(cut, cut2 - cut), now, out) && ok;
            ok = d.feed(std::span<const std::byte>(wire).subspan(cut2), now, out) && ok;
            BOOST_REQUIRE_MESSAGE(ok, "cut " << cut << "/" << cut2 << ": " << d.error());
            BOOST_REQUIRE_EQUAL(out.size(), whole.out.size());
            for (std::size_t i = 0; i < out.size(); ++i) {
                BOOST_REQUIRE(out[i].what == whole.out[i].what);
                BOOST_REQUIRE(out[i].id == whole.out[i].id);
                BOOST_REQUIRE((out[i].data == whole.out[i].data));
            }
            BOOST_REQUIRE(d.truncation().empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(byte_by_byte_feeding_works) {
    pf::buffer wire;
    append_message(wire, 1, pattern(5000, 3), 1024);
    pf::decoder d({});
    std::vector<pf::decoded> out;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        BOOST_REQUIRE(
            d.feed(std::span<const std::byte>(wire).subspan(i, 1), pf::clock::now(), out));
        if (i + 1 < wire.size()) BOOST_REQUIRE(!d.truncation().empty());
    }
    BOOST_REQUIRE_EQUAL(out.size(), 1u);
    BOOST_TEST((out[0].data == pattern(5000, 3)));
}

BOOST_AUTO_TEST_CASE(truncated_streams_say_where) {
    pf::buffer wire;
    append_message(wire, 1, pattern(100, 1), 40);
    struct {
        std::size_t keep;
        const char* expect;
    } cases[] = {
        {5, "inside a frame header (5 of 14 bytes)"},
        {20, "inside a frame header (20 of 26 bytes)"},
        {30, "inside a DATA frame of message 1 (36 bytes missing)"},
        {66, "message 1 incomplete (40 of 100 bytes)"},
    };
    for (const auto& c : cases) {
        pf::decoder d({});
        std::vector<pf::decoded> out;
        BOOST_REQUIRE(
            d.feed(std::span<const std::byte>(wire).subspan(0, c.keep), pf::clock::now(), out));
        BOOST_TEST(out.empty());
        BOOST_TEST(contains(d.truncation(), c.expect), d.truncation());
    }
}

BOOST_AUTO_TEST_CASE(oversized_total_is_refused_before_any_payload) {
    pf::buffer wire;
    pf::append_data(wire, 1, true, false, false, 1001, 0, bytes("x"));
    auto r = decode(wire, {1000, 64, 0});
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.error == "message 1 of 1001 bytes exceeds max-message-size 1000");
}

BOOST_AUTO_TEST_CASE(chunks_must_add_up_to_the_total) {
    {
        pf::buffer wire; // LAST too early
        pf::append_data(wire, 1, true, false, false, 10, 0, bytes("abc"));
        pf::append_data(wire, 1, false, true, false, 10, 0, bytes("de"));
        auto r = decode(wire);
        BOOST_TEST(!r.ok);
        BOOST_TEST(r.error == "message 1 ended (LAST) after 5 of its 10 bytes");
    }
    {
        pf::buffer wire; // past the total
        pf::append_data(wire, 1, true, false, false, 4, 0, bytes("abc"));
        pf::append_data(wire, 1, false, false, false, 4, 0, bytes("de"));
        auto r = decode(wire);
        BOOST_TEST(!r.ok);
        BOOST_TEST(r.error == "DATA for message 1 goes past its total of 4 bytes");
    }
    {
        pf::buffer wire; // total reached without LAST
        pf::append_data(wire, 1, true, false, false, 3, 0, bytes("abc"));
        auto r = decode(wire);
        BOOST_TEST(!r.ok);
        BOOST_TEST(r.error == "message 1 reached its total of 3 bytes without LAST");
    }
}

BOOST_AUTO_TEST_CASE(reordered_and_duplicate_ids_are_errors) {
    {
        pf::buffer wire;
        append_message(wire, 7, bytes("a"), 10);
        append_message(wire, 5, bytes("b"), 10);
        auto r = decode(wire);
        BOOST_TEST(!r.ok);
        BOOST_REQUIRE_EQUAL(r.out.size(), 1u); // what came before is intact
        BOOST_TEST(r.error == "FIRST for message 5 after message 7 (message ids must increase)");
    }
    {
        pf::buffer wire;
        pf::append_data(wire, 3, true, false, false, 10, 0, bytes("abc"));
        pf::append_data(wire, 3, true, false, false, 10, 0, bytes("abc"));
        auto r = decode(wire);
        BOOST_TEST(!r.ok);
        BOOST_TEST(r.error == "FIRST for message 3 which is already in progress");
    }
    {
        pf::buffer wire;
        append_message(wire, 0, bytes("a"), 10);
        BOOST_TEST(decode(wire).error == "message id 0 is reserved");
    }
}

BOOST_AUTO_TEST_CASE(data_for_an_unknown_message_is_an_error) {
    pf::buffer wire;
    pf::append_data(wire, 7, false, true, false, 0, 0, bytes("abc"));
    auto r = decode(wire);
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.error == "DATA for message 7 which has not started");
}

BOOST_AUTO_TEST_CASE(garbage_and_unknown_types_and_flags_are_errors) {
    BOOST_TEST(decode(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).error ==
               "unknown frame type 0x47");
    BOOST_TEST(decode(raw_header(9, 0, 0, 1)).error == "unknown frame type 0x09");
    BOOST_TEST(decode(raw_header(0, 0x10, 0, 1)).error == "bad flags 0x10 on DATA for message 1");
    BOOST_TEST(decode(raw_header(0, 0x06, 1, 1)).error ==
               "ACK-REQUESTED without FIRST on DATA for message 1");
    BOOST_TEST(decode(raw_header(1, 1, 0, 1)).error == "bad flags 0x01 on ABORT for message 1");
    BOOST_TEST(decode(raw_header(2, 2, 0, 1)).error == "bad flags 0x02 on ACK for message 1");
    BOOST_TEST(decode(raw_header(2, 0, 3, 1)).error == "ACK for message 1 carries a payload");
    BOOST_TEST(decode(raw_header(0, 0x03, 2 * 1024 * 1024, 1)).error ==
               "chunk of 2097152 bytes for message 1 exceeds the limit of 1048576");
    pf::buffer empty_chunk;
    pf::append_data(empty_chunk, 1, true, false, false, 10, 0, bytes("a"));
    pf::append_data(empty_chunk, 1, false, false, false, 10, 0, {});
    BOOST_TEST(decode(empty_chunk).error == "empty DATA chunk for message 1");
}

BOOST_AUTO_TEST_CASE(failed_decoder_ignores_further_input) {
    pf::decoder d({});
    std::vector<pf::decoded> out;
    BOOST_TEST(!d.feed(raw_header(9, 0, 0, 1), pf::clock::now(), out));
    pf::buffer good;
    append_message(good, 1, bytes("a"), 10);
    BOOST_TEST(!d.feed(good, pf::clock::now(), out));
    BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(too_many_in_flight_is_an_error) {
    pf::buffer wire;
    for (std::uint64_t id = 1; id <= 3; ++id)
        pf::append_data(wire, id, true, false, false, 10, 0, bytes("a"));
    auto ok = decode(wire, {1000, 3, 0});
    BOOST_TEST(ok.ok);
    pf::append_data(wire, 4, true, false, false, 10, 0, bytes("a"));
    auto r = decode(wire, {1000, 3, 0});
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.error ==
               "too many messages in flight: message 4 would be one more than 3 (max-in-flight)");
    // A whole message in one frame is never "in flight" between frames.
    pf::buffer whole;
    for (std::uint64_t id = 1; id <= 3; ++id)
        pf::append_data(whole, id, true, false, false, 10, 0, bytes("a"));
    append_message(whole, 4, bytes("x"), 10);
    BOOST_TEST(decode(whole, {1000, 3, 0}).ok);
}

BOOST_AUTO_TEST_CASE(abort_discards_what_was_received) {
    pf::buffer wire;
    pf::append_data(wire, 1, true, false, false, 10, 0, bytes("abc"));
    pf::append_abort(wire, 1);
    append_message(wire, 2, bytes("next"), 10);
    auto r = decode(wire);
    BOOST_REQUIRE(r.ok);
    BOOST_REQUIRE_EQUAL(r.out.size(), 2u);
    BOOST_TEST((r.out[0].what == kind::abort && r.out[0].id == 1u));
    BOOST_TEST((r.out[1].what == kind::message && text(r.out[1].data) == "next"));
    // Data for the aborted message afterwards is an error, and so is a second ABORT.
    pf::buffer after = wire;
    pf::append_data(after, 1, false, true, false, 10, 0, bytes("defghij"));
    BOOST_TEST(decode(after).error == "DATA for message 1 which has not started");
    pf::buffer twice = wire;
    pf::append_abort(twice, 1);
    BOOST_TEST(decode(twice).error == "ABORT for message 1 which is not in progress");
}

BOOST_AUTO_TEST_CASE(partial_delivery_gives_parts_in_order) {
    pf::buffer wire;
    const auto big = pattern(250, 9);
    append_message(wire, 1, big, 100, true, 0);
    append_message(wire, 2, bytes("small"), 100);
    auto r = decode(wire, {1000, 64, 200});
    BOOST_REQUIRE(r.ok);
    BOOST_REQUIRE_EQUAL(r.out.size(), 4u);
    pf::buffer joined;
    for (int i = 0; i < 3; ++i) {
        BOOST_TEST((r.out[i].what == kind::part));
        BOOST_TEST(r.out[i].id == 1u);
        BOOST_TEST(r.out[i].end == (i == 2));
        BOOST_TEST(r.out[i].ack_requested);
        joined.insert(joined.end(), r.out[i].data.begin(), r.out[i].data.end());
    }
    BOOST_TEST((joined == big));
    BOOST_TEST((r.out[3].what == kind::message)); // at or below the threshold: whole
}

BOOST_AUTO_TEST_CASE(lifetime_becomes_a_deadline_from_arrival) {
    pf::buffer wire;
    append_message(wire, 1, bytes("x"), 10, false, 1500);
    pf::decoder d({});
    std::vector<pf::decoded> out;
    const auto now = pf::clock::now();
    BOOST_REQUIRE(d.feed(wire, now, out));
    BOOST_REQUIRE(out.at(0).deadline.has_value());
    BOOST_TEST((*out[0].deadline == now + std::chrono::milliseconds(1500)));

    BOOST_TEST(pf::lifetime_ms(std::nullopt, now) == 0u);
    BOOST_TEST(pf::lifetime_ms(now + std::chrono::microseconds(10), now) == 1u);
    BOOST_TEST(pf::lifetime_ms(now + std::chrono::milliseconds(20), now) == 20u);
    // Transit is taken off, rounding down; what cannot arrive in time still reads as 1 ms.
    BOOST_TEST(pf::lifetime_ms(now + std::chrono::milliseconds(50), now,
                               std::chrono::microseconds(20500)) == 29u);
    BOOST_TEST(pf::lifetime_ms(now + std::chrono::milliseconds(10), now,
                               std::chrono::milliseconds(20)) == 1u);
}

BOOST_AUTO_TEST_CASE(preface_matcher_stops_at_the_first_wrong_byte) {
    pf::preface_matcher m(pf::responder_preface);
    std::size_t used = 0;
    auto part = bytes("POST");
    BOOST_TEST((m.feed(part, used) == pf::preface_matcher::result::need_more));
    BOOST_TEST(used == 4u);
    pf::buffer rest{std::byte{'F'}, std::byte{'R'}, std::byte{'M'}, std::byte{0x81},
                    std::byte{0x02}};
    BOOST_TEST((m.feed(rest, used) == pf::preface_matcher::result::matched));
    BOOST_TEST(used == 4u); // the frame byte after it is not consumed

    pf::preface_matcher echo(pf::responder_preface);
    pf::buffer own(pf::initiator_preface.begin(), pf::initiator_preface.end());
    BOOST_TEST((echo.feed(own, used) == pf::preface_matcher::result::mismatch));
    BOOST_TEST(used == 7u);
    BOOST_TEST(pf::hex_prefix(own) == "50 4f 53 54 46 52 4d 01");

    pf::preface_matcher http(pf::initiator_preface);
    auto get = bytes("HTTP/1.1 400");
    BOOST_TEST((http.feed(get, used) == pf::preface_matcher::result::mismatch));
    BOOST_TEST(used == 0u);
    BOOST_TEST(pf::hex_prefix(get, 4) == "48 54 54 50 ...");
}

BOOST_AUTO_TEST_CASE(scheduler_is_strict_niceness_then_fifo) {
    pf::scheduler s;
    auto msg = [](std::uint64_t id, int niceness) {
        pf::outgoing m;
        m.upper_id = id;
        m.niceness = niceness;
        return m;
    };
    s.push(msg(1, 9));
    s.push(msg(2, 0));
    s.push(msg(3, 5));
    s.push(msg(4, 0));
    s.front().wire_id = 1; // in progress: keeps its place
    s.push(msg(5, 0));
    std::vector<std::uint64_t> order;
    while (!s.empty())
        order.push_back(s.pop_front().upper_id);
    BOOST_TEST((order == std::vector<std::uint64_t>{2, 4, 5, 3, 1}));
}

BOOST_AUTO_TEST_CASE(scheduler_takes_expired_messages_anywhere) {
    pf::scheduler s;
    const auto now = pf::clock::now();
    for (std::uint64_t id = 1; id <= 4; ++id) {
        pf::outgoing m;
        m.upper_id = id;
        m.niceness = static_cast<int>(id % 2);
        if (id != 3) m.deadline = now + std::chrono::milliseconds(id == 2 ? -1 : 100 * id);
        s.push(std::move(m));
    }
    BOOST_TEST((*s.earliest_deadline() == now - std::chrono::milliseconds(1)));
    auto gone = s.take_expired(now);
    BOOST_REQUIRE_EQUAL(gone.size(), 1u);
    BOOST_TEST(gone[0].upper_id == 2u);
    BOOST_TEST(s.size() == 3u);
    BOOST_TEST((*s.earliest_deadline() == now + std::chrono::milliseconds(100)));
}
