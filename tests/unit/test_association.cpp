#define BOOST_TEST_MODULE association
#include <boost/test/unit_test.hpp>

#include <post/association.hpp>
#include <post/sdk/session_store.hpp>

#include <atomic>

using post::association;
using clock_type = std::chrono::steady_clock;

BOOST_AUTO_TEST_CASE(a_win_is_remembered_and_clears_its_old_failures) {
    association a("example.org:443");
    BOOST_TEST(!a.last_winner());
    a.record_failure({{"framer", "tcp"}, "[::1]:443", clock_type::now()});
    a.record_failure({{"framer", "tcp"}, "127.0.0.1:443", clock_type::now()});
    BOOST_TEST(a.recent_failures(std::chrono::minutes(1)).size() == 2u);
    a.record_win({{"framer", "tcp"}, "127.0.0.1:443", clock_type::now()});
    auto w = a.last_winner();
    BOOST_REQUIRE(w);
    BOOST_TEST(w->address == "127.0.0.1:443");
    auto failures = a.recent_failures(std::chrono::minutes(1));
    BOOST_REQUIRE(failures.size() == 1u);
    BOOST_TEST(failures[0].address == "[::1]:443");
    BOOST_TEST(a.carriers_established() == 1u);
}

BOOST_AUTO_TEST_CASE(failures_expire_and_are_bounded) {
    association a("h:1");
    a.record_failure({{"udp"}, "old", clock_type::now() - std::chrono::hours(2)});
    BOOST_TEST(a.recent_failures(std::chrono::hours(1)).empty());
    for (int i = 0; i < 1000; ++i)
        a.record_failure({{"udp"}, std::to_string(i), clock_type::now()});
    auto kept = a.recent_failures(std::chrono::hours(1));
    BOOST_TEST(kept.size() <= 64u);
    BOOST_TEST(kept.back().address == "999"); // the newest are kept
}

BOOST_AUTO_TEST_CASE(layer_state_is_kept_per_layer) {
    association a("h:1");
    BOOST_TEST(!a.state("tls"));
    a.put_state("tls", {1, 2, 3});
    a.put_state("quic", {9});
    BOOST_TEST(a.state("tls")->size() == 3u);
    BOOST_TEST(a.state("quic")->front() == 9);
}

namespace {

/// A layer's live state that counts how often it was turned into bytes.
struct counting_object final : post::sdk::session_object {
    explicit counting_object(std::vector<std::byte> form)
        : form(std::move(form)) {}
    post::sdk::byte_buffer serialize() const noexcept override {
        ++calls;
        return form;
    }
    std::vector<std::byte> form;
    mutable std::atomic<int> calls{0};
};

std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(an_object_is_serialised_only_when_its_bytes_are_wanted_and_once) {
    association a("h:1");
    auto first = std::make_shared<counting_object>(bytes({1, 2}));
    a.put_object("tls/h", first);
    a.put_object("tls/h", std::make_shared<counting_object>(bytes({7, 8, 9})));
    BOOST_TEST(first->calls == 0); // replaced before anyone asked: never serialised
    auto second = std::dynamic_pointer_cast<const counting_object>(a.object("tls/h"));
    BOOST_REQUIRE(second);
    BOOST_TEST(second->calls == 0);
    BOOST_TEST(a.state_keys() == std::vector<std::string>{"tls/h"});

    auto saved = a.save();
    BOOST_TEST(second->calls == 1);
    BOOST_REQUIRE(saved.state.count("tls/h") == 1u);
    BOOST_TEST((saved.state["tls/h"] == std::vector<std::uint8_t>{7, 8, 9}));
    BOOST_TEST((a.state("tls/h") == std::vector<std::uint8_t>{7, 8, 9}));
    a.save();
    BOOST_TEST(second->calls == 1); // the form is kept

    // Bytes restored from a file carry no object; new bytes replace an object.
    association b("h:1");
    b.restore(saved);
    BOOST_TEST(!b.object("tls/h"));
    BOOST_TEST((b.state("tls/h") == std::vector<std::uint8_t>{7, 8, 9}));
    a.put_state("tls/h", {4});
    BOOST_TEST(!a.object("tls/h"));
    BOOST_TEST((a.state("tls/h") == std::vector<std::uint8_t>{4}));
}

BOOST_AUTO_TEST_CASE(an_object_without_a_form_or_over_the_bound_is_not_saved) {
    association a("h:1");
    a.put_object("empty", std::make_shared<counting_object>(bytes({})));
    a.put_object("huge", std::make_shared<counting_object>(
                             std::vector<std::byte>(association::max_state_bytes + 1)));
    a.put_object("fine", std::make_shared<counting_object>(bytes({5})));
    BOOST_TEST(!a.state("empty"));
    BOOST_TEST(!a.state("huge"));
    BOOST_TEST(a.object("huge")); // still usable in this run
    auto saved = a.save();
    BOOST_TEST(saved.state.size() == 1u);
    BOOST_TEST(saved.state.count("fine") == 1u);
    a.erase_state("fine");
    BOOST_TEST(!a.object("fine"));
    BOOST_TEST(!a.state("fine"));
}

BOOST_AUTO_TEST_CASE(oversized_bytes_are_refused) {
    association a("h:1");
    a.put_state("tls", std::vector<std::uint8_t>(association::max_state_bytes + 1));
    BOOST_TEST(!a.state("tls"));
    a.put_state("tls", std::vector<std::uint8_t>(association::max_state_bytes));
    BOOST_TEST(a.state("tls")->size() == association::max_state_bytes);
}
