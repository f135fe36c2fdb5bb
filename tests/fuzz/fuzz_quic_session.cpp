// libFuzzer target for the quic plugin's 0-RTT state (plugins/quic/quic_session.hpp): the
// server's NewSessionTicket, which comes from the network, and the blob kept in the association
// (and persisted in the association file). Byte 0 picks the parser:
//   even: parse_ticket on the rest;
//   odd:  bytes 1-8 are `now` (big-endian Unix seconds), the rest is the stored blob. A blob that
//         loads must encode to one that loads again to the same session; one that does not load
//         must have been erased from the store, with a reason.
//   Seed corpus: tests/fuzz/corpus/quic_session/
#include "quic_session.hpp"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

class map_store final : public post::sdk::session_store {
public:
    std::optional<post::sdk::byte_buffer> load(std::string_view key) const noexcept override {
        auto it = blobs.find(std::string(key));
        if (it == blobs.end()) return std::nullopt;
        return it->second;
    }
    void store(std::string_view key, post::sdk::byte_buffer blob) noexcept override {
        blobs[std::string(key)] = std::move(blob);
    }
    void erase(std::string_view key) noexcept override { blobs.erase(std::string(key)); }
    std::map<std::string, post::sdk::byte_buffer> blobs;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace q = post::plugins::quic;
    if (size < 1) return 0;
    if ((data[0] & 1) == 0) {
        if (auto t = q::parse_ticket(data + 1, size - 1); t && t->max_early_data)
            check(*t->max_early_data <= 0xffffffffu);
        return 0;
    }
    if (size < 9) return 0;
    std::uint64_t now = 0;
    for (int i = 1; i <= 8; ++i)
        now = (now << 8) | data[i];
    const auto t = static_cast<std::time_t>(now & 0x7fffffffffffull);
    const std::string key = q::session_key("example.test", {"post"});
    map_store store;
    store.store(key, post::sdk::byte_buffer(reinterpret_cast<const std::byte*>(data + 9),
                                            reinterpret_cast<const std::byte*>(data + size)));
    std::string why;
    auto s = q::load_session(store, key, t, why);
    if (!s) {
        check(!why.empty());
        check(store.blobs.empty() || why == "no ticket");
        return 0;
    }
    store.store(key, q::encode_session(*s));
    std::string again_why;
    auto again = q::load_session(store, key, t, again_why);
    check(again.has_value());
    check(again->early == s->early && again->stored_at == s->stored_at &&
          again->lifetime == s->lifetime && again->tp == s->tp && again->tls == s->tls);
    return 0;
}
