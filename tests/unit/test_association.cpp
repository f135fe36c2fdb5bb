#define BOOST_TEST_MODULE association
#include <boost/test/unit_test.hpp>

#include <post/association.hpp>

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
