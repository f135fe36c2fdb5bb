// The example checksum layer (docs/examples/checksum-plugin), built statically, over an in-memory
// lower message flow: the wire format, verification, and what a damaged message does. The
// out-of-tree test (out_of_tree.sh) covers the same plugin loaded by `post` over real TCP.
#define BOOST_TEST_MODULE checksum_layer
#include <utility> // before Asio (Boost 1.74 with g++ 12)

#include <boost/test/unit_test.hpp>

#include <post/sdk.hpp>

#include <boost/asio/io_context.hpp>

#include <cstring>
#include <string>
#include <vector>

const post::sdk::plugin_descriptor* post_plugin_checksum() noexcept;

namespace sdk = post::sdk;

namespace {

sdk::byte_buffer bytes(const std::string& s) {
    sdk::byte_buffer b(s.size());
    std::memcpy(b.data(), s.data(), s.size());
    return b;
}

std::string text(const sdk::byte_buffer& b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

/// The layer below: records what the checksum flow hands it; tests inject what it receives.
struct wire_flow : sdk::flow {
    std::weak_ptr<sdk::flow_events> events;
    std::vector<sdk::byte_buffer> sent;
    bool started = false, aborted = false;

    void set_events(std::weak_ptr<sdk::flow_events> e) noexcept override { events = e; }
    void start() noexcept override { started = true; }
    void send(sdk::byte_buffer data, const sdk::send_meta&) noexcept override {
        sent.push_back(std::move(data));
    }
    void close() noexcept override {}
    void abort() noexcept override { aborted = true; }
    sdk::flow_info info() const noexcept override {
        sdk::flow_info i;
        i.kind = sdk::edge::message;
        i.max_message_size = 1000;
        return i;
    }
    std::size_t queued_bytes() const noexcept override { return 0; }

    void deliver(sdk::byte_buffer data) {
        if (auto e = events.lock()) e->on_received(std::move(data), {});
    }
};

/// The layer above: records every event.
struct app_events : sdk::flow_events {
    std::vector<std::string> received;
    std::vector<std::uint64_t> send_errors;
    bool closed = false;
    sdk::flow_error close_error;

    void on_ready() noexcept override {}
    void on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept override {
        received.push_back(text(data));
    }
    void on_sent(std::uint64_t) noexcept override {}
    void on_send_error(std::uint64_t id, const sdk::flow_error&) noexcept override {
        send_errors.push_back(id);
    }
    void on_closed(const sdk::flow_error& e) noexcept override {
        closed = true;
        close_error = e;
    }
};

const sdk::layer_descriptor& checksum_descriptor() {
    const auto* d = post_plugin_checksum();
    BOOST_REQUIRE(d != nullptr);
    BOOST_REQUIRE_EQUAL(d->layer_count, 1u);
    return d->layers[0];
}

struct fixture {
    boost::asio::io_context io;
    std::shared_ptr<wire_flow> wire = std::make_shared<wire_flow>();
    std::shared_ptr<app_events> app = std::make_shared<app_events>();
    std::unique_ptr<sdk::layer> layer;
    std::shared_ptr<sdk::flow> flow;

    fixture() {
        sdk::layer_context ctx{io.get_executor(), {}, nullptr};
        ctx.opts.set("algorithm", std::string("crc32"));
        sdk::flow_error err;
        layer = checksum_descriptor().create(ctx, err);
        BOOST_REQUIRE_MESSAGE(layer, err.reason);
        flow = layer->open(wire, {}, err);
        BOOST_REQUIRE_MESSAGE(flow, err.reason);
        flow->set_events(app);
        flow->start();
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(descriptor_declares_a_message_layer_with_checksum_features) {
    const auto* d = post_plugin_checksum();
    BOOST_TEST(d->magic == sdk::plugin_magic);
    BOOST_TEST(d->abi_major == sdk::abi_major);
    BOOST_TEST(std::string(d->name) == "checksum");
    const auto& l = checksum_descriptor();
    BOOST_TEST(std::string(l.name) == "checksum");
    BOOST_TEST((l.upper == sdk::edge::message));
    BOOST_TEST((l.lower == sdk::edge::message));
    std::vector<std::string> provided;
    for (std::size_t i = 0; i < l.feature_count; ++i)
        if (l.features[i].effect == sdk::feature_effect::provides)
            provided.push_back(l.features[i].name);
    BOOST_TEST(provided == (std::vector<std::string>{"full-checksum-send", "full-checksum-recv"}),
               boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(send_appends_the_crc32_big_endian, fixture) {
    BOOST_TEST(wire->started);
    flow->send(bytes("123456789"), {});
    BOOST_REQUIRE_EQUAL(wire->sent.size(), 1u);
    // CRC-32 check value of "123456789" is 0xCBF43926.
    BOOST_TEST(text(wire->sent[0]) == "123456789\xCB\xF4\x39\x26");
    BOOST_TEST(flow->info().max_message_size == 996u);
}

BOOST_FIXTURE_TEST_CASE(receive_verifies_and_strips_the_trailer, fixture) {
    wire->deliver(bytes("123456789\xCB\xF4\x39\x26"));
    wire->deliver(bytes(std::string("\x00\x00\x00\x00", 4))); // the empty message's CRC is 0
    BOOST_TEST(app->received == (std::vector<std::string>{"123456789", ""}),
               boost::test_tools::per_element());
    BOOST_TEST(!app->closed);
}

BOOST_FIXTURE_TEST_CASE(a_damaged_message_closes_the_flow_with_a_protocol_error, fixture) {
    wire->deliver(bytes("123456789\xCB\xF4\x39\x26"));
    wire->deliver(bytes("123456780\xCB\xF4\x39\x26")); // one byte changed
    wire->deliver(bytes("123456789\xCB\xF4\x39\x26")); // after the close: ignored
    BOOST_TEST(app->received.size() == 1u);
    BOOST_TEST(app->closed);
    BOOST_TEST(wire->aborted);
    BOOST_TEST((app->close_error.code == std::errc::protocol_error));
    BOOST_TEST(app->close_error.reason.find("CRC-32 mismatch in message 2") != std::string::npos,
               app->close_error.reason);
}

BOOST_FIXTURE_TEST_CASE(a_message_shorter_than_the_trailer_is_a_protocol_error, fixture) {
    wire->deliver(bytes("ab"));
    BOOST_TEST(app->received.empty());
    BOOST_TEST((app->close_error.code == std::errc::protocol_error));
    BOOST_TEST(app->close_error.reason.find("fewer than its 4-byte") != std::string::npos,
               app->close_error.reason);
}

BOOST_FIXTURE_TEST_CASE(send_after_abort_reports_an_error_through_the_executor, fixture) {
    flow->abort();
    BOOST_TEST(wire->aborted);
    auto later = std::make_shared<app_events>();
    flow->set_events(later);
    sdk::send_meta meta;
    meta.id = 42;
    flow->send(bytes("x"), meta);
    BOOST_TEST(later->send_errors.empty()); // never re-entrant
    io.run();
    BOOST_TEST(later->send_errors == std::vector<std::uint64_t>{42});
    BOOST_TEST(wire->sent.empty());
}

BOOST_AUTO_TEST_CASE(an_unknown_algorithm_is_refused_with_a_reason) {
    boost::asio::io_context io;
    sdk::layer_context ctx{io.get_executor(), {}, nullptr};
    ctx.opts.set("algorithm", std::string("md5"));
    sdk::flow_error err;
    auto layer = checksum_descriptor().create(ctx, err);
    BOOST_TEST(!layer);
    BOOST_TEST(static_cast<bool>(err));
    BOOST_TEST(err.reason.find("unsupported algorithm 'md5'") != std::string::npos, err.reason);
}
