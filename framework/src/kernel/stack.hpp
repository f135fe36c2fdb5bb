// Turning a stack of layer names into configured layers, and layers into a chain of flows.
#pragma once

#include "context_state.hpp"

#include <post/error.hpp>
#include <post/policy.hpp>
#include <post/sdk/layer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace post::detail {

/// The configured layers of one stack (top first), shared by every flow chain built from it.
struct stack_instance {
    std::vector<std::string> names;
    std::vector<std::shared_ptr<sdk::layer>> layers;

    std::string label() const; ///< "[framer, tcp]"
};

/// Create the layers of `names` with their options from `p`. Fills `err` on failure.
std::shared_ptr<stack_instance> make_stack(context_state& ctx, const policy& p,
                                           const std::vector<std::string>& names, error& err);

/// Build the flow chain: open the bottom layer (or take `bottom`, an accepted flow), then wrap
/// each layer above it. Returns the top flow, not yet started.
/// On failure `err` says which layer refused and why; `layer_code`, when given, gets that
/// layer's own code (std::errc::invalid_argument: its options do not allow this at all).
std::shared_ptr<sdk::flow> build_flows(context_state& ctx, const stack_instance& stack,
                                       const sdk::open_params& params,
                                       std::shared_ptr<sdk::flow> bottom, error& err,
                                       std::error_code* layer_code = nullptr);

std::string join_stack(const std::vector<std::string>& names);

} // namespace post::detail
