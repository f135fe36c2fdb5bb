// Long-lived state between us and one remote, shared by every carrier to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace post {

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
    std::optional<std::vector<std::uint8_t>> state(const std::string& layer) const;
    void erase_state(const std::string& layer);
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
    std::map<std::string, std::vector<std::uint8_t>> state_;
    std::function<void()> observer_;
    void notify();
};

} // namespace post
