// `post bench tls`: our carrier over [framer, tls, tcp] against Boost.Asio's ssl::stream over TCP
// doing the same work, in one process, on loopback. See docs/benchmarks.md for the method.
//
// The shape is that of `post bench tcp`: one io_context (and thread) runs both servers, another
// runs both clients, and all timing is taken on the client thread. The servers follow the same
// rules for both contenders: a 64-byte message is echoed, a 1-byte message is answered with a
// 1-byte acknowledgement, any other message is dropped; a peer's close_notify is answered with
// ours. Both contenders are pinned to one TLS version (1.3 unless --tls-version says 1.2) and one
// cipher suite, use the same certificate and verify it the same way (chain against the test CA,
// then the IP address 127.0.0.1); the suite and version actually negotiated are checked, not
// assumed. The handshake loops have a third contender with no sockets: OpenSSL alone, on the
// main thread (bench_tls_memory.hpp), which shows what the cryptography itself allows.
//
// The certificates (a CA and a server certificate for 127.0.0.1; ECDSA P-256, or RSA 2048 with
// --key-type rsa) are made with the OpenSSL API at start and written to a private temporary
// folder removed at the end: our tls layer takes file names, and no key is checked in.
#include "bench_support.hpp"
#include "bench_tls_memory.hpp"
#include "common.hpp"
#include "json_events.hpp"

#include <fmt/core.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <span>
#include <thread>

namespace post_tool {
namespace {

using namespace bench;
using boost::asio::ip::tcp;
namespace ssl = boost::asio::ssl;

constexpr const char* server_ip = "127.0.0.1";

/// The version and suite both contenders are pinned to. A TLS 1.3 resumption still runs an
/// (EC)DHE exchange (psk_dhe_ke); a TLS 1.2 one runs none, so the two versions save different
/// shares of a full handshake.
struct tls_pin {
    std::string policy_version; ///< our tls layer's min-/max-version value: tls1.2, tls1.3
    int openssl_version = TLS1_3_VERSION;
    std::string negotiated_version; ///< as SSL_get_version names it: TLSv1.2, TLSv1.3
    std::string suite;              ///< as SSL_get_cipher_name names it

