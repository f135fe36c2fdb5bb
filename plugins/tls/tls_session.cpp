#include "tls_session.hpp"

#include <ctime>
#include <deque>
#include <map>
#include <mutex>

namespace post::plugins::tls {

namespace {

/// Decoding a stored session (d2i_SSL_SESSION) parses the server's certificate again, which
/// costs about as much as resumption saves. Sessions stored in this run come back as objects,
/// but a blob (read from an association file, or from a store that keeps only bytes) is loaded
/// by every carrier to its server, so the decoded sessions of the last few blobs are kept
/// (shared, reference-counted).
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
    session_ptr s;
    if (auto object = store.load_object(key)) {
        // Ours unless another layer wrote under a "tls/" key; then it reads as no ticket.
        if (const auto* ours = dynamic_cast<const session_object*>(object.get())) s = ours->get();
    } else if (auto blob = store.load(key); blob && !blob->empty()) {
        s = decoded().get(*blob);
        if (!s) {
            why = "stored ticket unreadable";
            store.erase(key);
            return nullptr;
        }
    }
    if (!s) {
        why = "no ticket";
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

sdk::byte_buffer session_object::serialize() const noexcept {
    try {
        const int n = i2d_SSL_SESSION(session_.get(), nullptr);
        if (n <= 0) return {};
        sdk::byte_buffer out(static_cast<std::size_t>(n));
        auto* p = reinterpret_cast<unsigned char*>(out.data());
        if (i2d_SSL_SESSION(session_.get(), &p) != n) return {};
        return out;
    } catch (...) {
        return {}; // out of memory: nothing is saved for this session
    }
}

} // namespace post::plugins::tls
