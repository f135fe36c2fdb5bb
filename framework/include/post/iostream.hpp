// A blocking, file-like view of a post::stream: std::iostream over a std::streambuf whose
// reads and writes wait for the stream's asynchronous operations to complete.
//
// For code that wants `ios << request << std::flush; std::getline(ios, reply);` on a thread of
// its own. The context's executor must be running on another thread meanwhile: every
// operation waits for work that the executor does. Using an iostream on a thread that runs the
// executor would wait for itself forever, so it is detected and refused instead: the operation
// throws inside the streambuf, the iostream sets badbit, and error() is
// std::errc::resource_deadlock_would_occur (detected for io_context executors and strands of
// them, which is what a post::context uses).
//
// Output is buffered: flush (std::flush, std::endl) to send. End of input (the peer closed)
// sets eofbit; a broken carrier sets badbit with the carrier's error in error(). Like any
// std::iostream, one object is used by one thread at a time.
#pragma once

#include <post/stream.hpp>

#include <istream>
#include <streambuf>
#include <vector>

namespace post {

class stream_buffer : public std::streambuf {
public:
    explicit stream_buffer(post::stream s, std::size_t buffer_size = 16 * 1024);
    /// Flushes what is left, unless that cannot be done (on the executor's thread, or after an
    /// error); does not close the stream.
    ~stream_buffer() override;
    stream_buffer(const stream_buffer&) = delete;
    stream_buffer& operator=(const stream_buffer&) = delete;

    post::stream& stream() noexcept { return stream_; }
    /// The first error (empty while none; eof is not an error).
    boost::system::error_code error() const noexcept { return error_; }
    /// Flush, then close the stream gracefully. Returns false when the flush failed.
    bool close();

protected:
    int_type underflow() override;
    int_type overflow(int_type ch) override;
    int sync() override;

private:
    /// Throws (after recording error_) when waiting here would deadlock.
    void check_thread();
    /// Write out the put area; throws on error.
    void flush_out();

    post::stream stream_;
    std::vector<char> in_, out_;
    boost::system::error_code error_;
};

class iostream : public std::iostream {
public:
    explicit iostream(post::stream s, std::size_t buffer_size = 16 * 1024);

    post::stream& stream() noexcept { return buf_.stream(); }
    boost::system::error_code error() const noexcept { return buf_.error(); }
    /// Flush, then close the stream gracefully (reads go on until the peer closes too).
    void close();

private:
    stream_buffer buf_;
};

} // namespace post