    static tls_pin for_options(const std::string& version, const std::string& key_type) {
        if (version == "tls1.2")
            return {version, TLS1_2_VERSION, "TLSv1.2",
                    key_type == "rsa" ? "ECDHE-RSA-AES128-GCM-SHA256"
                                      : "ECDHE-ECDSA-AES128-GCM-SHA256"};
        return {version, TLS1_3_VERSION, "TLSv1.3", "TLS_AES_128_GCM_SHA256"};
    }
    bool tls13() const { return openssl_version == TLS1_3_VERSION; }
};

// ---- the certificate ------------------------------------------------------------------------

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

[[noreturn]] void openssl_failed(const char* what) {
    throw std::runtime_error(
        fmt::format("post bench tls: cannot make the test certificate ({})", what));
}

/// "ec": ECDSA P-256; "rsa": RSA 2048.
pkey_ptr make_key(const std::string& type) {
    pkey_ptr k(type == "rsa" ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"), &EVP_PKEY_free);
    if (!k) openssl_failed(type == "rsa" ? "RSA key" : "EC key");
    return k;
}

void add_extension(X509* cert, X509V3_CTX& v3, int nid, const char* value) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (!e) openssl_failed(value);
    const int ok = X509_add_ext(cert, e, -1);
    X509_EXTENSION_free(e);
    if (!ok) openssl_failed(value);
}

/// A certificate for `key` named `cn`, signed by `issuer` (self-signed when null): a CA or a
/// server certificate for 127.0.0.1 and localhost.
x509_ptr make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, long serial) {
    x509_ptr c(X509_new(), &X509_free);
    if (!c) openssl_failed("X509_new");
    X509* x = c.get();
    const bool ca = issuer == nullptr;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(x, ca ? name : X509_get_subject_name(issuer));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ca ? x : issuer, x, nullptr, nullptr, 0);
    if (ca) {
        add_extension(x, v3, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(x, v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(x, v3, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(x, v3, NID_key_usage, "critical,digitalSignature");
        add_extension(x, v3, NID_ext_key_usage, "serverAuth");
        add_extension(x, v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    }
    if (X509_sign(x, ca ? key : issuer_key, EVP_sha256()) <= 0) openssl_failed("X509_sign");
    return c;
}

/// The CA and the server's certificate and key, as files in a private temporary folder that
/// is removed with this object.
class bench_pki {
public:
    explicit bench_pki(const std::string& key_type) {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/post-bench-tls-XXXXXX";
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error(fmt::format("post bench tls: cannot create a folder in {}: {}",
                                                 tmp && *tmp ? tmp : "/tmp", std::strerror(errno)));
        dir_ = pattern; // mkdtemp makes it mode 0700
        auto ca_key = make_key(key_type);
        auto ca = make_cert(ca_key.get(), "post bench tls CA", nullptr, nullptr, 1);
        auto key = make_key(key_type);
        auto cert = make_cert(key.get(), "localhost", ca.get(), ca_key.get(), 2);
        write(ca_file(), [&](std::FILE* f) { return PEM_write_X509(f, ca.get()); });
        write(cert_file(), [&](std::FILE* f) { return PEM_write_X509(f, cert.get()); });
        write(key_file(), [&](std::FILE* f) {
            return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        });
    }
    ~bench_pki() {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    bench_pki(const bench_pki&) = delete;
    bench_pki& operator=(const bench_pki&) = delete;

    std::string ca_file() const { return (dir_ / "ca.pem").string(); }
    std::string cert_file() const { return (dir_ / "server.pem").string(); }
    std::string key_file() const { return (dir_ / "server.key").string(); }

private:
    template <class F> void write(const std::string& path, F&& pem) {
        std::FILE* f = std::fopen(path.c_str(), "w");
        if (!f) throw std::runtime_error(fmt::format("post bench tls: cannot write {}", path));
        const bool ok = pem(f) == 1;
        if (std::fclose(f) != 0 || !ok)
            throw std::runtime_error(fmt::format("post bench tls: cannot write {}", path));
    }
    std::filesystem::path dir_;
};

// ---- the post side --------------------------------------------------------------------------

enum class tls_role { server, client };

post::policy bench_policy(const post::plugin_registry& reg, const bench_pki& pki,
                          const tls_pin& pin, tls_role role) {
    if (!reg.find_layer("tls"))
        throw std::runtime_error("post bench tls: the tls layer is not loaded (is libpost-tls.so "
                                 "in the plugin path? see `post plugins`)");
    const post::source_location here{"<post bench tls>", 0, 0};
    auto opt = [&](std::string v) { return post::raw_option{std::move(v), here}; };
    post::policy p = post::policy::defaults();
    p.name = "bench tls";
    p.stacks = {{{"framer", "tls", "tcp"}, here}};
    auto& tls = p.protocols["tls"];
    tls["min-version"] = opt(pin.policy_version);
    tls["max-version"] = opt(pin.policy_version);
    tls[pin.tls13() ? "ciphersuites" : "ciphers"] = opt(pin.suite);
    if (role == tls_role::server) {
        tls["cert-file"] = opt(pki.cert_file());
        tls["key-file"] = opt(pki.key_file());
    } else {
        tls["ca-file"] = opt(pki.ca_file());
    }
    // The baseline disables Nagle; give our tcp layer the same setting when it has one.
    if (const auto* tcp_layer = reg.find_layer("tcp"))
        for (const auto& o : tcp_layer->options)
            if (o.name && std::string_view(o.name) == "nodelay")
                p.protocols["tcp"]["nodelay"] = opt("true");
    return p;
}

/// The post server: lives on the server thread; every accepted carrier follows the rules above.
struct post_server {
    std::map<const void*, post::carrier> carriers;

    void accept(post::carrier c) {
        const void* key = c.impl().get();
        carriers[key] = c;
        std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
        c.on_received([weak](post::message m) {
            post::carrier c(weak.lock());
            if (!c) return;
            if (m.size() == ping_size)
                c.send(post::message(std::move(m.payload())));
            else if (m.size() == end_marker_size)
                c.send(post::message(std::string_view("k")));
        });
        // Forget the carrier later, not inside its own handler (that could destroy the handler
        // while it runs).
        auto forget = [this, key, ex = c.get_executor()] {
            boost::asio::post(ex, [this, key] { carriers.erase(key); });
        };
        c.on_closed(forget);
        c.on_error([forget, weak](const post::error&) {
            if (auto c = post::carrier(weak.lock())) c.abort();
            forget();
        });
    }
};

/// What the client context's tls layer logs: resumptions, and the last handshake's summary
/// ("handshake complete with ...: TLSv1.3, TLS_AES_128_GCM_SHA256, ...").
struct tls_log_watch {
    std::atomic<std::uint64_t> resumed{0};
    std::mutex mutex;
    std::string last_summary;

    void attach(post::context& ctx) {
        ctx.on_trace([this](const post::trace_event& e) {
            if (e.what != post::trace_event::kind::layer_log || e.stack.empty() ||
                e.stack.front() != "tls")
                return;
            if (e.detail == "debug: resumed session") {
                resumed.fetch_add(1, std::memory_order_relaxed);
            } else if (e.detail.starts_with("debug: handshake complete")) {
                std::lock_guard lock(mutex);
                last_summary = e.detail;
            }
        });
    }
    std::string summary() {
        std::lock_guard lock(mutex);
        return last_summary;
    }
};

/// The workload's `policy` has session tickets on (it resumes when the association has one);
/// throughput and round trips start their clocks once the handshake is done.
struct post_client : post_workload {
    tls_log_watch& watch;

    // (c) sequential connections: initiate, handshake, graceful close (close_notify both ways),
    // closed; repeat. With `resume` the carriers share the association, so each one offers the
    // ticket the previous one received (the server's tickets arrive before its close_notify,
    // which the close waits for); `warmup` connections run first, untimed, and close the same
    // way (the first one fetches a ticket). Without `resume` the association's state is
    // forgotten before every connection: a first connection's full handshake, in which the
    // server still issues tickets and the client stores them, as in Asio's full loop (tickets
    // on, none offered).
    void handshakes(std::chrono::duration<double> duration, bool resume, int warmup,
                    std::shared_ptr<once_promise<handshake_rate>> result) {
        struct state : std::enable_shared_from_this<state> {
            post_client* self;
            bool resume = false;
            post::carrier current;
            std::shared_ptr<once_promise<handshake_rate>> result;
            std::chrono::duration<double> duration;
            clock_type::time_point start, deadline;
            int warmup = 0;
            std::uint64_t done = 0, resumed_before = 0;

            void next() {
                if (warmup == 0 && done == 0 && start == clock_type::time_point{}) {
                    start = clock_type::now();
                    deadline = start + std::chrono::duration_cast<clock_type::duration>(duration);
                    resumed_before = self->watch.resumed.load();
                }
                if (warmup == 0 && clock_type::now() >= deadline) {
                    current = {};
                    handshake_rate r;
                    r.per_s = done / seconds_since(start);
                    r.count = done;
                    r.resumed = self->watch.resumed.load() - resumed_before;
                    return result->set(r);
                }
                if (!resume) {
                    auto a = self->ctx.association_for(self->remote);
                    for (const auto& key : a->state_keys())
                        a->erase_state(key);
                }
                current = post::initiate(self->ctx, self->remote, self->policy);
                // The handlers hold the state and the state holds the carrier: the cycle ends
                // when the next iteration (or the end) replaces `current`.
                auto st = shared_from_this();
                current.on_closed([st] {
                    if (st->warmup > 0)
                        --st->warmup;
                    else
                        ++st->done;
                    // The next connection starts here, as Asio's loop starts its next one in
                    // the completion handler. Replacing `current` drops only our handle: the
                    // carrier running this handler keeps itself alive until it returns.
                    st->next();
                });
                current.on_error([st](const post::error& e) {
                    st->result->fail(e.to_string());
                    boost::asio::post(st->current.get_executor(), [st] { st->current = {}; });
                });
                current.async_wait_ready([st](boost::system::error_code ec) {
                    if (ec) return st->result->fail(error_reason(ec, st->current));
                    st->current.close();
                });
            }
        };
        auto st = std::make_shared<state>();
        st->self = this;
        st->resume = resume;
        st->result = std::move(result);
        st->duration = duration;
        st->warmup = warmup;
        st->next();
    }
};

// ---- the Asio baseline ----------------------------------------------------------------------

using tls_stream = ssl::stream<tcp::socket>;

void pin(SSL_CTX* ctx, const tls_pin& p) {
    SSL_CTX_set_min_proto_version(ctx, p.openssl_version);
    SSL_CTX_set_max_proto_version(ctx, p.openssl_version);
    if ((p.tls13() ? SSL_CTX_set_ciphersuites(ctx, p.suite.c_str())
                   : SSL_CTX_set_cipher_list(ctx, p.suite.c_str())) != 1)
        throw std::runtime_error(fmt::format("post bench tls: OpenSSL refuses {}", p.suite));
    // As our tls layer does.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
}

void make_server_context(ssl::context& c, const bench_pki& pki, const tls_pin& p) {
    pin(c.native_handle(), p);
    c.use_certificate_chain_file(pki.cert_file());
    c.use_private_key_file(pki.key_file(), ssl::context::pem);
    static const unsigned char sid_context[] = "post-bench-tls";
    SSL_CTX_set_session_id_context(c.native_handle(), sid_context, sizeof(sid_context) - 1);
}

void make_client_context(ssl::context& c, const bench_pki& pki, const tls_pin& p) {
    pin(c.native_handle(), p);
    c.load_verify_file(pki.ca_file());
    c.set_verify_mode(ssl::verify_peer);
}

/// A client stream that verifies the server as our tls layer does for an IP-address remote.
std::shared_ptr<tls_stream> client_stream(boost::asio::io_context& io, ssl::context& ctx) {
    auto s = std::make_shared<tls_stream>(io, ctx);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->native_handle()), server_ip);
    return s;
}

std::string negotiated(SSL* ssl) {
    const char* cipher = SSL_get_cipher_name(ssl);
    return fmt::format("{}, {}", SSL_get_version(ssl), cipher ? cipher : "?");
}

class asio_session : public std::enable_shared_from_this<asio_session> {
public:
    asio_session(tcp::socket s, ssl::context& ctx)
        : stream_(std::move(s), ctx) {}
    void start() {
        stream_.async_handshake(ssl::stream_base::server,
                                [self = shared_from_this()](boost::system::error_code ec) {
                                    if (ec) return self->close();
                                    self->read();
                                });
    }

private:
    void read() {
        stream_.async_read_some(in_.prepare(), [self = shared_from_this()](
                                                   boost::system::error_code ec, std::size_t n) {
            if (ec) {
                // eof: the client sent close_notify, which we answer (after any pending write).
                self->peer_closed_ = ec == boost::asio::error::eof;
                self->reading_done_ = true;
                return self->maybe_finish();
            }
            self->in_.commit(n);
            std::span<const std::uint8_t> f;
            while (self->in_.next(f)) {
                if (f.size() == ping_size) {
                    std::uint8_t h[4];
                    put_header(h, f.size());
                    self->out_.insert(self->out_.end(), h, h + 4);
                    self->out_.insert(self->out_.end(), f.begin(), f.end());
                } else if (f.size() == end_marker_size) {
                    const std::uint8_t ack[5] = {0, 0, 0, 1, 'k'};
                    self->out_.insert(self->out_.end(), ack, ack + 5);
                }
            }
            self->flush();
            self->read();
        });
    }
    void flush() {
        if (writing_active_ || out_.empty()) return;
        std::swap(out_, writing_);
        out_.clear();
        writing_active_ = true;
        boost::asio::async_write(
            stream_, boost::asio::buffer(writing_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                self->writing_active_ = false;
                self->writing_.clear();
                if (ec) self->reading_done_ = true, self->peer_closed_ = false;
                if (!ec) self->flush();
                self->maybe_finish();
            });
    }
    void maybe_finish() {
        if (!reading_done_ || writing_active_ || finished_) return;
        finished_ = true;
        if (!peer_closed_) return close();
        stream_.async_shutdown(
            [self = shared_from_this()](boost::system::error_code) { self->close(); });
    }
    void close() {
        boost::system::error_code ignored;
        stream_.lowest_layer().close(ignored);
    }

    tls_stream stream_;
    frame_reader in_;
    std::vector<std::uint8_t> out_, writing_;
    bool writing_active_ = false, reading_done_ = false, peer_closed_ = false, finished_ = false;
};

class asio_server {
public:
    asio_server(boost::asio::io_context& io, const bench_pki& pki, const tls_pin& p)
        : acceptor_(io, tcp::endpoint(boost::asio::ip::make_address(server_ip), 0)) {
        make_server_context(ctx_, pki, p);
        acceptor_.listen(4096);
    }
    tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
    void start() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return; // closed at the end of the run
            s.set_option(tcp::no_delay(true));
            std::make_shared<asio_session>(std::move(s), ctx_)->start();
            start();
        });
    }
    void close() { acceptor_.close(); }

private:
    ssl::context ctx_{ssl::context::tls_server};
    tcp::acceptor acceptor_;
};

