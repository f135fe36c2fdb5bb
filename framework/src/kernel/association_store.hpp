// The sdk::session_store a layer sees on an active open: the carrier's association.
#pragma once

#include <post/association.hpp>
#include <post/sdk/session_store.hpp>

#include <memory>

namespace post::detail {

class association_store final : public sdk::session_store {
public:
    explicit association_store(std::shared_ptr<association> assoc)
        : assoc_(std::move(assoc)) {}

    /// Larger blobs are refused: nothing a peer sends may grow an association without bound.
    static constexpr std::size_t max_blob = association::max_state_bytes;

    std::optional<sdk::byte_buffer> load(std::string_view key) const noexcept override;
    void store(std::string_view key, sdk::byte_buffer blob) noexcept override;
    void erase(std::string_view key) noexcept override;
    void store_object(std::string_view key,
                      std::shared_ptr<const sdk::session_object> object) noexcept override;
    std::shared_ptr<const sdk::session_object>
    load_object(std::string_view key) const noexcept override;

private:
    std::shared_ptr<association> assoc_;
};

} // namespace post::detail
