// post::stream and post::iostream over the real TCP plugin on loopback: against a plain Asio
// TCP socket, against socat, stream to stream, the morph refusal for message stacks, and the
// blocking iostream (from a second thread; refused on the executor's thread).
#define BOOST_TEST_MODULE stream
#include "../support/child_process.hpp"
#include "loopback_support.hpp"

#include <post/iostream.hpp>
#include <post/stream.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>

#include <future>
#include <optional>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace post::test;

namespace {

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return s;
}

std::string url_for(std::uint16_t port) {
    return "tcp://127.0.0.1:" + std::to_string(port);
}

/// A plain Asio acceptor on 127.0.0.1 (no Post Sockets on that side).
struct plain_server {
    explicit plain_server(asio::io_context& io)
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , socket(io) {}
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    tcp::acceptor acceptor;
    tcp::socket socket;
};

std::uint16_t port_from_socat_line(const std::string& line) {
    auto colon = line.rfind(':');
    BOOST_REQUIRE_MESSAGE(colon != std::string::npos, "no port in '" << line << "'");
    return static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
}

bool have_socat() {
    return ::access("/usr/bin/socat", X_OK) == 0;
}

post::local loopback_v4() {
    post::local l;
    l.address = asio::ip::make_address("127.0.0.1");
    return l;
}

post::stack_constraint stream_only() {
    post::stack_constraint c;
    c.stream_top = true;
    return c;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(asio_peer, loopback_fixture)

BOOST_AUTO_TEST_CASE(both_directions_with_asio_composed_operations) {
    plain_server server(io);
    const std::string big = pattern(300 * 1024);
    std::string server_in, client_in, rest;
    bool server_got_eof = false, client_done = false;
    boost::system::error_code final_ec;
    std::size_t written = 0;

    // Server: greet, read everything until the client closes, answer "bye" and close.
    server.acceptor.async_accept(server.socket, [&](boost::system::error_code ec) {
        BOOST_REQUIRE(!ec);
        asio::async_write(server.socket, asio::buffer(std::string_view("hello\nworld\n")),
                          [](boost::system::error_code, std::size_t) {});
        asio::async_read(server.socket, asio::dynamic_buffer(server_in),
                         [&](boost::system::error_code ec, std::size_t) {
                             server_got_eof = ec == asio::error::eof;
                             asio::async_write(server.socket, asio::buffer(std::string_view("bye")),
                                               [&](boost::system::error_code, std::size_t) {
                                                   server.socket.close();
                                               });
                         });
    });

    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(server.port())));
    BOOST_REQUIRE(s);
    asio::async_read_until(
        s, asio::dynamic_buffer(client_in), '\n', [&](boost::system::error_code ec, std::size_t n) {
            BOOST_TEST(!ec);
            BOOST_TEST(client_in.substr(0, n) == "hello\n");
            client_in.erase(0, n);
            asio::async_write(s, asio::buffer(big),
                              [&](boost::system::error_code ec, std::size_t n) {
                                  BOOST_TEST(!ec);
                                  written = n;
                                  s.close(); // FIN after every byte
                                  asio::async_read(s, asio::dynamic_buffer(rest),
                                                   [&](boost::system::error_code ec, std::size_t) {
                                                       final_ec = ec;
                                                       client_done = true;
                                                   });
                              });
        });
    run_until(io, [&] { return client_done; });
    BOOST_TEST(s.carrier().stack() == std::vector<std::string>{"tcp"});
    BOOST_TEST(written == big.size());
    BOOST_TEST(server_got_eof);
    BOOST_TEST(server_in.size() == big.size());
    BOOST_TEST((server_in == big));
    BOOST_TEST(final_ec == asio::error::eof, final_ec.message());
    BOOST_TEST(client_in + rest == "world\nbye");
}

