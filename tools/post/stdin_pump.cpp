#include "stdin_pump.hpp"

#include <boost/asio/post.hpp>

#include <array>
#include <cerrno>
#include <poll.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

namespace post_tool {

stdin_pump::stdin_pump(boost::asio::any_io_executor ex, chunk_handler on_chunk, end_handler on_end)
    : executor_(std::move(ex))
    , on_chunk_(std::move(on_chunk))
    , on_end_(std::move(on_end)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0)
        throw std::system_error(errno, std::system_category(), "eventfd for the stdin reader");
}

stdin_pump::~stdin_pump() {
    stop();
    ::close(wake_fd_);
}

void stdin_pump::start() {
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void stdin_pump::stop() {
    {
        std::lock_guard lock(mutex_);
        open_ = false;
    }
    handled_.notify_all();
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
}

void stdin_pump::run() {
    std::string buf(65536, '\0');
    for (;;) {
        std::array<pollfd, 2> fds{pollfd{STDIN_FILENO, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[1].revents != 0) return; // stopped
        // POLLHUP/POLLERR/POLLNVAL: read() reports the end or the error.
        ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        if (!post_and_wait(buf.substr(0, static_cast<std::size_t>(n)))) return;
    }
    std::lock_guard lock(mutex_);
    if (open_) boost::asio::post(executor_, [this] { on_end_(); });
}

bool stdin_pump::post_and_wait(std::string chunk) {
    std::unique_lock lock(mutex_);
    if (!open_) return false;
    busy_ = true;
    // The handler captures `this`: it runs only on the executor, and stop() (on the executor's
    // thread, after run()) precedes our destruction, so a handler still queued then never runs.
    boost::asio::post(executor_, [this, chunk = std::move(chunk)]() mutable {
        on_chunk_(std::move(chunk), [this] {
            {
                std::lock_guard lock(mutex_);
                busy_ = false;
            }
            handled_.notify_all();
        });
    });
    handled_.wait(lock, [&] { return !busy_ || !open_; });
    return open_;
}

} // namespace post_tool