struct asio_client {
    boost::asio::io_context& io;
    tcp::endpoint server;
    ssl::context& ctx;
    std::string& summary; ///< The last handshake's version and suite (client thread only).

    /// Connect and handshake, then `then(stream)`; failures go to `fail`.
    template <class Then, class Fail>
    void connect(std::shared_ptr<tls_stream> s, Then then, Fail fail) {
        s->lowest_layer().async_connect(
            server, [this, s, then, fail](boost::system::error_code ec) mutable {
                if (ec) return fail("connect: " + ec.message());
                s->lowest_layer().set_option(tcp::no_delay(true));
                s->async_handshake(ssl::stream_base::client,
                                   [this, s, then, fail](boost::system::error_code ec) {
                                       if (ec) return fail("handshake: " + ec.message());
                                       summary = negotiated(s->native_handle());
                                       then(s);
                                   });
            });
    }

    void throughput(std::chrono::duration<double> duration,
                    std::shared_ptr<once_promise<double>> result) {
        struct state : std::enable_shared_from_this<state> {
            std::shared_ptr<tls_stream> s;
            std::shared_ptr<once_promise<double>> result;
            std::vector<std::uint8_t> frame = make_frame(bulk_size, 0x5a);
            std::vector<std::uint8_t> marker = make_frame(end_marker_size, 'e');
            frame_reader in;
            clock_type::time_point start, deadline;
            std::uint64_t sent = 0;

            void write() {
                if (clock_type::now() >= deadline) return end();
                boost::asio::async_write(
                    *s, boost::asio::buffer(frame),
                    [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return st->result->fail(ec.message());
                        ++st->sent;
                        st->write();
                    });
            }
            void end() {
                boost::asio::async_write(
                    *s, boost::asio::buffer(marker),
                    [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return st->result->fail(ec.message());
                        st->wait_ack();
                    });
            }
            void wait_ack() {
                s->async_read_some(in.prepare(), [st = shared_from_this()](
                                                     boost::system::error_code ec, std::size_t n) {
                    if (ec) return st->result->fail(ec.message());
                    st->in.commit(n);
                    std::span<const std::uint8_t> f;
                    if (!st->in.next(f)) return st->wait_ack();
                    double secs = seconds_since(st->start);
                    st->result->set(st->sent * bulk_size * 8 / secs / 1e9);
                    st->s->async_shutdown([st](boost::system::error_code) {
                        boost::system::error_code ignored;
                        st->s->lowest_layer().close(ignored);
                    });
                });
            }
        };
        auto st = std::make_shared<state>();
        st->result = std::move(result);
        st->s = client_stream(io, ctx);
        connect(
            st->s,
            [st, duration](std::shared_ptr<tls_stream>) {
                st->start = clock_type::now();
                st->deadline =
                    st->start + std::chrono::duration_cast<clock_type::duration>(duration);
                st->write();
            },
            [st](const std::string& why) { st->result->fail(why); });
    }

