#include "dtls_bio.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace post::plugins::tls {
namespace {

datagram_queue* queue_of(BIO* b) noexcept {
    return static_cast<datagram_queue*>(BIO_get_data(b));
}

int bio_write(BIO* b, const char* data, int len) {
    auto* q = queue_of(b);
    if (!q || len < 0) return -1;
    BIO_clear_retry_flags(b);
    try {
        const auto* p = reinterpret_cast<const std::byte*>(data);
        q->out.emplace_back(p, p + len);
    } catch (...) {
        return -1; // OpenSSL treats it as a failed send; the retransmission timer retries
    }
    return len;
}

int bio_read(BIO* b, char* out, int len) {
    auto* q = queue_of(b);
    BIO_clear_retry_flags(b);
    if (!q || len < 0) return -1;
    if (q->in.empty()) {
        BIO_set_retry_read(b); // "nothing yet", not end of file
        return -1;
    }
    // As recvfrom: one datagram per read, the tail cut when the buffer is smaller (OpenSSL's
    // DTLS read buffer holds the largest record, so that only loses oversized garbage).
    auto& d = q->in.front();
    const auto n = std::min(d.size(), static_cast<std::size_t>(len));
    std::memcpy(out, d.data(), n);
    q->in.pop_front();
    return static_cast<int>(n);
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
    auto* q = queue_of(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return q && !q->in.empty() ? static_cast<long>(q->in.front().size()) : 0;
    case BIO_CTRL_WPENDING:
        return 0; // written datagrams have left OpenSSL's hands
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return 0; // the MTU set on the SSL object already counts payload bytes only
    default:
        // MTU queries are off (SSL_OP_NO_QUERY_MTU: the flow sets it); peer addresses and
        // socket timeouts do not apply to a BIO without a socket.
        return 0;
    }
}

int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

int bio_destroy(BIO* b) {
    BIO_set_data(b, nullptr);
    return 1;
}

BIO_METHOD* method() noexcept {
    // One per process, never freed: BIOs may be alive until exit.
    static BIO_METHOD* m = nullptr;
    static std::once_flag once;
    try {
        std::call_once(once, [] {
            BIO_METHOD* made =
                BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "post datagram");
            if (!made) return;
            if (BIO_meth_set_write(made, &bio_write) != 1 ||
                BIO_meth_set_read(made, &bio_read) != 1 ||
                BIO_meth_set_ctrl(made, &bio_ctrl) != 1 ||
                BIO_meth_set_create(made, &bio_create) != 1 ||
                BIO_meth_set_destroy(made, &bio_destroy) != 1) {
                BIO_meth_free(made);
                return;
            }
            m = made;
        });
    } catch (...) {
        return nullptr;
    }
    return m;
}

} // namespace

BIO* make_datagram_bio(datagram_queue* q) noexcept {
    BIO_METHOD* m = method();
    if (!m) return nullptr;
    BIO* b = BIO_new(m);
    if (b) BIO_set_data(b, q);
    return b;
}

} // namespace post::plugins::tls
