// HTTP/3 (RFC 9114) on one QUIC connection, with nghttp3 doing the framing and QPACK: the
// quic_application the `h3` layer installs on a quic_connection (docs/http.md "HTTP/3").
//
// Messages are HTTP requests and responses in the representation of docs/http.md (payload =
// body, properties = pseudo-headers and lower-case fields), as the http1 layer has them.
// Client: each message sent is a request on a new bidirectional stream; responses are handed up
// in the order the requests were sent. Server: each complete request is handed up as it
// completes; a message sent answers the oldest request not yet answered (as http1).
//
// The session is owned by the connection (its application) and by the h3 flow; it never owns
// either. nghttp3 callbacks only record; events go up from dispatch(), in the connection's
// service pass.
#pragma once

#include "quic_application.hpp"

#include <utility>

#include <nghttp3/nghttp3.h>

#include <post/sdk.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post::plugins::quic {

class quic_connection;

struct h3_limits {
    std::uint64_t max_body = 16 * 1024 * 1024; ///< max-message-size
    std::uint64_t max_header = 64 * 1024;      ///< max-header-size (RFC 9114 field section size)
};

class h3_session final : public quic_application {
public:
    h3_session(quic_connection& conn, sdk::role side, std::string default_authority,
               h3_limits limits);
    ~h3_session() override;
    h3_session(const h3_session&) = delete;
    h3_session& operator=(const h3_session&) = delete;

    // From the h3 flow (calls from above: they record and schedule a service pass).
    void set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
        events_ = std::move(events);
    }
    void send(sdk::byte_buffer data, const sdk::send_meta& meta);
    void close();
    void abort();
    std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    std::size_t max_body() const noexcept { return static_cast<std::size_t>(limits_.max_body); }
    /// The connection below ended (reported by its stream flow, in a service pass).
    void connection_ended(const sdk::flow_error& e);

    // quic_application
    const std::vector<std::string>& alpn() const override { return alpn_; }
    void transport_params(ngtcp2_transport_params& params) const override;
    std::uint64_t no_error_code() const override { return NGHTTP3_H3_NO_ERROR; }
    std::uint64_t internal_error_code() const override { return NGHTTP3_H3_INTERNAL_ERROR; }
    std::string error_name(std::uint64_t code) const override;
    int on_established(ngtcp2_conn* conn) override;
    int on_stream_data(ngtcp2_conn* conn, std::int64_t id, const std::uint8_t* data,
                       std::size_t len, bool fin) override;
    int on_acked(std::int64_t id, std::uint64_t len) override;
    int on_stream_close(std::int64_t id, std::uint64_t code) override;
    int on_stream_reset(std::int64_t id, std::uint64_t code) override;
    int on_stop_sending(std::int64_t id, std::uint64_t code) override;
    int on_extend_max_stream_data(std::int64_t id) override;
    void on_extend_max_remote_streams_bidi(std::uint64_t max) override;
    long next_write(ngtcp2_conn* conn, std::int64_t& id, bool& fin, ngtcp2_vec* vec,
                    std::size_t veccnt) override;
    int wrote(std::int64_t id, std::size_t n, bool fin_written) override;
    void blocked(std::int64_t id) override;
    void shut(std::int64_t id) override;
    void dispatch() override;

