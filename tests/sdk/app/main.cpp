// Compiles the whole public API from an installed prefix and calls into the kernel library, so a
// missing installed header or an unusable PostSockets::kernel / postsockets.pc fails the build.
#include <utility> // before Asio (Boost 1.74 with g++ 12)

#include <post.hpp>

#include <iostream>

int main() {
    const auto ec = post::make_error_code(post::errc::protocol_error);
    std::cout << "category=" << ec.category().name() << " message=" << ec.message() << '\n';
    return ec.value() == static_cast<int>(post::errc::protocol_error) && !ec.message().empty() ? 0
                                                                                               : 1;
}
