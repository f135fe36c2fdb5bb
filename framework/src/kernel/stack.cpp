#include "stack.hpp"

namespace post::detail {

std::string join_stack(const std::vector<std::string>& names) {
    std::string out = "[";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i) out += ", ";
        out += names[i];
    }
    return out + "]";
}

std::string stack_instance::label() const {
    return join_stack(names);
}

std::shared_ptr<stack_instance> make_stack(context_state& ctx, const policy& p,
                                           const std::vector<std::string>& names, error& err) {
    auto s = std::make_shared<stack_instance>();
    s->names = names;
    for (const auto& name : names) {
        const layer_info* info = ctx.registry.find_layer(name);
        if (!info) {
            err = {make_error_code(errc::plugin_error),
                   "layer '" + name + "' is not provided by any loaded plugin"};
            return nullptr;
        }
        sdk::layer_context lc;
        lc.executor = ctx.executor;
        lc.log = &ctx;
        try {
            lc.opts = layer_options(p, *info);
        } catch (const policy_error& e) {
            err = {make_error_code(errc::policy_invalid), e.what()};
            return nullptr;
        }
        sdk::flow_error ferr;
        auto layer = ctx.registry.create_layer(name, lc, ferr);
        if (!layer) {
            err = {make_error_code(errc::plugin_error),
                   "layer '" + name + "' could not be created: " + ferr.reason};
            return nullptr;
        }
        s->layers.push_back(std::move(layer));
    }
    return s;
}

std::shared_ptr<sdk::flow> build_flows(context_state& ctx, const stack_instance& stack,
                                       const sdk::open_params& params,
                                       std::shared_ptr<sdk::flow> bottom, error& err,
                                       std::error_code* layer_code) {
    if (stack.layers.empty()) {
        err = {make_error_code(errc::no_candidate), "empty stack"};
        return nullptr;
    }
    std::size_t i = stack.layers.size();
    std::shared_ptr<sdk::flow> current = std::move(bottom);
    if (!current) {
        --i;
        sdk::flow_error ferr;
        current = stack.layers[i]->open(nullptr, params, ferr);
        if (!current) {
            err = {make_error_code(errc::plugin_error),
                   stack.names[i] + ": " + (ferr.reason.empty() ? "open failed" : ferr.reason)};
            if (layer_code) *layer_code = ferr.code;
            return nullptr;
        }
        current = ctx.registry.pin(stack.names[i], std::move(current));
    } else {
        --i; // the accepted flow is the bottom layer's
    }
    while (i-- > 0) {
        sdk::flow_error ferr;
        auto upper = stack.layers[i]->open(current, params, ferr);
        if (!upper) {
            err = {make_error_code(errc::plugin_error),
                   stack.names[i] + ": " + (ferr.reason.empty() ? "open failed" : ferr.reason)};
            if (layer_code) *layer_code = ferr.code;
            current->abort();
            return nullptr;
        }
        current = ctx.registry.pin(stack.names[i], std::move(upper));
    }
    return current;
}

} // namespace post::detail
