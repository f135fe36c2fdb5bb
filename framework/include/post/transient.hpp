// A transient binds an active carrier to one protocol stack instance over one path. Not needed
// by ordinary applications; inspectable for logging and debugging.
#pragma once

#include <post/path.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace post {

struct transient_info {
    std::vector<std::string> stack; ///< Top layer first.
    post::path path;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point ready; ///< Equal to started until ready.
};

} // namespace post