    void round_trips(int count, std::shared_ptr<once_promise<latency>> result) {
        struct state : std::enable_shared_from_this<state> {
            std::shared_ptr<tls_stream> s;
            std::shared_ptr<once_promise<latency>> result;
            std::vector<std::uint8_t> frame = make_frame(ping_size, 1);
            frame_reader in;
            std::vector<double> us;
            int remaining = 0, measured = 0;
            clock_type::time_point t0;

            void ping() {
                t0 = clock_type::now();
                boost::asio::async_write(
                    *s, boost::asio::buffer(frame),
                    [st = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return st->result->fail(ec.message());
                    });
                read();
            }
            void read() {
                s->async_read_some(in.prepare(), [st = shared_from_this()](
                                                     boost::system::error_code ec, std::size_t n) {
                    if (ec) return st->result->fail(ec.message());
                    st->in.commit(n);
                    std::span<const std::uint8_t> f;
                    if (!st->in.next(f)) return st->read();
                    double us = seconds_since(st->t0) * 1e6;
                    if (st->remaining-- <= st->measured) st->us.push_back(us);
                    if (st->remaining > 0) return st->ping();
                    st->result->set(percentiles(std::move(st->us)));
                    st->s->async_shutdown([st](boost::system::error_code) {
                        boost::system::error_code ignored;
                        st->s->lowest_layer().close(ignored);
                    });
                });
            }
        };
        auto st = std::make_shared<state>();
        st->result = std::move(result);
        st->measured = count;
        st->remaining = count + warmup_round_trips;
        st->us.reserve(count);
        st->s = client_stream(io, ctx);
        connect(
            st->s, [st](std::shared_ptr<tls_stream>) { st->ping(); },
            [st](const std::string& why) { st->result->fail(why); });
    }

