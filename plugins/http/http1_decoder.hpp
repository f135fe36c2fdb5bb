// The receiving half of HTTP/1.1: bytes from the stream in, whole requests or responses out, in
// the message representation of docs/http.md (pseudo-headers plus lower-case header fields as
// properties, the body as payload). Parsing is Debian's http-parser 2.9; this class adds the
// bounds (header block, body) and folds the fields. No I/O, so it is unit-tested and fuzzed
// alone.
#pragma once

#include <post/sdk/flow.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace post::plugins::http {

/// One parsed request or response.
struct http1_message {
    std::map<std::string, std::string> properties;
    sdk::byte_buffer body;
    /// False when the peer asked to close after this message (Connection: close, HTTP/1.0).
    bool keep_alive = true;
};

struct http1_limits {
    std::uint64_t max_body = 16 * 1024 * 1024;
    std::uint32_t max_header = 64 * 1024;
};

class http1_decoder {
public:
    enum class mode { request, response };

    http1_decoder(mode m, http1_limits limits);
    ~http1_decoder();
    http1_decoder(const http1_decoder&) = delete;
    http1_decoder& operator=(const http1_decoder&) = delete;

    /// Response mode: the next response not yet announced answers a HEAD request, so it has no
    /// body whatever its content-length says. Call once per request sent, in order, with
    /// whether it was HEAD.
    void expect_response(bool head);

    /// Parse `data`; completed messages are appended to `out`. False on malformed input or a
    /// bound exceeded (error() says which); messages completed before the fault are in `out`.
    bool feed(std::span<const std::byte> data, std::vector<http1_message>& out);
    /// The stream ended: completes a body delimited by the end of the connection. False when
    /// the stream ended inside a message.
    bool finish(std::vector<http1_message>& out);

    const std::string& error() const noexcept { return error_; }
    bool mid_message() const noexcept { return in_message_; }
    bool failed() const noexcept { return !error_.empty(); }

private:
    struct state;
    std::unique_ptr<state> s_;
    std::string error_;
    bool in_message_ = false;
};

} // namespace post::plugins::http
