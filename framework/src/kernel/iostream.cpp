// Blocking std::streambuf over post::stream: each refill and each flush starts the async
// operation and waits on a promise that the completion (on the executor) fulfils.
#include <utility>

#include <post/iostream.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>

#include <future>

namespace post {

namespace asio = boost::asio;

namespace {

using result = std::pair<boost::system::error_code, std::size_t>;

bool running_in_this_thread(const asio::any_io_executor& ex) {
    if (auto* io = ex.target<asio::io_context::executor_type>())
        return io->running_in_this_thread();
    if (auto* s = ex.target<asio::strand<asio::io_context::executor_type>>())
        return s->running_in_this_thread();
    if (auto* s = ex.target<asio::strand<asio::any_io_executor>>())
        return s->running_in_this_thread();
    return false;
}

} // namespace

stream_buffer::stream_buffer(post::stream s, std::size_t buffer_size)
    : stream_(std::move(s))
    , in_(std::max<std::size_t>(buffer_size, 1))
    , out_(std::max<std::size_t>(buffer_size, 1)) {
    setg(in_.data(), in_.data(), in_.data());
    setp(out_.data(), out_.data() + out_.size());
}

stream_buffer::~stream_buffer() {
    if (pptr() == pbase() || error_ || !stream_ || running_in_this_thread(stream_.get_executor()))
        return;
    try {
        flush_out();
    } catch (...) {
        // A destructor reports nothing; error() was recorded for anyone still looking.
    }
}

void stream_buffer::check_thread() {
    if (!stream_) {
        error_ = make_error_code(errc::invalid_argument);
        throw boost::system::system_error(error_, "post::iostream over an empty stream");
    }
    if (running_in_this_thread(stream_.get_executor())) {
        error_ = make_error_code(boost::system::errc::resource_deadlock_would_occur);
        throw boost::system::system_error(
            error_, "post::iostream used on the thread running its executor: it would wait for "
                    "itself; use post::stream's async operations there");
    }
}

stream_buffer::int_type stream_buffer::underflow() {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (error_) return traits_type::eof();
    check_thread();
    std::promise<result> done;
    auto f = done.get_future();
    stream_.async_read_some(asio::buffer(in_),
                            [&done](boost::system::error_code ec, std::size_t n) {
                                done.set_value({ec, n});
                            });
    auto [ec, n] = f.get();
    if (ec == asio::error::eof) return traits_type::eof();
    if (ec) {
        error_ = ec;
        throw boost::system::system_error(ec, "post::iostream read");
    }
    setg(in_.data(), in_.data(), in_.data() + n);
    return traits_type::to_int_type(*gptr());
}

void stream_buffer::flush_out() {
    const auto n = static_cast<std::size_t>(pptr() - pbase());
    if (n == 0) return;
    check_thread();
    std::promise<result> done;
    auto f = done.get_future();
    asio::async_write(stream_, asio::buffer(pbase(), n),
                      [&done](boost::system::error_code ec, std::size_t written) {
                          done.set_value({ec, written});
                      });
    auto [ec, written] = f.get();
    if (ec) {
        error_ = ec;
        throw boost::system::system_error(ec, "post::iostream write");
    }
    setp(out_.data(), out_.data() + out_.size());
}

stream_buffer::int_type stream_buffer::overflow(int_type ch) {
    if (error_) return traits_type::eof();
    flush_out();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
        *pptr() = traits_type::to_char_type(ch);
        pbump(1);
    }
    return traits_type::not_eof(ch);
}

int stream_buffer::sync() {
    if (error_) return -1;
    flush_out();
    return 0;
}

bool stream_buffer::close() {
    bool ok = true;
    try {
        if (!error_) flush_out();
    } catch (...) {
        ok = false;
    }
    if (stream_) stream_.close();
    return ok && !error_;
}

iostream::iostream(post::stream s, std::size_t buffer_size)
    : std::iostream(nullptr)
    , buf_(std::move(s), buffer_size) {
    rdbuf(&buf_);
}

void iostream::close() {
    if (!buf_.close()) setstate(std::ios_base::badbit);
}

} // namespace post
