// What carriers initiated with one policy share, and the per-context cache of it. Validating a
// policy, ranking its stacks and configuring their layers used to happen for every carrier
// (thousands of allocations, the tls layer's settings and certificate checks); carriers from
// an equal policy now reuse the result, as a listener's accepted carriers always did.
#pragma once

#include <post/error.hpp>
#include <post/policy.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace post::detail {

struct context_state;
struct stack_instance;

/// A validated policy, its ranked candidate stacks, and each candidate's configured layers
/// (built on first use, then shared by every carrier that races that candidate).
class prepared_policy {
public:
    prepared_policy(std::shared_ptr<const merged_policy> merged,
                    std::vector<candidate_stack> candidates);

    const std::shared_ptr<const merged_policy>& merged() const noexcept { return merged_; }
    const std::vector<candidate_stack>& candidates() const noexcept { return candidates_; }

    /// The layers of candidate `index`. A failure (a layer refusing its options, a missing
    /// certificate file) is not kept: the next carrier tries again. Layers built more than
    /// policy_cache::max_age ago are built again: a carrier that re-establishes much later
    /// (dormant, or fork() opening a connection) reads replaced certificate files too.
    std::shared_ptr<stack_instance> stack(context_state& ctx, std::size_t index, error& err);

private:
    std::shared_ptr<const merged_policy> merged_;
    std::vector<candidate_stack> candidates_;
    std::mutex mutex_;
    struct built {
        std::shared_ptr<stack_instance> layers;
        std::chrono::steady_clock::time_point when;
    };
    std::vector<built> stacks_;
};

class policy_cache {
public:
    /// Layers read files (certificates, CA bundles, keys) when they are configured: an entry
    /// is used for this long, so that a replaced file is picked up by carriers started later.
    static constexpr std::chrono::seconds max_age{1};
    static constexpr std::size_t capacity = 16;

    /// `application` merged with the system policy, validated and ranked under `constraint`,
    /// from the cache when an equal policy was prepared recently with the same plugins loaded.
    /// Throws policy_error as validate() and select_stacks() do (failures are not cached).
    std::shared_ptr<prepared_policy> prepare(context_state& ctx, const policy& application,
                                             const stack_constraint& constraint);

private:
    struct entry {
        policy application;
        stack_constraint constraint;
        std::size_t plugins = 0; ///< Loaded plugins then (plugins are only ever added).
        std::chrono::steady_clock::time_point made;
        std::shared_ptr<prepared_policy> prepared;
    };
    std::mutex mutex_;
    std::deque<entry> entries_; ///< Most recently used first.
};

} // namespace post::detail
