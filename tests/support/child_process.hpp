// Tests that run a real program beside them (socat, `post listen`): spawn it, read its output
// as events (no sleeps), stop it.
#pragma once

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace post::test {

/// What becomes of the child's stdout.
enum class child_stdout { inherit, merge, discard };

/// A child process whose stderr (and stdout too, with child_stdout::merge) we read line by
/// line, e.g. until it reports its port. Killed (SIGTERM) and reaped when destroyed.
class child_process {
public:
    explicit child_process(std::vector<std::string> args,
                           child_stdout out = child_stdout::inherit) {
        int fds[2];
        BOOST_REQUIRE(::pipe(fds) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
        if (out == child_stdout::merge)
            posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        else if (out == child_stdout::discard)
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        err_ = fds[0];
        BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << args[0]);
    }
    ~child_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (err_ >= 0) ::close(err_); // kept open until now: socat dies of SIGPIPE otherwise
    }
    /// Send `sig` to the child (it is still reaped by wait_exit or the destructor).
    void signal(int sig) {
        if (pid_ > 0) ::kill(pid_, sig);
    }
    /// Read stderr until a line contains `marker`; returns that line (empty on timeout/EOF).
    std::string wait_for_line(std::string_view marker) {
        std::string text;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            for (std::size_t nl; (nl = text.find('\n')) != std::string::npos;) {
                auto line = text.substr(0, nl);
                text.erase(0, nl + 1);
                if (line.find(marker) != std::string::npos) return line;
            }
            pollfd p{err_, POLLIN, 0};
            if (::poll(&p, 1, 200) <= 0) continue;
            char buf[512];
            auto n = ::read(err_, buf, sizeof buf);
            if (n <= 0) return {};
            text.append(buf, static_cast<std::size_t>(n));
        }
        return {};
    }
    /// Wait for the child to exit; its exit status (-1 on timeout, the child is then killed).
    int wait_exit(std::chrono::seconds limit = std::chrono::seconds(10)) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        int status = 0;
        while (std::chrono::steady_clock::now() < deadline) {
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            // Drain stderr meanwhile (socat -d -d logs each step), waiting on it as the event.
            pollfd p{err_, POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) {
                char buf[512];
                if (::read(err_, buf, sizeof buf) <= 0) {
                    ::waitpid(pid_, &status, 0);
                    pid_ = -1;
                    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
            }
        }
        return -1;
    }

private:
    pid_t pid_ = -1;
    int err_ = -1;
};

} // namespace post::test
