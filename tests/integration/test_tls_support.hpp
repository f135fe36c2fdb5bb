// What the TLS tests share: the test PKI (one per process), an in-memory session store, option
// sets, [tls, tcp] clients and listeners, a child process with piped stdin/stdout (openssl
// s_server / s_client) read on the io_context, and a TCP relay that can damage records.
#pragma once

#include <utility>

#include "../support/test_pki.hpp"
#include "layer_test_support.hpp"
#include "tls_flow.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>

#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

const post::sdk::plugin_descriptor* post_plugin_tcp() noexcept;
const post::sdk::plugin_descriptor* post_plugin_tls() noexcept;

namespace post::test {

namespace asio = boost::asio;

inline test_pki& pki() {
    static test_pki p;
    return p;
}

/// Broken pipes to a child that exited must fail a write, not kill the test.
struct ignore_sigpipe {
    ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }
};

struct memory_store : sdk::session_store {
    mutable std::mutex m;
    std::map<std::string, sdk::byte_buffer, std::less<>> blobs;
    std::optional<sdk::byte_buffer> load(std::string_view key) const noexcept override {
        std::lock_guard l(m);
        auto it = blobs.find(key);
        if (it == blobs.end()) return std::nullopt;
        return it->second;
    }
    void store(std::string_view key, sdk::byte_buffer blob) noexcept override {
        std::lock_guard l(m);
        blobs[std::string(key)] = std::move(blob);
    }
    void erase(std::string_view key) noexcept override {
        std::lock_guard l(m);
        blobs.erase(std::string(key));
    }
};

inline sdk::options client_options() {
    sdk::options o;
    o.set("ca-file", pki().ca);
    return o;
}

inline sdk::options server_options(const cert_files& c = pki().server) {
    sdk::options o;
    o.set("cert-file", c.cert);
    o.set("key-file", c.key);
    return o;
}

inline std::unique_ptr<sdk::layer> make_tls(asio::io_context& io, sdk::options opts,
                                            sdk::log_sink* log = nullptr) {
    return make_layer(post_plugin_tls(), io, std::move(opts), log);
}

/// tls layer creation that is expected to fail; returns the reason.
inline std::string tls_create_error(asio::io_context& io, sdk::options opts) {
    sdk::layer_context ctx{io.get_executor(), std::move(opts), nullptr};
    sdk::flow_error err;
    auto l = post_plugin_tls()->layers[0].create(ctx, err);
    BOOST_TEST(!l);
    return err.reason;
}

/// A client [tls, tcp] flow to 127.0.0.1:port; started unless `start` is false.
inline std::shared_ptr<sdk::flow>
open_tls_client(sdk::layer& tcp, sdk::layer& tls, std::uint16_t port,
                const std::shared_ptr<flow_recorder>& events, std::string host = "localhost",
                std::shared_ptr<sdk::session_store> store = {}, bool start = true) {
    sdk::open_params p;
    p.side = sdk::role::client;
    p.remote = ep("127.0.0.1", port);
    p.host_name = std::move(host);
    p.session = std::move(store);
    sdk::flow_error err;
    auto lower = tcp.open(nullptr, p, err);
    BOOST_REQUIRE_MESSAGE(lower, err.reason);
    auto f = tls.open(lower, p, err);
    BOOST_REQUIRE_MESSAGE(f, err.reason);
    f->set_events(events);
    if (start) f->start();
    return f;
}

/// A tcp listener on 127.0.0.1 whose accepted flows are wrapped by `tls` as servers.
inline std::shared_ptr<sdk::acceptor> listen_tls(sdk::layer& tcp, sdk::layer& tls,
                                                 const std::shared_ptr<acceptor_recorder>& server) {
    server->wrap = [&tls](std::shared_ptr<sdk::flow> lower) {
        sdk::open_params p;
        p.side = sdk::role::server;
        p.remote = lower->info().remote;
        sdk::flow_error err;
        auto f = tls.open(std::move(lower), p, err);
        BOOST_REQUIRE_MESSAGE(f, err.reason);
        return f;
    };
    sdk::flow_error err;
    auto a = tcp.listen(ep("127.0.0.1"), err);
    BOOST_REQUIRE_MESSAGE(a, err.reason);
    a->set_events(server);
    a->start();
    return a;
}

inline const plugins::tls::handshake_summary& summary_of(const std::shared_ptr<sdk::flow>& f) {
    auto t = std::dynamic_pointer_cast<plugins::tls::tls_flow>(f);
    BOOST_REQUIRE(t);
    return t->summary();
}

/// Where a program is on PATH; empty when it is not.
inline std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= p.size()) {
        auto end = p.find(':', start);
        if (end == std::string::npos) end = p.size();
        const std::string candidate = p.substr(start, end - start) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        start = end + 1;
    }
    return {};
}

