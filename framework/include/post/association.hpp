// Long-lived state between us and one remote, shared by every carrier to it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace post {

namespace sdk {
class session_object;
}

class association {
public:
    explicit association(std::string key)
        : key_(std::move(key)) {}

    const std::string& key() const noexcept { return key_; }

    /// What racing learned: the candidate (stack + remote address) that won last time.
    struct outcome {
        std::vector<std::string> stack;
        std::string address; ///< "addr:port"
        std::chrono::steady_clock::time_point when;
    };

    void record_win(outcome o);
    void record_failure(outcome o);
    std::optional<outcome> last_winner() const;
    /// Failures younger than `max_age`.
    std::vector<outcome> recent_failures(std::chrono::steady_clock::duration max_age) const;

    /// How many carriers were established through this association.
    std::uint64_t carriers_established() const;

    /// Opaque per-layer state (TLS tickets, QUIC tokens), keyed by layer name.
    void put_state(const std::string& layer, std::vector<std::uint8_t> blob);
    /// The bytes under `layer`; for an object (put_object), its serialised form, made on the
    /// first call and kept. Absent when nothing is stored, or an object's form is empty or
    /// over max_state_bytes.
    std::optional<std::vector<std::uint8_t>> state(const std::string& layer) const;
    /// Layer state as a live object (a TLS session), serialised only when state() or save()
    /// needs its bytes. Replaces whatever `layer` held.
    void put_object(const std::string& layer, std::shared_ptr<const sdk::session_object> object);
    /// The object put under `layer`, or null (nothing, or bytes: put_state, restore).
    std::shared_ptr<const sdk::session_object> object(const std::string& layer) const;
    void erase_state(const std::string& layer);
    /// The largest state kept per layer: nothing a peer sends may grow an association without
    /// bound, nor its file.
    static constexpr std::size_t max_state_bytes = 64 * 1024;
    /// Keys with state, for persistence and inspection.
    std::vector<std::string> state_keys() const;

    /// Called (on whichever thread changed it) after the layer state or the winner changed:
    /// the context uses it to save persisted associations.
    void set_observer(std::function<void()> changed);

    /// What survives a restart (see docs/associations.md): layer state and the last winner,
    /// with wall-clock times because steady_clock does not survive the process.
    struct saved {
        std::string key;
        std::optional<outcome> winner;
        std::chrono::system_clock::time_point winner_at{};
        std::map<std::string, std::vector<std::uint8_t>> state;
    };
    saved save() const;
    void restore(const saved& s);

private:
    std::string key_;
    mutable std::mutex mutex_;
    std::optional<outcome> winner_;
    std::vector<outcome> failures_;
    std::uint64_t established_ = 0;
    struct layer_state {
        std::shared_ptr<const sdk::session_object> object;
        /// What put_state stored, or the object's serialised form once something asked for it.
        mutable std::vector<std::uint8_t> bytes;
        mutable bool serialized = false; ///< an object's bytes are made (perhaps empty)
    };
    std::map<std::string, layer_state> state_;
    /// Serialise `s`'s object unless done; false when `s` has no bytes to give.
    static bool ready_bytes(const layer_state& s);
    std::function<void()> observer_;
    void notify();
};

} // namespace post
