// Reading stdin for `post connect` and the stream mode. stdin may be a regular file, which epoll
// refuses, so it is read by a thread of its own; every chunk is handed to the executor, and the
// thread reads the next one only after the handler said it is done with this one, so a fast
// producer cannot queue unbounded data.
//
// The thread is joined, never detached: a thread still running (or exiting) when the process
// ends races the leak checker's stop-the-world, which then crashes ("Tracer caught signal 11").
#pragma once

#include <utility>

#include <boost/asio/any_io_executor.hpp>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace post_tool {

class stdin_pump {
public:
    /// Runs on the executor with one chunk of input; call `done` (on any thread, at most once)
    /// when the next chunk may be read.
    using chunk_handler = std::function<void(std::string chunk, std::function<void()> done)>;
    /// Runs on the executor once stdin reached its end (or failed, which ends input the same way).
    using end_handler = std::function<void()>;

    stdin_pump(boost::asio::any_io_executor ex, chunk_handler on_chunk, end_handler on_end);
    ~stdin_pump(); ///< stop()
    stdin_pump(const stdin_pump&) = delete;
    stdin_pump& operator=(const stdin_pump&) = delete;

    void start();
    /// Wakes the thread wherever it waits (in poll, or for `done`), joins it, and guarantees that
    /// no handler is posted afterwards. Call on the executor's thread, typically after run().
    void stop();

private:
    void run();
    bool post_and_wait(std::string chunk); ///< false once stopped

    boost::asio::any_io_executor executor_;
    chunk_handler on_chunk_;
    end_handler on_end_;
    int wake_fd_ = -1; ///< eventfd that stop() signals, so poll() returns
    std::mutex mutex_;
    std::condition_variable handled_;
    bool open_ = true;
    bool busy_ = false; ///< a chunk is with the executor
    std::thread thread_;
};

} // namespace post_tool
