#include "association_store.hpp"

#include <cstring>

namespace post::detail {

std::optional<sdk::byte_buffer> association_store::load(std::string_view key) const noexcept {
    try {
        auto blob = assoc_->state(std::string(key));
        if (!blob) return std::nullopt;
        sdk::byte_buffer out(blob->size());
        std::memcpy(out.data(), blob->data(), blob->size());
        return out;
    } catch (...) {
        return std::nullopt; // out of memory: as if nothing were stored
    }
}

void association_store::store(std::string_view key, sdk::byte_buffer blob) noexcept {
    if (blob.size() > max_blob) return;
    try {
        std::vector<std::uint8_t> bytes(blob.size());
        std::memcpy(bytes.data(), blob.data(), blob.size());
        assoc_->put_state(std::string(key), std::move(bytes));
    } catch (...) {
        // Out of memory: the next flow does a full handshake.
    }
}

void association_store::store_object(std::string_view key,
                                     std::shared_ptr<const sdk::session_object> object) noexcept {
    try {
        assoc_->put_object(std::string(key), std::move(object));
    } catch (...) {
        // Out of memory: the next flow does a full handshake.
    }
}

std::shared_ptr<const sdk::session_object>
association_store::load_object(std::string_view key) const noexcept {
    try {
        return assoc_->object(std::string(key));
    } catch (...) {
        return nullptr;
    }
}

void association_store::erase(std::string_view key) noexcept {
    try {
        assoc_->erase_state(std::string(key));
    } catch (...) {
    }
}

} // namespace post::detail
