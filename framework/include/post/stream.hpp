// A carrier morphed into a byte stream (the paper's "morph to stream"), for legacy protocols
// and for peers that speak plain TCP (socat, nc, any Berkeley-sockets program).
//
// post::stream is an Asio AsyncReadStream and AsyncWriteStream: boost::asio::async_read,
// async_write and async_read_until work on it. For a blocking, file-like object see
// post/iostream.hpp.
//
// The wire: the bytes of the stack's top layer, nothing added. A stream carrier runs over a
// stack whose top offers a `stream` edge ([tcp]; later [tls, tcp]): no framer, no preface. Each
// end morphs on its own, so a stream talks to any program that reads and writes that protocol.
// A message carrier (say [framer, tcp]) cannot be morphed: its peer expects frames, and the
// framing it already started on the wire cannot be taken back. Ask for a stream stack from the
// start instead: initiate_stream(), or listen() with stack_constraint::stream_top.
//
// Handles are cheap to copy; copies refer to the same stream. Morphing the same carrier again
// returns the same stream. Do not set on_received on a morphed carrier: the stream takes every
// received byte from the carrier's inbox (which buffers what arrives before a read is pending,
// bounded as the carrier's inbox is).
//
// Threads: completions run on the carrier's executor (or the token's associated executor).
// As for any Asio stream, have at most one read and one write outstanding at a time.
#pragma once

#include <post/carrier.hpp>
#include <post/detail/completion.hpp>
#include <post/error.hpp>
#include <post/policy.hpp>
#include <post/remote.hpp>

#include <utility>
// <utility> must precede Asio for coroutine support with g++ 12 (see dependencies notes).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

namespace post {

class context;

namespace detail {
class stream_state;
}

class stream {
public:
    using executor_type = boost::asio::any_io_executor;

    stream() = default;
    explicit stream(std::shared_ptr<detail::stream_state> state)
        : state_(std::move(state)) {}

    explicit operator bool() const noexcept { return static_cast<bool>(state_); }

    executor_type get_executor() const;

    /// Completion signature: void(boost::system::error_code, std::size_t). Reads at least one
    /// byte (or none for empty buffers). Waits while the carrier is establishing. Errors:
    /// boost::asio::error::eof once the peer closed cleanly and every byte was read; the
    /// carrier's error code (errc::establishment_failed, errc::closed for a reset connection,
    /// errc::cancelled after abort(), ...) when it ended otherwise.
    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
        return boost::asio::async_initiate<ReadToken, void(boost::system::error_code, std::size_t)>(
            [self = *this](auto handler, const MutableBufferSequence& b) {
                std::vector<boost::asio::mutable_buffer> v(boost::asio::buffer_sequence_begin(b),
                                                           boost::asio::buffer_sequence_end(b));
                self.read_some_with(std::move(v),
                                    detail::erase_handler<boost::system::error_code, std::size_t>(
                                        std::move(handler), self.get_executor()));
            },
            token, buffers);
    }

    /// Completion signature: void(boost::system::error_code, std::size_t). Takes up to 1 MiB of
    /// `buffers` (copied at once) and completes when the carrier reports those bytes sent
    /// (handed to the operating system). Waits while the carrier is establishing. Errors: the
    /// carrier's (errc::closed after the carrier ended or close() was called, ...).
    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
        return boost::asio::async_initiate<WriteToken,
                                           void(boost::system::error_code, std::size_t)>(
            [self = *this](auto handler, const ConstBufferSequence& b) {
                std::vector<std::byte> bytes;
                for (auto it = boost::asio::buffer_sequence_begin(b);
                     it != boost::asio::buffer_sequence_end(b) && bytes.size() < max_write_size;
                     ++it) {
                    boost::asio::const_buffer part(*it);
                    const auto* p = static_cast<const std::byte*>(part.data());
                    const auto n = std::min(part.size(), max_write_size - bytes.size());
                    bytes.insert(bytes.end(), p, p + n);
                }
                self.write_some_with(std::move(bytes),
                                     detail::erase_handler<boost::system::error_code, std::size_t>(
                                         std::move(handler), self.get_executor()));
            },
            token, buffers);
    }

    /// Graceful close: our side ends (TCP FIN) after every byte written before it; reads go on
    /// until the peer closes too (then eof).
    void close();
    /// Immediate close (a reset); pending operations fail with errc::cancelled.
    void abort();

    /// The carrier underneath (for its state, path, stack and events).
    post::carrier carrier() const;

    /// The most bytes one async_write_some takes.
    static constexpr std::size_t max_write_size = 1u << 20;

private:
    void
    read_some_with(std::vector<boost::asio::mutable_buffer> buffers,
                   detail::unique_function<void(boost::system::error_code, std::size_t)> h) const;
    void
    write_some_with(std::vector<std::byte> bytes,
                    detail::unique_function<void(boost::system::error_code, std::size_t)> h) const;

    std::shared_ptr<detail::stream_state> state_;
};

/// Morph a carrier into a byte stream. Allowed when the top of its stack offers a stream edge
/// (or while it establishes such a stack, as a carrier from initiate_stream() does). Otherwise
/// throws boost::system::system_error with errc::not_supported, naming the stack: a message
/// carrier whose framing is active cannot change its wire. An empty carrier gives
/// errc::invalid_argument.
stream morph(const carrier& c);
/// As above, reporting failure in `e` (and returning an empty stream) instead of throwing.
stream morph(const carrier& c, error& e);

/// Start establishing a carrier over a stack whose top offers a byte stream ([tcp], ...) and
/// return it morphed. Usable at once: operations wait until it is ready. Failures (no stream
/// stack in the policy, connection refused, ...) complete the stream's operations with the
/// carrier's error (see carrier().last_error()). The policy's preserve-msg-boundaries rule does
/// not apply (see stack_constraint::stream_top).
stream initiate_stream(context& ctx, const remote& r, const policy& p = policy::defaults());

} // namespace post