/// A child process whose stdin we write and whose stdout+stderr collect in output() as the
/// io_context runs. Killed (SIGTERM) and reaped on destruction.
class child_process {
public:
    child_process(asio::io_context& io, const std::vector<std::string>& argv)
        : state_(std::make_shared<pipe_state>(io)) {
        int in_pipe[2], out_pipe[2];
        BOOST_REQUIRE(::pipe(in_pipe) == 0 && ::pipe(out_pipe) == 0);
        pid_ = ::fork();
        BOOST_REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(in_pipe[0], 0);
            ::dup2(out_pipe[1], 1);
            ::dup2(out_pipe[1], 2);
            ::close(in_pipe[0]);
            ::close(in_pipe[1]);
            ::close(out_pipe[0]);
            ::close(out_pipe[1]);
            std::vector<char*> args;
            for (const auto& a : argv)
                args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(in_pipe[0]);
        ::close(out_pipe[1]);
        stdin_fd_ = in_pipe[1];
        state_->out.assign(out_pipe[0]);
        read(state_);
    }
    ~child_process() {
        if (stdin_fd_ >= 0) ::close(stdin_fd_);
        boost::system::error_code ignored;
        state_->out.close(ignored); // the pending read completes later, holding state_ alive
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    void write(const std::string& s) {
        BOOST_REQUIRE(::write(stdin_fd_, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
    }
    const std::string& output() const { return state_->output; }
    bool eof() const { return state_->eof; }
    bool contains(std::string_view s) const { return output().find(s) != std::string::npos; }
    std::size_t count(std::string_view s) const {
        std::size_t n = 0;
        for (auto pos = output().find(s); pos != std::string::npos; pos = output().find(s, pos + 1))
            ++n;
        return n;
    }

private:
    struct pipe_state {
        explicit pipe_state(asio::io_context& io)
            : out(io) {}
        asio::posix::stream_descriptor out;
        std::array<char, 4096> buf{};
        std::string output;
        bool eof = false;
    };

    static void read(std::shared_ptr<pipe_state> st) {
        auto* raw = st.get();
        raw->out.async_read_some(
            asio::buffer(raw->buf),
            [st = std::move(st)](const boost::system::error_code& ec, std::size_t n) mutable {
                if (ec) {
                    st->eof = true;
                    return;
                }
                st->output.append(st->buf.data(), n);
                read(std::move(st));
            });
    }

    std::shared_ptr<pipe_state> state_;
    pid_t pid_ = -1;
    int stdin_fd_ = -1;
};

/// `openssl s_server` on 127.0.0.1 with a kernel-chosen port, after its ACCEPT line.
struct s_server {
    std::unique_ptr<child_process> proc;
    std::uint16_t port = 0;

    s_server(asio::io_context& io, const std::string& openssl, std::vector<std::string> extra) {
        std::vector<std::string> argv{openssl, "s_server",        "-accept", "127.0.0.1:0",
                                      "-cert", pki().server.cert, "-key",    pki().server.key};
        argv.insert(argv.end(), extra.begin(), extra.end());
        proc = std::make_unique<child_process>(io, argv);
        const bool up = run_until(io, [&] {
            const auto& out = proc->output();
            return proc->eof() || out.find('\n', out.find("ACCEPT ")) != std::string::npos;
        });
        BOOST_REQUIRE_MESSAGE(up && proc->contains("ACCEPT "),
                              "s_server did not start: " << proc->output());
        const auto line = proc->output().substr(proc->output().find("ACCEPT "));
        port = static_cast<std::uint16_t>(
            std::stoi(line.substr(line.rfind(':', line.find('\n')) + 1)));
    }
};

/// A loopback TCP relay between a client and `target`, which can damage the next chunk the
/// server sends once armed: flip its last byte, or forward half of it and cut the connection.
struct tcp_relay {
    enum class damage { none, flip_last_byte, cut_mid_record };

    asio::io_context& io;
    asio::ip::tcp::acceptor acceptor;
    asio::ip::tcp::socket down; ///< Towards the client.
    asio::ip::tcp::socket up;   ///< Towards the server.
    std::uint16_t target;
    damage armed = damage::none;
    bool damaged = false;
    std::array<std::byte, 65536> c2s{}, s2c{};

    tcp_relay(asio::io_context& ctx, std::uint16_t target_port)
        : io(ctx)
        , acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0})
        , down(ctx)
        , up(ctx)
        , target(target_port) {
        acceptor.async_accept(down, [this](const boost::system::error_code& ec) {
            if (ec) return;
            up.connect({asio::ip::make_address("127.0.0.1"), target});
            pump(down, up, c2s, false);
            pump(up, down, s2c, true);
        });
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }

    void pump(asio::ip::tcp::socket& from, asio::ip::tcp::socket& to,
              std::array<std::byte, 65536>& buf, bool from_server) {
        from.async_read_some(asio::buffer(buf),
                             [this, &from, &to, &buf,
                              from_server](const boost::system::error_code& ec, std::size_t n) {
                                 boost::system::error_code ignored;
                                 if (ec) {
                                     to.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                                     return;
                                 }
                                 if (from_server && armed != damage::none && !damaged) {
                                     damaged = true;
                                     if (armed == damage::flip_last_byte) {
                                         buf[n - 1] ^= std::byte{0x55};
                                     } else {
                                         asio::write(to, asio::buffer(buf.data(), n / 2), ignored);
                                         down.close(ignored);
                                         up.close(ignored);
                                         return;
                                     }
                                 }
                                 asio::write(to, asio::buffer(buf.data(), n), ignored);
                                 pump(from, to, buf, from_server);
                             });
    }
};

} // namespace post::test
