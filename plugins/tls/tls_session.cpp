#include "tls_session.hpp"

#include <ctime>
#include <deque>
#include <map>
#include <mutex>

namespace post::plugins::tls {

namespace {

/// Decoding a stored session (d2i_SSL_SESSION) parses the server's certificate again, which
/// costs about as much as resumption saves; carriers to one server load the same blob over and
/// over, so the decoded sessions of the last few blobs are kept (shared, reference-counted).
class decoded_sessions {
public:
    session_ptr get(const sdk::byte_buffer& blob) {
        std::string key(reinterpret_cast<const char*>(blob.data()), blob.size());
        std::lock_guard lock(mutex_);
        if (auto it = by_blob_.find(key); it != by_blob_.end()) {
            SSL_SESSION_up_ref(it->second.get());
            return session_ptr(it->second.get());
        }
        const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
        session_ptr s(d2i_SSL_SESSION(nullptr, &p, static_cast<long>(blob.size())));
        if (!s) return nullptr;
        insert(std::move(key), s.get());
        return s;
    }

    /// A session we just serialized into `blob`: the next load of that blob needs no decoding.
    void remember(const sdk::byte_buffer& blob, SSL_SESSION* s) {
        std::string key(reinterpret_cast<const char*>(blob.data()), blob.size());
        std::lock_guard lock(mutex_);
        if (!by_blob_.count(key)) insert(std::move(key), s);
    }

private:
    void insert(std::string key, SSL_SESSION* s) {
        SSL_SESSION_up_ref(s);
        by_blob_.emplace(key, session_ptr(s));
        order_.push_back(std::move(key));
        if (order_.size() > capacity) {
            by_blob_.erase(order_.front());
            order_.pop_front();
        }
    }

    static constexpr std::size_t capacity = 64;
    std::mutex mutex_;
    std::map<std::string, session_ptr> by_blob_;
    std::deque<std::string> order_;
};

decoded_sessions& decoded() {
    static decoded_sessions cache;
    return cache;
}

} // namespace

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
    session_ptr s = decoded().get(*blob);
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
    decoded().remember(out, s);
    return out;
}

} // namespace post::plugins::tls
