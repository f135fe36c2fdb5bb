// Whether two policies (and stack constraints) would select and configure the same stacks, so
// that what was derived from one can be reused for the other (policy_cache).
#pragma once

#include <post/policy.hpp>

namespace post::detail {

/// Every member compared, locations included (they appear in error messages). The
/// comparisons destructure each struct, so a member added to a policy struct fails to compile
/// here until it is compared too: a cache keyed on an incomplete comparison would hand out
/// stacks configured for another policy.
bool same_policy(const policy& a, const policy& b);
bool same_constraint(const stack_constraint& a, const stack_constraint& b);

} // namespace post::detail