    // Sequential connections: connect, handshake, close_notify both ways (async_shutdown reads
    // until the server's, and the session tickets before it), close. With `resume`, each offers
    // the session the previous one ended with (SSL_get1_session: the last ticket it received).
    // Warm-ups are the same connections, untimed.
    void handshakes(std::chrono::duration<double> duration, bool resume, int warmup,
                    std::shared_ptr<once_promise<handshake_rate>> result) {
        struct state : std::enable_shared_from_this<state> {
            asio_client* self;
            std::shared_ptr<once_promise<handshake_rate>> result;
            std::chrono::duration<double> duration;
            clock_type::time_point start, deadline;
            bool resume = false;
            int warmup = 0;
            std::uint64_t done = 0, resumed = 0;
            std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session{nullptr,
                                                                              &SSL_SESSION_free};

            void next() {
                if (warmup == 0 && done == 0 && start == clock_type::time_point{}) {
                    start = clock_type::now();
                    deadline = start + std::chrono::duration_cast<clock_type::duration>(duration);
                }
                if (warmup == 0 && clock_type::now() >= deadline) {
                    handshake_rate r;
                    r.per_s = done / seconds_since(start);
                    r.count = done;
                    r.resumed = resumed;
                    return result->set(r);
                }
                auto s = client_stream(self->io, self->ctx);
                if (resume && session) SSL_set_session(s->native_handle(), session.get());
                self->connect(
                    s, [st = shared_from_this()](std::shared_ptr<tls_stream> s) { st->finish(s); },
                    [st = shared_from_this()](const std::string& why) { st->result->fail(why); });
            }

            void finish(std::shared_ptr<tls_stream> s) {
                s->async_shutdown([st = shared_from_this(), s](boost::system::error_code) {
                    SSL* ssl = s->native_handle();
                    if (st->warmup > 0) {
                        --st->warmup;
                    } else {
                        ++st->done;
                        if (SSL_session_reused(ssl) == 1) ++st->resumed;
                    }
                    // The newest ticket, else the session just resumed (reusable: the
                    // server's tickets are stateless, as for our layer, which keeps offering
                    // its last stored ticket).
                    if (st->resume)
                        if (SSL_SESSION* latest = SSL_get1_session(ssl)) {
                            if (SSL_SESSION_is_resumable(latest))
                                st->session.reset(latest);
                            else
                                SSL_SESSION_free(latest);
                        }
                    boost::system::error_code ignored;
                    s->lowest_layer().close(ignored);
                    st->next();
                });
            }
        };
        auto st = std::make_shared<state>();
        st->self = this;
        st->result = std::move(result);
        st->duration = duration;
        st->resume = resume;
        st->warmup = warmup;
        st->next();
    }
};

// ---- the run --------------------------------------------------------------------------------

struct bench_options {
    double seconds = 2;
    bool json = false;
    /// The certificates' key type: ec (ECDSA P-256) or rsa (RSA 2048).
    std::string key_type = "ec";
    /// The TLS version both contenders are pinned to: tls1.3 (default) or tls1.2.
    std::string tls_version = "tls1.3";
    /// Phases to run (throughput, rtt, handshakes); empty = all. Skipped ones print as n/a.
    std::vector<std::string> only;
    bool runs(std::string_view phase) const {
        return only.empty() || std::find(only.begin(), only.end(), phase) != only.end();
    }
    /// Handshake loops to run (post-full, post-resumed, asio-full, asio-resumed, memory-full,
    /// memory-resumed); empty = all. One loop alone is for profiling one side; skipped ones
    /// print as n/a.
    std::vector<std::string> loops;
    /// Rounds of the handshake loops, in turn; the rates and ratios reported are medians
    /// over rounds, each ratio taken within one round (so a host that slows down for a while
    /// slows both sides of it).
    int rounds = 1;
    /// Each client against the other contender's server (handshake loops only): tells whether a
    /// difference between the contenders comes from their clients or from their servers.
    bool cross = false;
    bool runs_loop(std::string_view loop) const {
        return loops.empty() || std::find(loops.begin(), loops.end(), loop) != loops.end();
    }
};

/// Both contenders must have negotiated what the benchmark pins, or the comparison is void.
void check_negotiated(const std::string& who, const std::string& summary, const tls_pin& p) {
    if (summary.empty()) return; // no handshake in the phases that ran
    if (summary.find(p.negotiated_version) == std::string::npos ||
        summary.find(p.suite) == std::string::npos)
        throw std::runtime_error(fmt::format("post bench tls: {} negotiated '{}', not {} with {}",
                                             who, summary, p.negotiated_version, p.suite));
}

/// One round of the handshake loops, in the order they run.
enum handshake_loop : std::size_t {
    post_full,
    asio_full,
    memory_full,
    post_resumed,
    asio_resumed,
    memory_resumed,
    loop_count
};
using handshake_round = std::array<handshake_rate, loop_count>;

/// The median rate of loop `i` over the rounds (count and resumed from that round).
handshake_rate median_rate(const std::vector<handshake_round>& rounds, std::size_t i) {
    handshake_rate m;
    std::vector<double> rates, client_cpu, server_cpu;
    for (const auto& r : rounds) {
        rates.push_back(r[i].per_s);
        client_cpu.push_back(r[i].client_cpu_us);
        server_cpu.push_back(r[i].server_cpu_us);
        m.count += r[i].count;
        m.resumed += r[i].resumed; // the resumed share is over every round
    }
    m.per_s = median(std::move(rates));
    m.client_cpu_us = median(std::move(client_cpu));
    m.server_cpu_us = median(std::move(server_cpu));
    return m;
}

/// The median over rounds of loop `a`'s rate divided by loop `b`'s in the same round.
double median_ratio(const std::vector<handshake_round>& rounds, std::size_t a, std::size_t b) {
    std::vector<double> v;
    for (const auto& r : rounds)
        v.push_back(r[a].per_s / r[b].per_s); // NaN when a loop did not run
    return median(std::move(v));
}

