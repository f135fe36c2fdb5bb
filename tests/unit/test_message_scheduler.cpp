// The kernel's message scheduler on its own: priority, FIFO, lifetimes and antecedents.
#define BOOST_TEST_MODULE message_scheduler
#include <boost/test/unit_test.hpp>

#include "message_scheduler.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

using post::detail::message_scheduler;
using namespace std::chrono_literals;

namespace {

post::message make(post::message_id id, int niceness = 0,
                   std::vector<post::message_id> antecedents = {}) {
    post::message m(std::string_view("m" + std::to_string(id)));
    m.set_id(id);
    m.properties().niceness = niceness;
    m.properties().antecedents = std::move(antecedents);
    return m;
}

message_scheduler::entry entry(post::message m,
                               std::optional<message_scheduler::clock::time_point> deadline = {}) {
    return {std::move(m), nullptr, deadline};
}

std::vector<post::message_id> drain(message_scheduler& s) {
    std::vector<post::message_id> out;
    while (auto e = s.pop_ready())
        out.push_back(e->msg.id());
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(strict_priority_then_fifo) {
    message_scheduler s;
    s.enqueue(entry(make(1, 9)));
    s.enqueue(entry(make(2, 0)));
    s.enqueue(entry(make(3, 5)));
    s.enqueue(entry(make(4, 0)));
    s.enqueue(entry(make(5, 9)));
    BOOST_TEST(drain(s) == (std::vector<post::message_id>{2, 4, 3, 1, 5}),
               boost::test_tools::per_element());
    BOOST_TEST(s.empty());
}

BOOST_AUTO_TEST_CASE(successor_waits_until_its_antecedent_is_sent) {
    message_scheduler s;
    s.enqueue(entry(make(1, 9)));
    s.enqueue(entry(make(2, 0, {1})));
    s.enqueue(entry(make(3, 5)));
    // 2 is the most urgent but waits for 1; 3 is unrelated and is not held back.
    auto first = s.pop_ready();
    BOOST_REQUIRE(first);
    BOOST_TEST(first->msg.id() == 3u);
    auto second = s.pop_ready();
    BOOST_REQUIRE(second);
    BOOST_TEST(second->msg.id() == 1u);
    BOOST_TEST(!s.pop_ready()); // 1 is in the stack, not sent yet
    s.record(1, message_scheduler::outcome::sent);
    auto third = s.pop_ready();
    BOOST_REQUIRE(third);
    BOOST_TEST(third->msg.id() == 2u);
}

BOOST_AUTO_TEST_CASE(expired_and_failed_antecedents_doom_their_successors_transitively) {
    message_scheduler s;
    const auto now = message_scheduler::clock::now();
    s.enqueue(entry(make(1, 0), now - 1ms));
    s.enqueue(entry(make(2, 0, {1})));
    s.enqueue(entry(make(3, 0, {2})));
    s.enqueue(entry(make(4, 0)));
    auto expired = s.take_expired(now);
    BOOST_REQUIRE(expired.size() == 1u);
    BOOST_TEST(expired[0].msg.id() == 1u);
    // Collect until nothing more is doomed (one call may already cover the whole chain).
    std::map<post::message_id, post::error> doomed;
    for (auto d = s.take_doomed(); !d.empty(); d = s.take_doomed())
        for (auto& [e, why] : d)
            doomed.emplace(e.msg.id(), why);
    BOOST_REQUIRE(doomed.size() == 2u);
    BOOST_TEST((doomed[2].code == post::make_error_code(post::errc::antecedent_failed)));
    BOOST_TEST(doomed[2].reason.find("antecedent message 1 expired") != std::string::npos);
    BOOST_TEST(doomed[3].reason.find("antecedent message 2 failed") != std::string::npos);
    BOOST_TEST(s.take_doomed().empty());
    BOOST_TEST(drain(s) == (std::vector<post::message_id>{4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_failure_in_the_stack_dooms_queued_successors) {
    message_scheduler s;
    s.enqueue(entry(make(1)));
    BOOST_REQUIRE(s.pop_ready());
    s.enqueue(entry(make(2, 0, {1})));
    s.record(1, message_scheduler::outcome::failed);
    auto doomed = s.take_doomed();
    BOOST_REQUIRE(doomed.size() == 1u);
    BOOST_TEST(doomed[0].first.msg.id() == 2u);
}

BOOST_AUTO_TEST_CASE(cycles_and_unknown_antecedents_are_rejected) {
    message_scheduler s;
    s.enqueue(entry(make(1)));
    // The message itself, a later message (a cycle: ids only grow), id 0, and an id that was
    // never a sent message (e.g. a received one).
    for (auto [m, words] : std::vector<std::pair<post::message, std::string>>{
             {make(3, 0, {3}), "is the message itself"},
             {make(3, 0, {7}), "would form a cycle"},
             {make(3, 0, {0}), "not a message sent on this carrier"},
             {make(3, 0, {2}), "not a message sent on this carrier"},
         }) {
        auto why = s.check(m);
        BOOST_REQUIRE(why);
        BOOST_TEST((why->code == post::make_error_code(post::errc::invalid_argument)));
        BOOST_TEST(why->reason.find(words) != std::string::npos, why->reason);
    }
    BOOST_TEST(!s.check(make(3, 0, {1})));
}

BOOST_AUTO_TEST_CASE(deadlines_are_reported_earliest_first) {
    message_scheduler s;
    const auto now = message_scheduler::clock::now();
    BOOST_TEST(!s.next_deadline());
    s.enqueue(entry(make(1), now + 50ms));
    s.enqueue(entry(make(2), now + 10ms));
    s.enqueue(entry(make(3)));
    BOOST_REQUIRE(s.next_deadline());
    BOOST_TEST((*s.next_deadline() == now + 10ms));
    BOOST_TEST(s.take_expired(now + 20ms).size() == 1u);
    BOOST_TEST((*s.next_deadline() == now + 50ms));
}

BOOST_AUTO_TEST_CASE(history_is_bounded_and_old_antecedents_count_as_delivered) {
    message_scheduler s;
    const post::message_id n = message_scheduler::history_limit + 10;
    for (post::message_id id = 1; id <= n; ++id) {
        s.enqueue(entry(make(id)));
        auto e = s.pop_ready();
        BOOST_REQUIRE(e);
        s.record(id, message_scheduler::outcome::sent);
    }
    BOOST_TEST(!s.outcome_of(1)); // forgotten
    BOOST_TEST((s.outcome_of(n) == message_scheduler::outcome::sent));
    auto m = make(n + 1, 0, {1});
    BOOST_TEST(!s.check(m));
    s.enqueue(entry(std::move(m)));
    BOOST_TEST(drain(s) == (std::vector<post::message_id>{n + 1}),
               boost::test_tools::per_element());
}