BOOST_AUTO_TEST_CASE(bytes_received_before_a_read_are_kept_then_eof) {
    plain_server server(io);
    const std::string payload = pattern(200 * 1024);
    server.acceptor.async_accept(server.socket, [&](boost::system::error_code ec) {
        BOOST_REQUIRE(!ec);
        asio::async_write(server.socket, asio::buffer(payload),
                          [&](boost::system::error_code, std::size_t) {
                              server.socket.shutdown(tcp::socket::shutdown_send);
                          });
    });
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(server.port())));
    // No read is pending while the bytes arrive and the peer closes.
    run_until(io, [&] { return s.carrier().state() == post::carrier_state::closed; });
    BOOST_TEST(!s.carrier().last_error().has_value());

    std::string got;
    boost::system::error_code read_ec;
    bool done = false;
    asio::async_read(s, asio::dynamic_buffer(got), [&](boost::system::error_code ec, std::size_t) {
        read_ec = ec;
        done = true;
    });
    run_until(io, [&] { return done; });
    BOOST_TEST(read_ec == asio::error::eof, read_ec.message());
    BOOST_TEST((got == payload));

    // Writing to an ended stream fails (and says so) instead of hanging.
    boost::system::error_code write_ec;
    done = false;
    asio::async_write(s, asio::buffer(std::string_view("late")),
                      [&](boost::system::error_code ec, std::size_t) {
                          write_ec = ec;
                          done = true;
                      });
    run_until(io, [&] { return done; });
    BOOST_TEST(write_ec == post::make_error_code(post::errc::closed));
}

BOOST_AUTO_TEST_CASE(refused_connection_is_an_error_not_eof) {
    std::uint16_t port;
    {
        plain_server closed(io); // bound, then closed: nothing listens there
        port = closed.port();
    }
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(port)));
    std::array<char, 16> buf;
    boost::system::error_code ec;
    bool done = false;
    s.async_read_some(asio::buffer(buf), [&](boost::system::error_code e, std::size_t n) {
        ec = e;
        BOOST_TEST(n == 0u);
        done = true;
    });
    run_until(io, [&] { return done; });
    BOOST_TEST(ec == post::make_error_code(post::errc::establishment_failed), ec.message());
}

BOOST_AUTO_TEST_CASE(empty_buffers_complete_at_once) {
    plain_server server(io);
    server.acceptor.async_accept(server.socket, [](boost::system::error_code) {});
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(server.port())));
    int done = 0;
    s.async_read_some(asio::mutable_buffer(), [&](boost::system::error_code ec, std::size_t n) {
        BOOST_TEST(!ec);
        BOOST_TEST(n == 0u);
        ++done;
    });
    s.async_write_some(asio::const_buffer(), [&](boost::system::error_code ec, std::size_t n) {
        BOOST_TEST(!ec);
        BOOST_TEST(n == 0u);
        ++done;
    });
    run_until(io, [&] { return done == 2; });
    s.abort();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(morphing, loopback_fixture)

BOOST_AUTO_TEST_CASE(stream_listener_and_initiator_talk) {
    auto l = post::listen(ctx, loopback_v4(), post::policy::defaults(), stream_only());
    BOOST_TEST(l.stacks() == std::vector<std::vector<std::string>>{{"tcp"}});
    post::stream server;
    std::string server_line, client_line;
    bool done = false;
    l.async_accept([&](boost::system::error_code ec, post::carrier c) {
        BOOST_REQUIRE(!ec);
        server = post::morph(c); // ready and over [tcp]: allowed
        asio::async_read_until(server, asio::dynamic_buffer(server_line), '\n',
                               [&](boost::system::error_code ec, std::size_t) {
                                   BOOST_TEST(!ec);
                                   asio::async_write(server, asio::buffer(server_line),
                                                     [](boost::system::error_code, std::size_t) {});
                               });
    });
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(port_of(l))));
    // Morphing again while it establishes gives the same stream.
    post::error e;
    auto again = post::morph(s.carrier(), e);
    BOOST_TEST(!e, e.to_string());
    BOOST_TEST(again.carrier().impl() == s.carrier().impl());

    asio::async_write(s, asio::buffer(std::string_view("round trip\n")),
                      [](boost::system::error_code, std::size_t) {});
    asio::async_read_until(again, asio::dynamic_buffer(client_line), '\n',
                           [&](boost::system::error_code ec, std::size_t) {
                               BOOST_TEST(!ec);
                               done = true;
                           });
    run_until(io, [&] { return done; });
    BOOST_TEST(client_line == "round trip\n");
    l.close();
}