int run_bench(const global_options& g, const bench_options& o) {
    // The two servers frame messages differently, so only handshakes (no messages) can cross.
    if (o.cross && o.only != std::vector<std::string>{"handshakes"})
        throw std::runtime_error("post bench tls: --cross needs --only handshakes (the servers' "
                                 "framings differ, so only handshakes can cross)");
    const std::chrono::duration<double> bulk_time(o.seconds);
    const std::chrono::duration<double> handshake_time(
        o.only == std::vector<std::string>{"handshakes"} ? o.seconds : std::min(o.seconds, 1.5));
    const int round_trip_count =
        static_cast<int>(std::clamp(std::lround(o.seconds * 10000), 1000L, 20000L));
    // Connections before each timed handshake loop: the first fetches a ticket (resumed loop),
    // the rest warm up both sides.
    constexpr int handshake_warmup = 20;

    const bench_pki pki(o.key_type);
    const auto pinned = tls_pin::for_options(o.tls_version, o.key_type);
    io_thread server_thread, client_thread;
    post::context server_ctx(server_thread.io, context_options_for(g));
    post::context client_ctx(client_thread.io, context_options_for(g));
    const double plugin_load_ms = server_ctx.plugins().load_time().count() / 1000.0;
    if (g.verbose) trace_to_stderr(client_ctx);
    tls_log_watch watch;
    watch.attach(client_ctx);

    auto server_policy = bench_policy(server_ctx.plugins(), pki, pinned, tls_role::server);
    auto loopback = post::local{boost::asio::ip::make_address(server_ip), 0, {}};
    auto need_tls = post::constraint_for_scheme("tls");
    need_tls.origin = "post bench tls";
    post::listener listener = post::listen(server_ctx, loopback, server_policy, need_tls);
    post_server post_srv;
    listener.on_carrier([&post_srv](post::carrier c) { post_srv.accept(std::move(c)); });
    auto endpoints = listener.local_endpoints();
    if (endpoints.empty()) throw std::runtime_error("the post listener has no local endpoint");
    asio_server asio_srv(server_thread.io, pki, pinned);
    asio_srv.start();
    const post::sdk::endpoint post_server_at = endpoints.front();
    const tcp::endpoint asio_server_at = asio_srv.endpoint();

    post_client post_cli{
        {client_ctx,
         post::remote::from_endpoint(
             o.cross ? post::sdk::endpoint{asio_server_at.address(), asio_server_at.port()}
                     : post_server_at),
         bench_policy(client_ctx.plugins(), pki, pinned, tls_role::client)},
        watch};
    ssl::context asio_client_ctx(ssl::context::tls_client);
    make_client_context(asio_client_ctx, pki, pinned);
    std::string asio_summary;
    asio_client asio_cli{client_thread.io,
                         o.cross ? tcp::endpoint(post_server_at.address, post_server_at.port)
                                 : asio_server_at,
                         asio_client_ctx, asio_summary};
    // OpenSSL alone: contexts of its own, configured as Asio's are, used on this thread only.
    ssl::context memory_server_ctx(ssl::context::tls_server),
        memory_client_ctx(ssl::context::tls_client);
    make_server_context(memory_server_ctx, pki, pinned);
    make_client_context(memory_client_ctx, pki, pinned);

    // Whatever happens below (a phase that times out throws), the threads stop before the
    // objects their handlers use are destroyed.
    struct stopper {
        io_thread &a, &b;
        ~stopper() {
            b.stop();
            a.stop();
        }
    } stop_threads{server_thread, client_thread};
    server_thread.start();
    client_thread.start();

    if (!o.json)
        err_line(fmt::format("post bench tls: {:.1f} s bulk per side, {} round trips, {:.1f} s of "
                             "handshakes per kind; [framer, tls, tcp] vs Asio ssl::stream, {} {}, "
                             "{} certificates",
                             o.seconds, round_trip_count, handshake_time.count(),
                             pinned.negotiated_version, pinned.suite,
                             o.key_type == "rsa" ? "RSA 2048" : "ECDSA P-256"));
    if (!o.json && o.cross)
        err_line("post bench tls: crossed: the post column is our client against Asio's server, "
                 "the asio column Asio's client against our server");

    pair_result tput, p50, p99;
    handshake_rate full_post, full_asio, resumed_post, resumed_asio;
    std::vector<handshake_round> handshake_rounds;
    handshake_rate full_memory, resumed_memory;
    auto& cio = client_thread.io;
    if (o.runs("throughput")) {
        tput.post = run_phase<double>(cio, bulk_time, "post throughput",
                                      [&](auto p) { post_cli.throughput(bulk_time, p); });
        tput.asio = run_phase<double>(cio, bulk_time, "asio throughput",
                                      [&](auto p) { asio_cli.throughput(bulk_time, p); });
    }
    if (o.runs("rtt")) {
        const auto rtt_budget = std::chrono::duration<double>(round_trip_count * 1e-3);
        auto lp = run_phase<latency>(cio, rtt_budget, "post round trips",
                                     [&](auto p) { post_cli.round_trips(round_trip_count, p); });
        auto la = run_phase<latency>(cio, rtt_budget, "asio round trips",
                                     [&](auto p) { asio_cli.round_trips(round_trip_count, p); });
        p50 = {lp.p50_us, la.p50_us};
        p99 = {lp.p99_us, la.p99_us};
    }
    if (o.runs("handshakes")) {
        const auto budget = handshake_time + std::chrono::duration<double>(2);
        auto run = [&](const char* loop, const char* name, auto& client, bool resume) {
            if (!o.runs_loop(loop)) return handshake_rate{};
            const double client_cpu = client_thread.cpu_seconds();
            const double server_cpu = server_thread.cpu_seconds();
            auto r = run_phase<handshake_rate>(cio, budget, name, [&, resume](auto p) {
                client.handshakes(handshake_time, resume, handshake_warmup, p);
            });
            // Each thread's CPU over the phase, per connection: which side pays for a rate, and
            // steadier than the rate itself when the host's load moves.
            const double connections = double(r.count + handshake_warmup);
            r.client_cpu_us = (client_thread.cpu_seconds() - client_cpu) * 1e6 / connections;
            r.server_cpu_us = (server_thread.cpu_seconds() - server_cpu) * 1e6 / connections;
            return r;
        };
        // On this (the main) thread, while the client and server threads are idle.
        auto in_memory = [&](const char* loop, bool resume) {
            if (!o.runs_loop(loop)) return handshake_rate{};
            return memory_handshakes(memory_client_ctx.native_handle(),
                                     memory_server_ctx.native_handle(), server_ip, handshake_time,
                                     resume, handshake_warmup);
        };
        for (int round = 0; round < o.rounds; ++round) {
            handshake_round r;
            r[post_full] = run("post-full", "post full handshakes", post_cli, false);
            r[asio_full] = run("asio-full", "asio full handshakes", asio_cli, false);
            r[memory_full] = in_memory("memory-full", false);
            r[post_resumed] = run("post-resumed", "post resumed handshakes", post_cli, true);
            r[asio_resumed] = run("asio-resumed", "asio resumed handshakes", asio_cli, true);
            r[memory_resumed] = in_memory("memory-resumed", true);
            // A full loop that resumed would measure the wrong thing: refuse to report it.
            for (const auto* full : {&r[post_full], &r[asio_full], &r[memory_full]})
                if (full->resumed > 0)
                    throw std::runtime_error(fmt::format(
                        "post bench tls: {} of {} handshakes of a full-handshake loop resumed",
                        full->resumed, full->count));
            handshake_rounds.push_back(r);
        }
        full_post = median_rate(handshake_rounds, post_full);
        full_asio = median_rate(handshake_rounds, asio_full);
        full_memory = median_rate(handshake_rounds, memory_full);
        resumed_post = median_rate(handshake_rounds, post_resumed);
        resumed_asio = median_rate(handshake_rounds, asio_resumed);
        resumed_memory = median_rate(handshake_rounds, memory_resumed);
    }

    // Close the servers on their own thread, then stop both threads before the contexts go.
    std::promise<void> closed;
    boost::asio::post(server_thread.io, [&] {
        listener.close();
        asio_srv.close();
        closed.set_value();
    });
    closed.get_future().wait_for(5s);
    client_thread.stop();
    server_thread.stop();

    const std::string post_summary = watch.summary();
    check_negotiated("our tls layer", post_summary, pinned);
    check_negotiated("Asio's ssl::stream", asio_summary, pinned);

    const pair_result full{full_post.per_s, full_asio.per_s};
    const pair_result resumed{resumed_post.per_s, resumed_asio.per_s};
    // Each ratio within a round, then the median over rounds (one round: the plain ratios).
    const double full_ratio = median_ratio(handshake_rounds, post_full, asio_full);
    const double resumed_ratio = median_ratio(handshake_rounds, post_resumed, asio_resumed);
    const pair_result speedup{median_ratio(handshake_rounds, post_resumed, post_full),
                              median_ratio(handshake_rounds, asio_resumed, asio_full)};
    const double memory_speedup = median_ratio(handshake_rounds, memory_resumed, memory_full);
    const pair_result resumed_share{resumed_post.resumed_fraction(),
                                    resumed_asio.resumed_fraction()};
    constexpr double throughput_target = 0.9, speedup_target = 2.0;

    auto pair_json = [](const pair_result& r) {
        return nlohmann::json{{"post", r.post}, {"asio", r.asio}, {"ratio", r.ratio()}};
    };
    auto cpu_json = [](const handshake_rate& r) {
        return nlohmann::json{{"client", r.client_cpu_us}, {"server", r.server_cpu_us}};
    };
    if (o.json) {
        nlohmann::json j{
            {"throughput_gbps", pair_json(tput)},
            {"rtt_p50_us", pair_json(p50)},
            {"rtt_p99_us", pair_json(p99)},
            {"full_handshakes_per_s",
             {{"post", full.post}, {"asio", full.asio}, {"ratio", full_ratio}}},
            {"resumed_handshakes_per_s",
             {{"post", resumed.post}, {"asio", resumed.asio}, {"ratio", resumed_ratio}}},
            {"handshake_rounds", o.rounds},
            {"resumed_over_full", {{"post", speedup.post}, {"asio", speedup.asio}}},
            {"resumed_fraction", {{"post", resumed_share.post}, {"asio", resumed_share.asio}}},
            {"cpu_us_per_handshake",
             {{"full", {{"post", cpu_json(full_post)}, {"asio", cpu_json(full_asio)}}},
              {"resumed", {{"post", cpu_json(resumed_post)}, {"asio", cpu_json(resumed_asio)}}}}},
            {"openssl_in_memory",
             {{"full_handshakes_per_s", full_memory.per_s},
              {"resumed_handshakes_per_s", resumed_memory.per_s},
              {"resumed_over_full", memory_speedup},
              {"resumed_fraction", resumed_memory.resumed_fraction()}}},
            {"plugin_load_ms", plugin_load_ms},
            {"seconds", o.seconds},
            {"round_trips", round_trip_count},
            {"stack", {"framer", "tls", "tcp"}},
            {"tls_version", pinned.negotiated_version},
            {"cipher_suite", pinned.suite},
            {"key_type", o.key_type},
            {"cross", o.cross},
            {"targets",
             {{"throughput_ratio_min", throughput_target},
              {"post_resumed_over_full_min", speedup_target}}}};
        out_line(to_line(j));
        return 0;
    }
    out_line(
        fmt::format("{:<24}{:>12}{:>12}{:>9}   {}", "metric", "post", "asio", "ratio", "target"));
    if (o.runs("throughput"))
        out_line(fmt::format("{:<24}{:>12.2f}{:>12.2f}{:>9.2f}   >= 0.90 {}", "throughput (Gbit/s)",
                             tput.post, tput.asio, tput.ratio(),
                             verdict(tput.ratio() >= throughput_target)));
    if (o.runs("rtt")) {
        out_line(fmt::format("{:<24}{:>12.1f}{:>12.1f}{:>9.2f}", "rtt p50 (us)", p50.post, p50.asio,
                             p50.ratio()));
        out_line(fmt::format("{:<24}{:>12.1f}{:>12.1f}{:>9.2f}", "rtt p99 (us)", p99.post, p99.asio,
                             p99.ratio()));
    }
    if (o.runs("handshakes")) {
        if (o.rounds > 1)
            out_line(fmt::format("handshakes: medians of {} rounds; each ratio taken within a "
                                 "round",
                                 o.rounds));
        // A loop left out with --loops has no figure: n/a, not nan.
        auto cell = [](double v, int precision) {
            return std::isnan(v) ? std::string("n/a") : fmt::format("{:.{}f}", v, precision);
        };
        out_line(fmt::format("{:<24}{:>12}{:>12}{:>9}", "full handshakes/s", cell(full.post, 0),
                             cell(full.asio, 0), cell(full_ratio, 2)));
        out_line(fmt::format("{:<24}{:>12}{:>12}{:>9}", "resumed handshakes/s",
                             cell(resumed.post, 0), cell(resumed.asio, 0), cell(resumed_ratio, 2)));
        out_line(fmt::format("{:<24}{:>12}{:>12}{:>9}   post >= 2.00 {}", "resumed / full",
                             cell(speedup.post, 2), cell(speedup.asio, 2), "",
                             std::isnan(speedup.post) ? std::string("(not measured)")
                                                      : verdict(speedup.post >= speedup_target)));
        auto cpu = [&](const handshake_rate& r) {
            return cell(r.client_cpu_us, 0) + " / " + cell(r.server_cpu_us, 0);
        };
        out_line(fmt::format("CPU per handshake, client / server thread (us): full: post {}, "
                             "asio {}; resumed: post {}, asio {}",
                             cpu(full_post), cpu(full_asio), cpu(resumed_post), cpu(resumed_asio)));
        auto per_s = [&](double rate) {
            return std::isnan(rate) ? std::string("n/a") : cell(rate, 0) + "/s";
        };
        auto percent = [&](double share) {
            return std::isnan(share) ? std::string("n/a") : cell(100 * share, 0) + "%";
        };
        out_line(fmt::format("sessions resumed in the resumed loop: post {}, asio {}",
                             percent(resumed_share.post), percent(resumed_share.asio)));
        if (o.runs_loop("memory-full") || o.runs_loop("memory-resumed"))
            out_line(fmt::format("OpenSSL alone (memory BIOs, one thread, no sockets): full {}, "
                                 "resumed {} ({} resumed), resumed / full {}",
                                 per_s(full_memory.per_s), per_s(resumed_memory.per_s),
                                 percent(resumed_memory.resumed_fraction()),
                                 cell(memory_speedup, 2)));
    }
    // "debug: handshake complete with 127.0.0.1:PORT: TLSv1.3, SUITE, ALPN none, ..."
    const auto with = post_summary.find(": ", post_summary.find(" with "));
    out_line(fmt::format("negotiated: post {}; asio {}",
                         with == std::string::npos ? "n/a" : post_summary.substr(with + 2),
                         asio_summary.empty() ? "n/a" : asio_summary));
    out_line(fmt::format("plugin load time: {:.2f} ms", plugin_load_ms));
    return 0;
}

} // namespace

