#include "tls_session.hpp"

#include <ctime>

namespace post::plugins::tls {

std::string session_key(const std::string& name, const std::vector<std::string>& alpn) {
    std::string k = "tls/" + name + "/";
    for (std::size_t i = 0; i < alpn.size(); ++i)
        k += (i ? "," : "") + alpn[i];
    return k;
}

session_ptr load_session(sdk::session_store& store, const std::string& key, std::string& why) {
    auto blob = store.load(key);
    if (!blob || blob->empty()) {
        why = "no ticket";
        return nullptr;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(blob->data());
    session_ptr s(d2i_SSL_SESSION(nullptr, &p, static_cast<long>(blob->size())));
    if (!s) {
        why = "stored ticket unreadable";
        store.erase(key);
        return nullptr;
    }
    const auto now = static_cast<long>(std::time(nullptr));
    if (!SSL_SESSION_is_resumable(s.get()) ||
        SSL_SESSION_get_time(s.get()) + SSL_SESSION_get_timeout(s.get()) <= now) {
        why = "ticket expired";
        store.erase(key);
        return nullptr;
    }
    return s;
}

sdk::byte_buffer serialize_session(SSL_SESSION* s) {
    const int n = i2d_SSL_SESSION(s, nullptr);
    if (n <= 0) return {};
    sdk::byte_buffer out(static_cast<std::size_t>(n));
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    if (i2d_SSL_SESSION(s, &p) != n) return {};
    return out;
}

} // namespace post::plugins::tls
