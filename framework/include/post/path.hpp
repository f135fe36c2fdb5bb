// One way through the network, and what we measured of it.
#pragma once

#include <post/sdk/flow.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace post {

struct path {
    sdk::endpoint local;
    sdk::endpoint remote;
    std::string interface;            ///< Empty when unknown.
    std::size_t max_message_size = 0; ///< From the stack; 0 = unlimited.
    std::optional<std::chrono::microseconds> rtt;
};

} // namespace post
