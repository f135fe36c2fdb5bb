// The per-context cache of prepared policies: carriers initiated with an equal policy share the
// validated policy, the ranked stacks and the configured layers; any difference, other
// plugins, or age gives a fresh preparation.
#define BOOST_TEST_MODULE policy_cache
#include <boost/test/unit_test.hpp>

#include <utility>

#include "loopback_support.hpp"

#include "context_state.hpp"
#include "policy_cache.hpp"
#include "policy_equal.hpp"
#include "stack.hpp"

#include <post.hpp>

#include <thread>

namespace {

using fixture = post::test::loopback_fixture;
using post::detail::same_constraint;
using post::detail::same_policy;

const char* base_yaml = "version: 1\n"
                        "name: cached\n"
                        "stacks: [[framer, tcp]]\n"
                        "protocols:\n"
                        "  tcp: { nodelay: true }\n"
                        "racing: { attempt-delay: 100ms }\n";

post::policy base() {
    return post::policy::parse(base_yaml, "cached.yaml");
}

post::detail::context_state& state(post::context& ctx) {
    return *post::detail::kernel_access::state(ctx);
}

} // namespace

BOOST_AUTO_TEST_CASE(equal_policies_compare_equal_and_every_part_counts) {
    const auto a = base();
    BOOST_TEST(same_policy(a, base()));
    BOOST_TEST(same_policy(a, a));

    auto differs = [&](auto change) {
        auto b = base();
        change(b);
        return !same_policy(a, b);
    };
    BOOST_TEST(differs([](post::policy& p) { p.name = "other"; }));
    BOOST_TEST(differs([](post::policy& p) { p.description = "x"; }));
    BOOST_TEST(differs([](post::policy& p) { p.where.line += 1; }));
    BOOST_TEST(differs([](post::policy& p) {
        p.selection["reliability"] = {"reliability", post::preference::require, {}};
    }));
    BOOST_TEST(differs([](post::policy& p) { p.interfaces = post::interface_rules{}; }));
    BOOST_TEST(differs([](post::policy& p) { p.stacks.front().layers = {"tcp"}; }));
    BOOST_TEST(differs([](post::policy& p) { p.stacks.front().where.column += 1; }));
    BOOST_TEST(differs([](post::policy& p) { p.protocols["tcp"]["nodelay"].value = "false"; }));
    BOOST_TEST(differs([](post::policy& p) { p.protocols["tcp"]["nodelay"].where.line = 99; }));
    BOOST_TEST(differs([](post::policy& p) { p.protocols["udp"]; }));
    BOOST_TEST(
        differs([](post::policy& p) { p.racing.attempt_delay += std::chrono::milliseconds(1); }));
    BOOST_TEST(differs([](post::policy& p) { p.racing.max_attempts = 2; }));
    BOOST_TEST(differs([](post::policy& p) { p.connection.timeout = std::chrono::seconds(1); }));
    BOOST_TEST(differs([](post::policy& p) { p.connection.dormant = true; }));
    BOOST_TEST(differs([](post::policy& p) { p.connection.max_message_size = 1; }));
    // A source (unidirectional-send) never shares a preparation with a plain carrier.
    BOOST_TEST(differs(
        [](post::policy& p) { p.connection.direction = post::sdk::flow_direction::send_only; }));

    post::stack_constraint c1, c2;
    BOOST_TEST(same_constraint(c1, c2));
    c2.must_contain = {"tcp"};
    BOOST_TEST(!same_constraint(c1, c2));
    c2 = {};
    c2.stream_top = true;
    BOOST_TEST(!same_constraint(c1, c2));
}

BOOST_FIXTURE_TEST_CASE(an_equal_policy_reuses_the_preparation_and_its_layers, fixture) {
    auto& st = state(ctx);
    const post::stack_constraint none;
    auto first = st.policies.prepare(st, base(), none);
    auto again = st.policies.prepare(st, base(), none); // another object, equal
    BOOST_TEST(first.get() == again.get());
    BOOST_REQUIRE_EQUAL(first->candidates().size(), 1u);
    BOOST_TEST(first->merged()->effective.name == "cached");

    post::error err;
    auto layers = first->stack(st, 0, err);
    BOOST_REQUIRE_MESSAGE(layers, err.reason);
    BOOST_TEST(layers->label() == "[framer, tcp]");
    BOOST_TEST(again->stack(st, 0, err).get() == layers.get());

    // One option differs: prepared apart, with layers of its own.
    auto changed = base();
    changed.protocols["tcp"]["nodelay"].value = "false";
    auto other = st.policies.prepare(st, changed, none);
    BOOST_TEST(other.get() != first.get());
    BOOST_TEST(other->stack(st, 0, err).get() != layers.get());

    // So does another constraint (a URL scheme).
    auto tcp_only = st.policies.prepare(st, base(), post::constraint_for_scheme("tcp"));
    BOOST_TEST(tcp_only.get() != first.get());
    BOOST_TEST(st.policies.prepare(st, base(), none).get() == first.get());
}

BOOST_FIXTURE_TEST_CASE(an_invalid_policy_is_refused_every_time, fixture) {
    auto& st = state(ctx);
    auto bad = post::policy::parse("version: 1\nname: bad\nstacks: [[framer, udp]]\n", "bad.yaml");
    for (int i = 0; i < 2; ++i)
        BOOST_CHECK_THROW(st.policies.prepare(st, bad, {}), post::policy_error);
}

BOOST_FIXTURE_TEST_CASE(a_preparation_expires_so_replaced_files_are_read_again, fixture) {
    auto& st = state(ctx);
    auto first = st.policies.prepare(st, base(), {});
    post::error err;
    auto layers = first->stack(st, 0, err);
    BOOST_REQUIRE_MESSAGE(layers, err.reason);
    // Expiry is the behaviour under test: nothing signals it but the clock.
    std::this_thread::sleep_for(post::detail::policy_cache::max_age +
                                std::chrono::milliseconds(50));
    auto later = st.policies.prepare(st, base(), {});
    BOOST_TEST(later.get() != first.get());
    // A carrier still holding the old preparation (dormant, say) gets freshly built layers.
    auto rebuilt = first->stack(st, 0, err);
    BOOST_REQUIRE_MESSAGE(rebuilt, err.reason);
    BOOST_TEST(rebuilt.get() != layers.get());
    BOOST_TEST(first->stack(st, 0, err).get() == rebuilt.get());
}

BOOST_FIXTURE_TEST_CASE(carriers_from_one_policy_work_on_shared_layers, fixture) {
    // Two carriers at once and one after them, through the public API, on the cached layers.
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), base());
    l.on_carrier([](post::carrier c) {
        c.on_received([c](post::message m) mutable { c.send(std::move(m)); });
    });
    const auto port = post::test::port_of(l);
    auto remote = post::remote::from_url("127.0.0.1:" + std::to_string(port));
    int echoed = 0;
    std::vector<post::carrier> carriers;
    for (int i = 0; i < 3; ++i) {
        auto c = post::initiate(ctx, remote, base());
        c.on_ready([c]() mutable { c.send(post::message(std::string_view("ping"))); });
        c.on_received([&](post::message m) {
            BOOST_TEST(m.text() == "ping");
            ++echoed;
        });
        c.on_error([](const post::error& e) { BOOST_FAIL("carrier error: " << e.to_string()); });
        carriers.push_back(c);
    }
    post::test::run_until(io, [&] { return echoed == 3; });
    auto& st = state(ctx);
    BOOST_TEST(st.policies.prepare(st, base(), post::constraint_for(remote)).get() != nullptr);
}