void add_bench_tls(CLI::App& bench, const global_options& g, runner& run) {
    auto o = std::make_shared<bench_options>();
    auto* t = bench.add_subcommand(
        "tls", "post over [framer, tls, tcp] versus Boost.Asio ssl::stream (one TLS version, one "
               "suite)");
    t->fallthrough();
    t->add_flag("--json", o->json, "Print one JSON object");
    t->add_option("--seconds", o->seconds,
                  "Duration of the bulk run per side (default 2); each handshake loop runs "
                  "min(seconds, 1.5)")
        ->check(CLI::Range(0.05, 60.0));
    t->add_option("--key-type", o->key_type,
                  "Key of the generated certificates: ec (ECDSA P-256, default) or rsa (RSA 2048)")
        ->check(CLI::IsMember({"ec", "rsa"}));
    t->add_option("--tls-version", o->tls_version,
                  "TLS version both sides are pinned to: tls1.3 (default) or tls1.2, whose "
                  "resumption skips the key exchange that a TLS 1.3 one still runs")
        ->check(CLI::IsMember({"tls1.2", "tls1.3"}));
    t->add_option("--only", o->only,
                  "Run only these phases (throughput, rtt, handshakes; default: all)")
        ->delimiter(',')
        ->check(CLI::IsMember({"throughput", "rtt", "handshakes"}));
    t->add_option("--loops", o->loops,
                  "Handshake loops to run (post-full, post-resumed, asio-full, asio-resumed, "
                  "memory-full, memory-resumed; default: all): one alone profiles one side")
        ->delimiter(',')
        ->check(CLI::IsMember({"post-full", "post-resumed", "asio-full", "asio-resumed",
                               "memory-full", "memory-resumed"}));
    t->add_flag("--cross", o->cross,
                "With --only handshakes: our client against Asio's server and Asio's client "
                "against ours, to tell whether a difference comes from the clients or the "
                "servers");
    t->add_option("--rounds", o->rounds,
                  "Run the handshake loops this many times in turn and report medians, each "
                  "ratio taken within a round (default 1): steadier on a noisy host")
        ->check(CLI::Range(1, 50));
    t->callback([&g, &run, o] { run = [&g, o] { return run_bench(g, *o); }; });
}

} // namespace post_tool
