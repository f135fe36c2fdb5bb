// Small pieces every flow implementation needs, so each plugin does them the same way.
#pragma once

#include <post/sdk/layer.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace post::sdk {

/// The argument checks of a bottom layer's open(): no lower flow, and a remote with an address
/// and a port. Fills `err` (naming `layer`) and returns false when they fail.
inline bool check_bottom_open(const std::shared_ptr<flow>& lower, const open_params& p,
                              std::string_view layer, flow_error& err) {
    if (lower) {
        err = {std::make_error_code(std::errc::invalid_argument),
               std::string(layer) + " is a bottom layer and takes no lower flow"};
        return false;
    }
    if (p.remote.port == 0 || p.remote.address.is_unspecified()) {
        err = {std::make_error_code(std::errc::invalid_argument),
               std::string(layer) + ": cannot open a flow to " + p.remote.to_string() +
                   ": the remote needs an address and a port"};
        return false;
    }
    return true;
}

/// How a flow ends: when it ends with an error, every unit still queued fails with that error,
/// then on_closed. `wanted()` is checked before each event, since a handler may abort the flow.
template <class Wanted>
void report_end(flow_events& events, const flow_error& e, const std::vector<std::uint64_t>& unsent,
                Wanted wanted) noexcept {
    if (e)
        for (auto id : unsent)
            if (wanted()) events.on_send_error(id, e);
    if (wanted()) events.on_closed(e);
}

/// Sets a flag for the duration of a call from the layer above (send, close...) and restores
/// it after, so that nested calls keep it. A flow checks the flag before it reports an event
/// that would re-enter its caller (e.g. a failure found inside send()), and reports it from a
/// later turn of the executor instead.
class upper_call_scope {
public:
    explicit upper_call_scope(bool& flag) noexcept
        : flag_(flag)
        , outer_(flag) {
        flag_ = true;
    }
    ~upper_call_scope() { flag_ = outer_; }
    upper_call_scope(const upper_call_scope&) = delete;
    upper_call_scope& operator=(const upper_call_scope&) = delete;

private:
    bool& flag_;
    bool outer_;
};

} // namespace post::sdk
