// The README's embedding example, complete: a listener that echoes, and a carrier that sends
// "hello" and prints the reply. Built and run by the test suite (example_hello).
#include <utility> // before Asio (Boost 1.74 with g++ 12)

#include <post.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>

int main(int argc, char** argv) {
    boost::asio::io_context io;
    post::context ctx(io); // loads the plugins and the host configuration
    auto policy = argc > 1 ? post::policy::load_file(argv[1]) : post::policy::defaults();

    // A server: echo every message back on the carrier it came from.
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"), policy);
    l.on_carrier([](post::carrier c) {
        c.on_received([c](post::message m) mutable { c.send(std::move(m)); });
    });

    // A client: the policy picks the stack; we only speak in messages.
    auto c = post::initiate(ctx, post::remote::from_endpoint(l.local_endpoints().front()), policy);
    int rc = 1;
    c.on_ready([&] { c.send(post::message("hello")); })
        .on_received([&](post::message m) {
            std::cout << m.text() << " (over";
            for (const auto& layer : c.stack())
                std::cout << ' ' << layer;
            std::cout << ")\n";
            rc = m.text() == "hello" ? 0 : 1;
            c.close();
            l.close();
        })
        .on_error([&](const post::error& e) {
            std::cerr << e.to_string() << "\n";
            l.close();
        });
    io.run();
    return rc;
}
