#include "policy_cache.hpp"

#include "context_state.hpp"
#include "policy_equal.hpp"
#include "stack.hpp"

#include <algorithm>

namespace post::detail {

prepared_policy::prepared_policy(std::shared_ptr<const merged_policy> merged,
                                 std::vector<candidate_stack> candidates)
    : merged_(std::move(merged))
    , candidates_(std::move(candidates))
    , stacks_(candidates_.size()) {}

std::shared_ptr<stack_instance> prepared_policy::stack(context_state& ctx, std::size_t index,
                                                       error& err) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    auto& slot = stacks_.at(index);
    if (!slot.layers || now - slot.when >= policy_cache::max_age) {
        slot.layers = make_stack(ctx, merged_->effective, candidates_[index].layers, err);
        slot.when = now;
    }
    return slot.layers;
}

std::shared_ptr<prepared_policy> policy_cache::prepare(context_state& ctx,
                                                       const policy& application,
                                                       const stack_constraint& constraint) {
    const auto now = std::chrono::steady_clock::now();
    const std::size_t plugins = ctx.registry.plugins().size();
    {
        std::lock_guard lock(mutex_);
        std::erase_if(entries_, [&](const entry& e) {
            return now - e.made >= max_age || e.plugins != plugins;
        });
        auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) {
            return same_constraint(e.constraint, constraint) &&
                   same_policy(e.application, application);
        });
        if (it != entries_.end()) {
            if (it != entries_.begin()) std::rotate(entries_.begin(), it, std::next(it));
            return entries_.front().prepared;
        }
    }
    // Outside the lock: validation and ranking do not touch the cache.
    auto merged = std::make_shared<const merged_policy>(
        ctx.config.system_policy ? merge(*ctx.config.system_policy, application)
                                 : merged_policy{application, {}});
    auto catalog = ctx.registry.catalog();
    validate(*merged, catalog, constraint);
    auto selected = select_stacks(*merged, catalog, constraint);
    auto prepared = std::make_shared<prepared_policy>(merged, std::move(selected.candidates));
    std::lock_guard lock(mutex_);
    entries_.push_front({application, constraint, plugins, now, prepared});
    if (entries_.size() > capacity) entries_.pop_back();
    return prepared;
}

} // namespace post::detail