private:
    using field_list = std::vector<std::pair<std::string, std::string>>;

    /// One request stream: what was received on it and the body being sent on it (kept until
    /// the stream closes: nghttp3 references it until the peer acknowledged it).
    struct stream_state {
        std::int64_t id = -1;
        std::map<std::string, std::string> fields;
        sdk::byte_buffer body;
        std::size_t header_bytes = 0; ///< Of the field section being received.
        bool complete = false;        ///< The peer's side ended (end_stream).
        bool closed = false;          ///< Closed in QUIC (both ways, or reset).
        std::uint64_t close_code = 0;
        bool delivered = false;
        // Sending
        sdk::byte_buffer out;
        bool out_given = false;
        std::optional<std::uint64_t> upper_id; ///< The message whose FIN is awaited (on_sent).
        bool answered = false;                 ///< Server: a response was submitted.
        bool head = false;                     ///< Server: a HEAD request (no body answers it).
    };

    /// A request not yet on a stream (before the handshake, or waiting for stream credit).
    struct out_request {
        std::uint64_t id = 0;
        field_list fields;
        sdk::byte_buffer body;
    };

    bool client() const noexcept { return side_ == sdk::role::client; }
    /// Creates the nghttp3 connection and binds our three unidirectional streams.
    int start(ngtcp2_conn* conn);
    void refuse(std::uint64_t id, std::errc code, std::string why);
    /// Client: puts waiting requests on new streams, as stream credit allows.
    int submit_requests(ngtcp2_conn* conn);
    void send_response(sdk::byte_buffer data, const sdk::send_meta& meta);
    /// A fatal error inside a callback: the connection closes with `code`.
    int fail(std::errc code, std::uint64_t h3_code, const std::string& why);
    void consumed(std::int64_t id, std::size_t n);
    stream_state* state_of(std::int64_t id);
    void finish(const sdk::flow_error& e);

    // nghttp3 callbacks (conn_user_data is the session, stream_user_data a stream_state)
    static int cb_acked(nghttp3_conn*, std::int64_t, std::uint64_t, void*, void*);
    static int cb_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user,
                               void* stream_user);
    static int cb_recv_data(nghttp3_conn*, std::int64_t id, const std::uint8_t* data,
                            std::size_t len, void* user, void* stream_user);
    static int cb_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* user,
                                   void* stream_user);
    static int cb_begin_headers(nghttp3_conn*, std::int64_t id, void* user, void* stream_user);
    static int cb_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t token,
                              nghttp3_rcbuf* name, nghttp3_rcbuf* value, std::uint8_t flags,
                              void* user, void* stream_user);
    static int cb_end_headers(nghttp3_conn*, std::int64_t id, int fin, void* user,
                              void* stream_user);
    static int cb_end_stream(nghttp3_conn*, std::int64_t id, void* user, void* stream_user);
    static int cb_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user,
                               void* stream_user);
    static int cb_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user,
                               void* stream_user);
    static int cb_shutdown(nghttp3_conn*, std::int64_t id, void* user);
    static nghttp3_ssize cb_read_data(nghttp3_conn*, std::int64_t id, nghttp3_vec* vec,
                                      std::size_t veccnt, std::uint32_t* flags, void* user,
                                      void* stream_user);

    quic_connection& conn_;
    sdk::role side_;
    std::string default_authority_;
    h3_limits limits_;
    std::vector<std::string> alpn_{"h3"};
    std::weak_ptr<sdk::flow_events> events_;

    nghttp3_conn* h3_ = nullptr;
    ngtcp2_conn* quic_ = nullptr; ///< Set while the connection exists (for flow credit).
    bool established_ = false;
    bool ready_reported_ = false;
    bool close_requested_ = false;
    bool close_sent_ = false;
    bool aborted_ = false;
    bool goaway_ = false; ///< Client: the server sent GOAWAY.
    std::optional<sdk::flow_error> ended_;
    bool end_reported_ = false;

    std::map<std::int64_t, std::unique_ptr<stream_state>> streams_;
    std::deque<out_request> waiting_;     ///< Client: requests not yet on a stream.
    std::deque<std::int64_t> order_;      ///< Client: request streams, in the order sent.
    std::deque<std::int64_t> arrived_;    ///< Server: complete requests, not yet handed up.
    std::deque<std::int64_t> unanswered_; ///< Server: handed up, not yet answered.
    std::vector<std::uint64_t> sent_;
    std::vector<std::pair<std::uint64_t, sdk::flow_error>> send_errors_;
    std::size_t queued_bytes_ = 0;
};

} // namespace post::plugins::quic
