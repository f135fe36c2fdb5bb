#include "quic_cid_registry.hpp"

#include <map>
#include <mutex>

namespace post::plugins::quic::cid_registry {

namespace {

struct registry {
    std::mutex mutex;
    std::map<std::string, std::weak_ptr<quic_connection>> ids;
};

registry& instance() {
    static registry r; // function-local: initialised once, thread-safe
    return r;
}

std::string key(const std::uint8_t* cid, std::size_t len) {
    return std::string(reinterpret_cast<const char*>(cid), len);
}

} // namespace

bool add(const std::uint8_t* cid, std::size_t len, const std::weak_ptr<quic_connection>& owner) {
    auto& r = instance();
    std::lock_guard lock(r.mutex);
    auto [it, inserted] = r.ids.try_emplace(key(cid, len), owner);
    if (inserted) return true;
    if (!it->second.expired() && !it->second.owner_before(owner) && !owner.owner_before(it->second))
        return true; // already ours
    if (!it->second.expired()) return false;
    it->second = owner; // a dead connection's leftover
    return true;
}

void remove(const std::uint8_t* cid, std::size_t len, const quic_connection* owner) {
    auto& r = instance();
    std::lock_guard lock(r.mutex);
    auto it = r.ids.find(key(cid, len));
    if (it == r.ids.end()) return;
    auto held = it->second.lock();
    if (!held || held.get() == owner) r.ids.erase(it);
}

std::shared_ptr<quic_connection> find(const std::uint8_t* cid, std::size_t len) {
    auto& r = instance();
    std::lock_guard lock(r.mutex);
    auto it = r.ids.find(key(cid, len));
    if (it == r.ids.end()) return nullptr;
    auto held = it->second.lock();
    if (!held) r.ids.erase(it);
    return held;
}

std::size_t size() {
    auto& r = instance();
    std::lock_guard lock(r.mutex);
    return r.ids.size();
}

} // namespace post::plugins::quic::cid_registry