BOOST_AUTO_TEST_CASE(message_carrier_cannot_be_morphed) {
    auto l = post::listen(ctx, loopback_v4());
    l.on_carrier([](post::carrier) {});
    auto c = post::initiate(ctx, post::remote::from_url(url_for(port_of(l))));

    // Establishing a message stack: refused at once.
    post::error early;
    BOOST_TEST(!post::morph(c, early));
    BOOST_TEST(early.code == post::make_error_code(post::errc::not_supported));

    run_until(io, [&] { return c.state() == post::carrier_state::active; });
    BOOST_REQUIRE(c.stack() == (std::vector<std::string>{"framer", "tcp"}));
    post::error e;
    auto s = post::morph(c, e);
    BOOST_TEST(!s);
    BOOST_TEST(e.code == post::make_error_code(post::errc::not_supported));
    BOOST_TEST(e.reason.find("[framer, tcp]") != std::string::npos, e.reason);
    BOOST_TEST(e.reason.find("cannot change its wire") != std::string::npos, e.reason);
    try {
        (void)post::morph(c);
        BOOST_FAIL("morph of a [framer, tcp] carrier did not throw");
    } catch (const boost::system::system_error& x) {
        BOOST_TEST(x.code() == post::make_error_code(post::errc::not_supported));
    }
    post::error empty;
    BOOST_TEST(!post::morph(post::carrier{}, empty));
    BOOST_TEST(empty.code == post::make_error_code(post::errc::invalid_argument));
    c.abort();
    l.close();
}

BOOST_AUTO_TEST_CASE(policy_without_a_stream_stack_fails_the_stream) {
    auto p = post::policy::parse("version: 1\nname: framed\nstacks:\n  - [framer, tcp]\n",
                                 "framed.yaml");
    auto s = post::initiate_stream(ctx, post::remote::from_url("tcp://127.0.0.1:9"), p);
    std::array<char, 8> buf;
    boost::system::error_code ec;
    bool done = false;
    s.async_read_some(asio::buffer(buf), [&](boost::system::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    run_until(io, [&] { return done; });
    // Its explicit stacks do not fit a stream carrier: the policy is invalid for this use.
    BOOST_TEST(ec == post::make_error_code(post::errc::policy_invalid), ec.message());
    auto why = s.carrier().last_error();
    BOOST_REQUIRE(why.has_value());
    BOOST_TEST(why->reason.find("byte-stream") != std::string::npos, why->reason);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(socat_peer, loopback_fixture)

BOOST_AUTO_TEST_CASE(initiate_to_socat_echo) {
    if (!have_socat()) {
        BOOST_TEST_MESSAGE("socat not installed: skipped");
        return;
    }
    child_process socat(
        {"/usr/bin/socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr", "PIPE"});
    auto port = port_from_socat_line(socat.wait_for_line("listening on"));

    const std::string data = pattern(150 * 1024);
    std::string echoed(data.size(), '\0');
    bool done = false;
    boost::system::error_code write_ec, read_ec;
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(port)));
    asio::async_write(s, asio::buffer(data),
                      [&](boost::system::error_code ec, std::size_t) { write_ec = ec; });
    asio::async_read(s, asio::buffer(echoed), [&](boost::system::error_code ec, std::size_t) {
        read_ec = ec;
        done = true;
    });
    run_until(io, [&] { return done; });
    BOOST_TEST(!write_ec);
    BOOST_TEST(!read_ec, read_ec.message());
    BOOST_TEST((echoed == data));

    // Our close reaches socat as a FIN; it closes too and we read eof.
    s.close();
    std::array<char, 8> buf;
    done = false;
    s.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t) {
        read_ec = ec;
        done = true;
    });
    run_until(io, [&] { return done; });
    BOOST_TEST(read_ec == asio::error::eof, read_ec.message());
    BOOST_TEST(socat.wait_exit() == 0);
}

