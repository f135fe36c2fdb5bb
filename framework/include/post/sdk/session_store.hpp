// State a layer keeps between flows to the same remote: TLS session tickets, QUIC tokens and
// transport parameters. The kernel backs it with the carrier's association, so the next flow to
// that remote (and, when the association is persisted, the next run of the application) finds
// what the previous one stored.
#pragma once

#include <post/sdk/flow.hpp>

#include <memory>
#include <optional>
#include <string_view>

namespace post::sdk {

/// ABI 4.4: state a layer keeps as a live object (a TLS session) and turns into bytes only when
/// someone needs them: the association being saved to its file, or load(). Serialising a TLS
/// session on every ticket cost more than the rest of a resumption's bookkeeping, and most
/// tickets are replaced before anyone saves them.
class session_object {
public:
    virtual ~session_object() = default;
    /// The bytes load() returns for this object, in this run or after a restart; empty when it
    /// cannot be serialised (then nothing is saved for it). Called on any thread, possibly
    /// while flows use the object; it must not call back into the store.
    virtual byte_buffer serialize() const noexcept = 0;
};

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
    /// ABI 4.4: replace what is stored under `key` with `object`, serialised only when needed
    /// (see session_object). A serialised form over the 64 KiB bound is never saved. The
    /// default, for stores that only keep bytes, serialises at once and calls store().
    virtual void store_object(std::string_view key,
                              std::shared_ptr<const session_object> object) noexcept {
        if (object) store(key, object->serialize());
    }
    /// ABI 4.4: the object stored under `key` by store_object in this run, or null: state
    /// stored as bytes, or read back from an association file, comes through load() only.
    virtual std::shared_ptr<const session_object> load_object(std::string_view) const noexcept {
        return nullptr;
    }
};

} // namespace post::sdk
