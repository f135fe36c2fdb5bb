#include <post/association.hpp>
#include <post/sdk/session_store.hpp>

#include <algorithm>

namespace post {

void association::record_win(outcome o) {
    {
        std::lock_guard lock(mutex_);
        // A win clears older failures of the same candidate: the path works again.
        std::erase_if(failures_, [&](const outcome& f) {
            return f.stack == o.stack && f.address == o.address;
        });
        winner_ = std::move(o);
        ++established_;
    }
    notify();
}

void association::record_failure(outcome o) {
    std::lock_guard lock(mutex_);
    failures_.push_back(std::move(o));
    constexpr std::size_t max_failures = 64; // bounded: a remote cannot grow this forever
    if (failures_.size() > max_failures) failures_.erase(failures_.begin());
}

std::optional<association::outcome> association::last_winner() const {
    std::lock_guard lock(mutex_);
    return winner_;
}

std::vector<association::outcome>
association::recent_failures(std::chrono::steady_clock::duration max_age) const {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    std::vector<outcome> out;
    for (const auto& f : failures_)
        if (now - f.when <= max_age) out.push_back(f);
    return out;
}

std::uint64_t association::carriers_established() const {
    std::lock_guard lock(mutex_);
    return established_;
}

namespace {

constexpr std::size_t max_keys = 32; // layers are few; a runaway plugin stays bounded

} // namespace

void association::put_state(const std::string& layer, std::vector<std::uint8_t> blob) {
    if (blob.size() > max_state_bytes) return;
    {
        std::lock_guard lock(mutex_);
        if (state_.size() >= max_keys && !state_.count(layer)) return;
        state_[layer] = layer_state{nullptr, std::move(blob), false};
    }
    notify();
}

void association::put_object(const std::string& layer,
                             std::shared_ptr<const sdk::session_object> object) {
    if (!object) return erase_state(layer);
    {
        std::lock_guard lock(mutex_);
        if (state_.size() >= max_keys && !state_.count(layer)) return;
        state_[layer] = layer_state{std::move(object), {}, false};
    }
    notify();
}

bool association::ready_bytes(const layer_state& s) {
    if (s.object && !s.serialized) {
        const auto form = s.object->serialize(); // must not call back into the association
        s.serialized = true;
        if (form.size() <= max_state_bytes) {
            const auto* p = reinterpret_cast<const std::uint8_t*>(form.data());
            s.bytes.assign(p, p + form.size());
        }
    }
    return !s.bytes.empty() || !s.object;
}

std::optional<std::vector<std::uint8_t>> association::state(const std::string& layer) const {
    // Under the lock, as in save(): an object's bytes are asked for rarely (a plugin that only
    // reads bytes, an inspection), and made once.
    std::lock_guard lock(mutex_);
    auto it = state_.find(layer);
    if (it == state_.end() || !ready_bytes(it->second)) return std::nullopt;
    return it->second.bytes;
}

std::shared_ptr<const sdk::session_object> association::object(const std::string& layer) const {
    std::lock_guard lock(mutex_);
    auto it = state_.find(layer);
    return it == state_.end() ? nullptr : it->second.object;
}

void association::erase_state(const std::string& layer) {
    {
        std::lock_guard lock(mutex_);
        if (state_.erase(layer) == 0) return;
    }
    notify();
}

void association::set_observer(std::function<void()> changed) {
    std::lock_guard lock(mutex_);
    observer_ = std::move(changed);
}

void association::notify() {
    std::function<void()> f;
    {
        std::lock_guard lock(mutex_);
        f = observer_;
    }
    if (f) f(); // outside the lock: the observer reads this association
}

association::saved association::save() const {
    std::lock_guard lock(mutex_);
    saved s;
    s.key = key_;
    s.winner = winner_;
    if (winner_)
        s.winner_at = std::chrono::system_clock::now() -
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(
                          std::chrono::steady_clock::now() - winner_->when);
    // Objects are serialised here, once each: only a saved association pays for it.
    for (const auto& [k, v] : state_)
        if (ready_bytes(v)) s.state[k] = v.bytes;
    return s;
}

void association::restore(const saved& s) {
    std::lock_guard lock(mutex_);
    if (s.winner) {
        winner_ = s.winner;
        winner_->when = std::chrono::steady_clock::now() -
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::system_clock::now() - s.winner_at);
    }
    for (const auto& [k, v] : s.state)
        state_[k] = layer_state{nullptr, v, false};
}

std::vector<std::string> association::state_keys() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> keys;
    for (const auto& [k, v] : state_)
        keys.push_back(k);
    return keys;
}

} // namespace post