BOOST_AUTO_TEST_CASE(socat_connects_to_a_stream_listener) {
    if (!have_socat()) {
        BOOST_TEST_MESSAGE("socat not installed: skipped");
        return;
    }
    auto l = post::listen(ctx, loopback_v4(), post::policy::defaults(), stream_only());
    // socat sends a fixed text and reads what we answer until we close.
    child_process socat({"/usr/bin/socat", "-d", "-d",
                         "TCP:127.0.0.1:" + std::to_string(port_of(l)),
                         "SYSTEM:echo from socat; cat >/dev/null"});
    std::string line;
    bool done = false;
    l.async_accept([&](boost::system::error_code ec, post::carrier c) {
        BOOST_REQUIRE(!ec);
        auto s = post::morph(c);
        asio::async_read_until(s, asio::dynamic_buffer(line), '\n',
                               [&, s](boost::system::error_code ec, std::size_t) mutable {
                                   BOOST_TEST(!ec);
                                   asio::async_write(
                                       s, asio::buffer(std::string_view("thanks\n")),
                                       [&, s](boost::system::error_code ec, std::size_t) mutable {
                                           BOOST_TEST(!ec);
                                           s.close();
                                           done = true;
                                       });
                               });
    });
    run_until(io, [&] { return done; });
    BOOST_TEST(line == "from socat\n");
    BOOST_TEST(socat.wait_exit() == 0);
    l.close();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(iostream)

/// An echo server on a plain socket, run by the io_context.
struct echo_session : std::enable_shared_from_this<echo_session> {
    explicit echo_session(tcp::socket s)
        : socket(std::move(s)) {}
    void start() {
        socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](
                                                      boost::system::error_code ec, std::size_t n) {
            if (ec) return self->socket.close();
            asio::async_write(self->socket, asio::buffer(self->buf, n),
                              [self](boost::system::error_code ec, std::size_t) {
                                  if (!ec) self->start();
                              });
        });
    }
    tcp::socket socket;
    std::array<char, 4096> buf;
};

BOOST_AUTO_TEST_CASE(round_trip_from_a_second_thread) {
    asio::io_context io;
    post::context ctx(io, loopback_options());
    plain_server server(io);
    server.acceptor.async_accept([](boost::system::error_code ec, tcp::socket s) {
        if (!ec) std::make_shared<echo_session>(std::move(s))->start();
    });
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(server.port())));

    auto work = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });

    // This thread is not the executor's: the iostream blocks until each operation completes.
    auto result = std::async(std::launch::async, [s] {
        post::iostream ios(s);
        std::vector<std::string> lines;
        ios << "first line\n" << std::flush;
        std::string line;
        std::getline(ios, line);
        lines.push_back(line);
        ios << "second " << 42 << std::endl;
        std::getline(ios, line);
        lines.push_back(line);
        ios.close();
        // The echo server closes after our FIN: the end of input, not an error.
        bool more = static_cast<bool>(std::getline(ios, line));
        lines.push_back(more ? "unexpected: " + line : (ios.eof() ? "<eof>" : "<not eof>"));
        lines.push_back(ios.error() ? ios.error().message() : "<no error>");
        return lines;
    });
    auto status = result.wait_for(std::chrono::seconds(10));
    work.reset();
    if (status != std::future_status::ready) {
        s.abort();
        io.stop();
        runner.join();
        BOOST_FAIL("iostream round trip timed out");
    }
    auto lines = result.get();
    io.stop();
    runner.join();
    BOOST_TEST(lines ==
                   (std::vector<std::string>{"first line", "second 42", "<eof>", "<no error>"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(refused_on_the_executor_thread) {
    asio::io_context io;
    post::context ctx(io, loopback_options());
    plain_server server(io);
    server.acceptor.async_accept([](boost::system::error_code ec, tcp::socket s) {
        if (!ec) std::make_shared<echo_session>(std::move(s))->start();
    });
    auto s = post::initiate_stream(ctx, post::remote::from_url(url_for(server.port())));
    bool checked = false;
    asio::post(io, [&] {
        post::iostream ios(s);
        ios << "would deadlock" << std::flush;
        BOOST_TEST(ios.bad());
        BOOST_TEST(ios.error() ==
                   make_error_code(boost::system::errc::resource_deadlock_would_occur));
        std::string line;
        BOOST_TEST(!std::getline(ios, line));
        checked = true;
    });
    run_until(io, [&] { return checked; });
    s.abort();
}

BOOST_AUTO_TEST_SUITE_END()
