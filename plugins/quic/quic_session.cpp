#include "quic_session.hpp"

#include <algorithm>

namespace post::plugins::quic {

namespace {

constexpr std::uint8_t blob_version = 1;
/// RFC 8446 4.6.1: a ticket lives at most seven days, whatever it claims.
constexpr std::uint32_t max_ticket_lifetime = 604800;
constexpr std::uint16_t early_data_extension = 42;

void put(sdk::byte_buffer& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i)
        out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
}

/// Big-endian reader that turns every overrun into a failure, never a read past the end.
struct reader {
    const std::uint8_t* p;
    std::size_t n;
    bool ok = true;
    std::uint64_t get(int bytes) {
        if (!ok || n < static_cast<std::size_t>(bytes)) {
            ok = false;
            return 0;
        }
        std::uint64_t v = 0;
        for (int i = 0; i < bytes; ++i)
            v = (v << 8) | p[i];
        p += bytes;
        n -= static_cast<std::size_t>(bytes);
        return v;
    }
    const std::uint8_t* skip(std::size_t len) {
        if (!ok || n < len) {
            ok = false;
            return nullptr;
        }
        const auto* at = p;
        p += len;
        n -= len;
        return at;
    }
};

std::optional<ticket_terms> parse_body(const std::uint8_t* p, std::size_t n) {
    reader r{p, n};
    ticket_terms t;
    t.lifetime = static_cast<std::uint32_t>(r.get(4));
    r.get(4);         // ticket_age_add
    r.skip(r.get(1)); // nonce
    const auto ticket_len = r.get(2);
    if (ticket_len == 0) return std::nullopt;
    r.skip(ticket_len);
    const auto ext_len = r.get(2);
    if (!r.ok || r.n != ext_len) return std::nullopt;
    reader e{r.p, static_cast<std::size_t>(ext_len)};
    while (e.ok && e.n > 0) {
        const auto type = e.get(2);
        const auto len = e.get(2);
        const auto* body = e.skip(len);
        if (!e.ok) return std::nullopt;
        if (type == early_data_extension) {
            if (len != 4) return std::nullopt;
            reader b{body, 4};
            t.max_early_data = static_cast<std::uint32_t>(b.get(4));
        }
    }
    if (!e.ok) return std::nullopt;
    return t;
}

} // namespace

std::string session_key(const std::string& name, const std::vector<std::string>& alpn) {
    std::string k = "quic/" + name + "/";
    for (std::size_t i = 0; i < alpn.size(); ++i)
        k += (i ? "," : "") + alpn[i];
    return k;
}

std::optional<ticket_terms> parse_ticket(const std::uint8_t* p, std::size_t n) {
    if (!p) return std::nullopt;
    // GnuTLS hands the hook the message body; accept a full handshake message too (type 4).
    if (auto t = parse_body(p, n)) return t;
    if (n >= 4 && p[0] == 4 && ((std::size_t{p[1]} << 16) | (p[2] << 8) | p[3]) == n - 4)
        return parse_body(p + 4, n - 4);
    return std::nullopt;
}

sdk::byte_buffer encode_session(const stored_session& s) {
    sdk::byte_buffer out;
    out.reserve(2 + 1 + 1 + 8 + 4 + 2 + s.tp.size() + 4 + s.tls.size());
    out.push_back(std::byte{'P'});
    out.push_back(std::byte{'Q'});
    put(out, blob_version, 1);
    put(out, s.early ? 1 : 0, 1);
    put(out, s.stored_at, 8);
    put(out, s.lifetime, 4);
    put(out, s.tp.size(), 2);
    for (auto b : s.tp)
        out.push_back(static_cast<std::byte>(b));
    put(out, s.tls.size(), 4);
    for (auto b : s.tls)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

std::optional<stored_session> load_session(sdk::session_store& store, const std::string& key,
                                           std::time_t now, std::string& why) {
    auto blob = store.load(key);
    if (!blob || blob->empty()) {
        why = "no ticket";
        return std::nullopt;
    }
    auto unreadable = [&] {
        why = "stored ticket unreadable";
        store.erase(key);
        return std::nullopt;
    };
    reader r{reinterpret_cast<const std::uint8_t*>(blob->data()), blob->size()};
    if (r.get(1) != 'P' || r.get(1) != 'Q' || r.get(1) != blob_version) return unreadable();
    stored_session s;
    const auto flags = r.get(1);
    s.early = (flags & 1) != 0;
    s.stored_at = r.get(8);
    s.lifetime = static_cast<std::uint32_t>(r.get(4));
    const auto tp_len = r.get(2);
    const auto* tp = r.skip(tp_len);
    const auto tls_len = r.get(4);
    const auto* tls = r.skip(tls_len);
    if (!r.ok || r.n != 0 || tls_len == 0 || tp_len == 0) return unreadable();
    s.tp.assign(tp, tp + tp_len);
    s.tls.assign(tls, tls + tls_len);
    // The server's parameters as its EncryptedExtensions carried them (original_dcid and
    // initial_scid included, which that decoding requires).
    if (ngtcp2_decode_transport_params(&s.params, NGTCP2_TRANSPORT_PARAMS_TYPE_ENCRYPTED_EXTENSIONS,
                                       s.tp.data(), s.tp.size()) != 0)
        return unreadable();
    const auto t = static_cast<std::uint64_t>(std::max<std::time_t>(now, 0));
    if (s.stored_at > t + 60 || t >= s.stored_at + std::min(s.lifetime, max_ticket_lifetime)) {
        why = "ticket expired";
        store.erase(key);
        return std::nullopt;
    }
    return s;
}

} // namespace post::plugins::quic
