// An application protocol that takes a QUIC connection's streams over (HTTP/3: h3_session).
// With one set (quic_connection::set_application, before the connection starts), the connection
// negotiates the application's ALPN, opens unidirectional streams to the peer, and hands raw
// stream bytes to it instead of framing messages on quic_stream flows; writing pulls what to send
// from it (nghttp3's pull-and-acknowledge model: next_write, then wrote with what ngtcp2 took).
//
// The calls marked "inside ngtcp2" run from ngtcp2 callbacks: they may only record and call
// ngtcp2 functions that are safe there (extend offsets, open or shut streams). On a fatal error
// they call quic_connection::set_pending_close and return NGTCP2_ERR_CALLBACK_FAILURE; the
// connection then closes with that error. Events reach the layer above only from dispatch(),
// which the connection calls in its service pass (never inside a call from above).
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstdint>
#include <string>
#include <vector>

namespace post::plugins::quic {

class quic_application {
public:
    virtual ~quic_application() = default;

    /// ALPN protocols offered (client) or accepted (server) instead of the quic layer's `alpn`.
    virtual const std::vector<std::string>& alpn() const = 0;
    /// Adjusts our transport parameters (unidirectional streams, for instance).
    virtual void transport_params(ngtcp2_transport_params& params) const = 0;
    /// The application error code of a clean close (HTTP/3: H3_NO_ERROR), so a peer closing
    /// with it ends the connection without error.
    virtual std::uint64_t no_error_code() const = 0;
    /// The code for a failure of our own (HTTP/3: H3_INTERNAL_ERROR).
    virtual std::uint64_t internal_error_code() const = 0;
    /// A name for an application error code in messages ("H3_NO_ERROR").
    virtual std::string error_name(std::uint64_t code) const = 0;

    /// The handshake completed (service pass). Returns 0, or an ngtcp2 error after
    /// set_pending_close.
    virtual int on_established(ngtcp2_conn* conn) = 0;
    /// Inside ngtcp2: bytes of stream `id` (any direction type), in order.
    virtual int on_stream_data(ngtcp2_conn* conn, std::int64_t id, const std::uint8_t* data,
                               std::size_t len, bool fin) = 0;
    /// Inside ngtcp2: the peer acknowledged `len` more bytes of stream `id`.
    virtual int on_acked(std::int64_t id, std::uint64_t len) = 0;
    /// Inside ngtcp2: stream `id` is closed both ways (code: the application error, or the
    /// no-error code when none was given).
    virtual int on_stream_close(std::int64_t id, std::uint64_t code) = 0;
    /// Inside ngtcp2: the peer reset stream `id` (RESET_STREAM) or asked us to stop sending
    /// on it (STOP_SENDING).
    virtual int on_stream_reset(std::int64_t id, std::uint64_t code) = 0;
    virtual int on_stop_sending(std::int64_t id, std::uint64_t code) = 0;
    /// Inside ngtcp2: more flow-control credit on stream `id`.
    virtual int on_extend_max_stream_data(std::int64_t id) = 0;
    /// Inside ngtcp2 (server): the client may now open this many bidirectional streams.
    virtual void on_extend_max_remote_streams_bidi(std::uint64_t max) = 0;

    /// Writing: the next bytes to put in a packet. Sets `id` (-1: nothing) and `fin`; returns
    /// the number of vectors filled, or a negative value after set_pending_close.
    virtual long next_write(ngtcp2_conn* conn, std::int64_t& id, bool& fin, ngtcp2_vec* vec,
                            std::size_t veccnt) = 0;
    /// ngtcp2 took `n` bytes (and the FIN, when next_write asked for it and `fin_written`) of
    /// stream `id`. Returns 0, or negative after set_pending_close.
    virtual int wrote(std::int64_t id, std::size_t n, bool fin_written) = 0;
    /// Stream `id` cannot take more now (flow control), or never again (shut or gone).
    virtual void blocked(std::int64_t id) = 0;
    virtual void shut(std::int64_t id) = 0;

    /// Service pass: report what happened to the layer above.
    virtual void dispatch() = 0;
};

} // namespace post::plugins::quic
