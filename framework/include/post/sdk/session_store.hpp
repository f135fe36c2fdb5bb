// State a layer keeps between flows to the same remote: TLS session tickets, QUIC tokens and
// transport parameters. The kernel backs it with the carrier's association, so the next flow to
// that remote (and, when the association is persisted, the next run of the application) finds
// what the previous one stored.
#pragma once

#include <post/sdk/flow.hpp>

#include <optional>
#include <string_view>

namespace post::sdk {

/// Thread-safe: flows on different executors may share one association.
class session_store {
public:
    virtual ~session_store() = default;
    /// What was stored last under `key` (by convention the layer name, or "layer/detail").
    virtual std::optional<byte_buffer> load(std::string_view key) const noexcept = 0;
    /// Replace the blob under `key`. Bounded by the kernel: a blob over 64 KiB is ignored.
    virtual void store(std::string_view key, byte_buffer blob) noexcept = 0;
    /// Forget `key` (a ticket the server refused, state that turned out stale).
    virtual void erase(std::string_view key) noexcept = 0;
};

} // namespace post::sdk
