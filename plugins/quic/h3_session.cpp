#include "h3_session.hpp"

#include "quic_connection.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace post::plugins::quic {

namespace {

/// Fields that are properties of the connection in HTTP/1.1 and forbidden in HTTP/3 (RFC 9114
/// 4.2), or that this layer writes itself, or hints the kernel adds to every send.
bool passed_on(const std::string& name) {
    static const char* const dropped[] = {
        "host",       "content-length",   "transfer-encoding", "connection",
        "keep-alive", "proxy-connection", "upgrade",           "te",
        "ordered",    "reliable"};
    return std::none_of(std::begin(dropped), std::end(dropped),
                        [&](const char* d) { return name == d; });
}

bool is_token(const std::string& s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                      std::string_view::npos;
    });
}

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string hex(std::uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

nghttp3_nv make_nv(const std::string& name, const std::string& value) {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
            value.size(), NGHTTP3_NV_FLAG_NONE};
}

/// Adds the fields of `props` (not pseudo-headers, not the dropped ones) to `out`, one field
/// line per value of set-cookie. Returns an error text for a field that cannot be sent.
std::string add_fields(const std::map<std::string, std::string>& props,
                       std::vector<std::pair<std::string, std::string>>& out) {
    for (const auto& [raw, value] : props) {
        if (!raw.empty() && raw[0] == ':') continue;
        const auto name = lower(raw);
        if (!passed_on(name)) continue;
        if (!is_token(name)) return "field name '" + raw + "' is not a token";
        auto check = [&](const std::string& v) {
            return nghttp3_check_header_value(reinterpret_cast<const std::uint8_t*>(v.data()),
                                              v.size()) != 0;
        };
        if (name == "set-cookie") {
            std::size_t at = 0;
            while (at <= value.size()) {
                const auto end = std::min(value.find('\n', at), value.size());
                auto line = value.substr(at, end - at);
                if (!check(line)) return "the value of field '" + raw + "' is not valid";
                out.emplace_back(name, std::move(line));
                at = end + 1;
            }
            continue;
        }
        if (!check(value)) return "the value of field '" + raw + "' is not valid (CR, LF or NUL)";
        out.emplace_back(name, value);
    }
    return {};
}

/// Server: requests handed up and not yet answered, beyond what the stream limit keeps in check
/// (docs/http.md "Bounds and errors").
constexpr std::size_t max_unanswered = 4096;

const std::string* find(const std::map<std::string, std::string>& m, const char* key) {
    auto it = m.find(key);
    return it == m.end() ? nullptr : &it->second;
}

} // namespace

h3_session::h3_session(quic_connection& conn, sdk::role side, std::string default_authority,
                       h3_limits limits)
    : conn_(conn)
    , side_(side)
    , default_authority_(std::move(default_authority))
    , limits_(limits) {}

h3_session::~h3_session() {
    if (h3_) nghttp3_conn_del(h3_);
}

void h3_session::transport_params(ngtcp2_transport_params& params) const {
    // The peer's control stream and QPACK encoder and decoder streams (RFC 9114 6.2); we never
    // ask for server push, so no push streams.
    params.initial_max_streams_uni = 3;
    params.initial_max_stream_data_uni = std::max<std::uint64_t>(
        params.initial_max_stream_data_uni, params.initial_max_stream_data_bidi_local);
}

std::string h3_session::error_name(std::uint64_t code) const {
    static const char* const names[] = {"H3_NO_ERROR",
                                        "H3_GENERAL_PROTOCOL_ERROR",
                                        "H3_INTERNAL_ERROR",
                                        "H3_STREAM_CREATION_ERROR",
                                        "H3_CLOSED_CRITICAL_STREAM",
                                        "H3_FRAME_UNEXPECTED",
                                        "H3_FRAME_ERROR",
                                        "H3_EXCESSIVE_LOAD",
                                        "H3_ID_ERROR",
                                        "H3_SETTINGS_ERROR",
                                        "H3_MISSING_SETTINGS",
                                        "H3_REQUEST_REJECTED",
                                        "H3_REQUEST_CANCELLED",
                                        "H3_REQUEST_INCOMPLETE",
                                        "H3_MESSAGE_ERROR",
                                        "H3_CONNECT_ERROR",
                                        "H3_VERSION_FALLBACK"};
    if (code >= 0x100 && code < 0x100 + std::size(names)) return names[code - 0x100];
    if (code >= 0x200 && code <= 0x2ff) return "QPACK error " + hex(code);
    return "application error " + hex(code);
}

// ---- from the layer above ----------------------------------------------------------------

void h3_session::refuse(std::uint64_t id, std::errc code, std::string why) {
    send_errors_.emplace_back(id, sdk::flow_error{std::make_error_code(code), "h3: " + why});
    conn_.schedule();
}

void h3_session::send(sdk::byte_buffer data, const sdk::send_meta& meta) {
    if (aborted_) return;
    if (ended_) return refuse(meta.id, std::errc::broken_pipe, "the connection has ended");
    if (close_requested_) return refuse(meta.id, std::errc::not_connected, "the flow is closing");
    if (data.size() > limits_.max_body)
        return refuse(meta.id, std::errc::message_size,
                      "body of " + std::to_string(data.size()) +
                          " bytes exceeds max-message-size " + std::to_string(limits_.max_body));
    if (!client()) return send_response(std::move(data), meta);
    if (goaway_)
        return refuse(meta.id, std::errc::connection_aborted,
                      "the server is shutting the connection down (GOAWAY)");
    const auto& p = meta.properties;
    out_request r;
    r.id = meta.id;
    const auto* m = find(p, ":method");
    const std::string method = m ? *m : (data.empty() ? "GET" : "POST");
    if (!is_token(method))
        return refuse(meta.id, std::errc::invalid_argument,
                      "method '" + method + "' is not a token");
    std::string path = find(p, ":path") ? *find(p, ":path") : "/";
    if (path.empty()) path = "/";
    if (std::any_of(path.begin(), path.end(),
                    [](unsigned char c) { return c <= 0x20 || c == 0x7f; }))
        return refuse(meta.id, std::errc::invalid_argument,
                      "the path has spaces or control characters");
    const std::string authority = find(p, ":authority") ? *find(p, ":authority")
                                  : find(p, "host")     ? *find(p, "host")
                                                        : default_authority_;
    const std::string scheme = find(p, ":scheme") ? *find(p, ":scheme") : "https";
    for (const std::string* v : {&authority, &scheme})
        if (nghttp3_check_header_value(reinterpret_cast<const std::uint8_t*>(v->data()),
                                       v->size()) == 0 ||
            v->find(' ') != std::string::npos)
            return refuse(meta.id, std::errc::invalid_argument,
                          "':authority' or ':scheme' is not valid");
    r.fields = {
        {":method", method}, {":scheme", scheme}, {":authority", authority}, {":path", path}};
    if (auto why = add_fields(p, r.fields); !why.empty())
        return refuse(meta.id, std::errc::invalid_argument, why);
    const bool bodiless_method = method == "GET" || method == "HEAD" || method == "OPTIONS" ||
                                 method == "DELETE" || method == "TRACE";
    if (!data.empty() || !bodiless_method)
        r.fields.emplace_back("content-length", std::to_string(data.size()));
    r.body = std::move(data);
    queued_bytes_ += r.body.size();
    waiting_.push_back(std::move(r));
    conn_.schedule();
}

void h3_session::send_response(sdk::byte_buffer data, const sdk::send_meta& meta) {
    if (unanswered_.empty())
        return refuse(meta.id, std::errc::protocol_error, "no request to answer");
    const auto id = unanswered_.front();
    const auto& p = meta.properties;
    const std::string status = find(p, ":status") ? *find(p, ":status") : "200";
    if (status.size() != 3 || !std::all_of(status.begin(), status.end(), ::isdigit) ||
        status < "200" || status > "599")
        return refuse(meta.id, std::errc::invalid_argument,
                      "':status' must be a final status, 200 to 599, got '" + status + "'");
    field_list fields{{":status", status}};
    if (auto why = add_fields(p, fields); !why.empty())
        return refuse(meta.id, std::errc::invalid_argument, why);
    unanswered_.pop_front();
    auto* st = state_of(id);
    if (!st || st->closed || !h3_) {
        streams_.erase(id);
        return refuse(meta.id, std::errc::connection_reset,
                      "the client cancelled request stream " + std::to_string(id));
    }
    const bool head = st->head;
    if (status != "204" && status != "304")
        fields.emplace_back("content-length", std::to_string(data.size()));
    if (head || status == "204" || status == "304") data.clear();
    std::vector<nghttp3_nv> nva;
    for (const auto& [n, v] : fields)
        nva.push_back(make_nv(n, v));
    st->out = std::move(data);
    st->upper_id = meta.id;
    st->answered = true;
    nghttp3_data_reader dr{&cb_read_data};
    if (int rv = nghttp3_conn_submit_response(h3_, id, nva.data(), nva.size(),
                                              st->out.empty() ? nullptr : &dr);
        rv != 0) {
        st->upper_id.reset();
        return refuse(meta.id, std::errc::io_error,
                      std::string("cannot answer the request: ") + nghttp3_strerror(rv));
    }
    queued_bytes_ += st->out.size();
    conn_.schedule();
}

void h3_session::close() {
    if (close_requested_ || aborted_) return;
    close_requested_ = true;
    conn_.schedule();
}

void h3_session::abort() {
    if (aborted_) return;
    aborted_ = true;
    events_.reset();
    waiting_.clear();
    if (!ended_)
        conn_.request_close(
            {std::make_error_code(std::errc::connection_aborted), "h3: the connection was aborted"},
            NGHTTP3_H3_REQUEST_CANCELLED, "aborted");
}

void h3_session::connection_ended(const sdk::flow_error& e) {
    if (ended_) return;
    quic_ = nullptr;
    if (e) {
        ended_ = e;
    } else if (client() && (!order_.empty() || !waiting_.empty())) {
        ended_ =
            sdk::flow_error{std::make_error_code(std::errc::connection_aborted),
                            "h3: the server closed the connection before answering " +
                                std::to_string(order_.size() + waiting_.size()) + " request(s)"};
    } else {
        ended_ = sdk::flow_error{};
    }
    dispatch();
}

// ---- nghttp3 set-up -------------------------------------------------------------------------

int h3_session::start(ngtcp2_conn* conn) {
    quic_ = conn;
    if (h3_) return 0;
    nghttp3_callbacks cb{};
    cb.acked_stream_data = &cb_acked;
    cb.stream_close = &cb_stream_close;
    cb.recv_data = &cb_recv_data;
    cb.deferred_consume = &cb_deferred_consume;
    cb.begin_headers = &cb_begin_headers;
    cb.recv_header = &cb_recv_header;
    cb.end_headers = &cb_end_headers;
    cb.begin_trailers = &cb_begin_headers;
    cb.recv_trailer = &cb_recv_header;
    cb.end_trailers = &cb_end_headers;
    cb.stop_sending = &cb_stop_sending;
    cb.end_stream = &cb_end_stream;
    cb.reset_stream = &cb_reset_stream;
    cb.shutdown = &cb_shutdown;
    nghttp3_settings s;
    nghttp3_settings_default(&s);
    s.max_field_section_size = limits_.max_header;
    // No QPACK dynamic table either way: bounded memory, no blocked streams (docs/http.md).
    s.qpack_max_dtable_capacity = 0;
    s.qpack_encoder_max_dtable_capacity = 0;
    s.qpack_blocked_streams = 0;
    const int rv = client() ? nghttp3_conn_client_new(&h3_, &cb, &s, nullptr, this)
                            : nghttp3_conn_server_new(&h3_, &cb, &s, nullptr, this);
    if (rv != 0) {
        h3_ = nullptr;
        return fail(std::errc::not_enough_memory, NGHTTP3_H3_INTERNAL_ERROR,
                    std::string("cannot create the HTTP/3 session: ") + nghttp3_strerror(rv));
    }
    if (!client()) {
        const auto* local = ngtcp2_conn_get_local_transport_params(conn);
        nghttp3_conn_set_max_client_streams_bidi(h3_, local->initial_max_streams_bidi);
    }
    std::int64_t control = -1, qenc = -1, qdec = -1;
    if (ngtcp2_conn_open_uni_stream(conn, &control, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn, &qenc, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn, &qdec, nullptr) != 0)
        return fail(std::errc::protocol_error, NGHTTP3_H3_STREAM_CREATION_ERROR,
                    "the peer allows fewer than 3 unidirectional streams (HTTP/3 needs its "
                    "control and QPACK streams)");
    if (nghttp3_conn_bind_control_stream(h3_, control) != 0 ||
        nghttp3_conn_bind_qpack_streams(h3_, qenc, qdec) != 0)
        return fail(std::errc::protocol_error, NGHTTP3_H3_INTERNAL_ERROR,
                    "cannot bind the HTTP/3 control streams");
    return 0;
}

int h3_session::fail(std::errc code, std::uint64_t h3_code, const std::string& why) {
    conn_.set_pending_close({std::make_error_code(code), "h3: " + why}, h3_code, why);
    return NGTCP2_ERR_CALLBACK_FAILURE;
}

void h3_session::consumed(std::int64_t id, std::size_t n) {
    if (!quic_ || n == 0) return;
    ngtcp2_conn_extend_max_stream_offset(quic_, id, n);
    ngtcp2_conn_extend_max_offset(quic_, n);
}

h3_session::stream_state* h3_session::state_of(std::int64_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
}

// ---- quic_application ---------------------------------------------------------------------

int h3_session::on_established(ngtcp2_conn* conn) {
    if (int rv = start(conn); rv != 0) return rv;
    established_ = true;
    return 0;
}

int h3_session::on_stream_data(ngtcp2_conn* conn, std::int64_t id, const std::uint8_t* data,
                               std::size_t len, bool fin) {
    try {
        if (int rv = start(conn); rv != 0) return rv;
        const auto n = nghttp3_conn_read_stream(h3_, id, data, len, fin ? 1 : 0);
        if (n < 0) {
            const int rv = static_cast<int>(n);
            return fail(std::errc::protocol_error, nghttp3_err_infer_quic_app_error_code(rv),
                        "malformed HTTP/3 from " + conn_.peer_name() + ": " + nghttp3_strerror(rv));
        }
        consumed(id, static_cast<std::size_t>(n));
        return 0;
    } catch (...) {
        return fail(std::errc::not_enough_memory, NGHTTP3_H3_INTERNAL_ERROR,
                    "out of memory while receiving");
    }
}

int h3_session::on_acked(std::int64_t id, std::uint64_t len) {
    if (!h3_) return 0;
    if (int rv = nghttp3_conn_add_ack_offset(h3_, id, len); rv != 0)
        return fail(std::errc::protocol_error, NGHTTP3_H3_INTERNAL_ERROR,
                    std::string("acknowledgement: ") + nghttp3_strerror(rv));
    return 0;
}

int h3_session::on_stream_close(std::int64_t id, std::uint64_t code) {
    if (!h3_) return 0;
    const int rv = nghttp3_conn_close_stream(h3_, id, code);
    if (rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND) return 0;
    return fail(std::errc::protocol_error, nghttp3_err_infer_quic_app_error_code(rv),
                "stream " + std::to_string(id) + " closed: " + nghttp3_strerror(rv));
}

int h3_session::on_stream_reset(std::int64_t id, std::uint64_t) {
    if (h3_) nghttp3_conn_shutdown_stream_read(h3_, id);
    return 0;
}

int h3_session::on_stop_sending(std::int64_t id, std::uint64_t) {
    if (h3_) nghttp3_conn_shutdown_stream_read(h3_, id);
    return 0;
}

int h3_session::on_extend_max_stream_data(std::int64_t id) {
    if (!h3_) return 0;
    if (int rv = nghttp3_conn_unblock_stream(h3_, id);
        rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND)
        return fail(std::errc::protocol_error, NGHTTP3_H3_INTERNAL_ERROR, nghttp3_strerror(rv));
    return 0;
}

void h3_session::on_extend_max_remote_streams_bidi(std::uint64_t max) {
    if (h3_ && !client()) nghttp3_conn_set_max_client_streams_bidi(h3_, max);
}

int h3_session::submit_requests(ngtcp2_conn* conn) {
    while (!waiting_.empty()) {
        std::int64_t id = -1;
        const int rv = ngtcp2_conn_open_bidi_stream(conn, &id, nullptr);
        if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return 0; // MAX_STREAMS will bring credit
        if (rv != 0) {
            conn_.set_pending_close(
                {std::make_error_code(std::errc::no_stream_resources),
                 std::string("h3: cannot open a request stream: ") + ngtcp2_strerror(rv)},
                NGHTTP3_H3_INTERNAL_ERROR, "internal error");
            return -1;
        }
        auto r = std::move(waiting_.front());
        waiting_.pop_front();
        auto st = std::make_unique<stream_state>();
        st->id = id;
        st->out = std::move(r.body);
        st->upper_id = r.id;
        std::vector<nghttp3_nv> nva;
        for (const auto& [n, v] : r.fields)
            nva.push_back(make_nv(n, v));
        nghttp3_data_reader dr{&cb_read_data};
        auto* raw = st.get();
        streams_[id] = std::move(st);
        order_.push_back(id);
        if (int s = nghttp3_conn_submit_request(h3_, id, nva.data(), nva.size(),
                                                raw->out.empty() ? nullptr : &dr, raw);
            s != 0) {
            conn_.set_pending_close(
                {std::make_error_code(std::errc::io_error),
                 std::string("h3: cannot submit a request: ") + nghttp3_strerror(s)},
                NGHTTP3_H3_INTERNAL_ERROR, "internal error");
            return -1;
        }
    }
    return 0;
}

long h3_session::next_write(ngtcp2_conn* conn, std::int64_t& id, bool& fin, ngtcp2_vec* vec,
                            std::size_t veccnt) {
    id = -1;
    fin = false;
    if (!h3_) return 0;
    try {
        if (client() && established_ && submit_requests(conn) != 0) return -1;
    } catch (...) {
        conn_.set_pending_close(
            {std::make_error_code(std::errc::not_enough_memory), "h3: out of memory while sending"},
            NGHTTP3_H3_INTERNAL_ERROR, "internal error");
        return -1;
    }
    int f = 0;
    static_assert(sizeof(nghttp3_vec) == sizeof(ngtcp2_vec));
    const auto n =
        nghttp3_conn_writev_stream(h3_, &id, &f, reinterpret_cast<nghttp3_vec*>(vec), veccnt);
    if (n < 0) {
        conn_.set_pending_close(
            {std::make_error_code(std::errc::protocol_error),
             std::string("h3: cannot write: ") + nghttp3_strerror(static_cast<int>(n))},
            NGHTTP3_H3_INTERNAL_ERROR, "internal error");
        return -1;
    }
    fin = f != 0;
    return static_cast<long>(n);
}

int h3_session::wrote(std::int64_t id, std::size_t n, bool fin_written) {
    if (!h3_) return 0;
    if (int rv = nghttp3_conn_add_write_offset(h3_, id, n); rv != 0) {
        conn_.set_pending_close({std::make_error_code(std::errc::protocol_error),
                                 std::string("h3: ") + nghttp3_strerror(rv)},
                                NGHTTP3_H3_INTERNAL_ERROR, "internal error");
        return -1;
    }
    if (fin_written)
        if (auto* st = state_of(id); st && st->upper_id) {
            // The message's last byte is in a packet now (docs/http.md: on_sent).
            try {
                sent_.push_back(*st->upper_id);
            } catch (...) {
            }
            queued_bytes_ -= std::min(queued_bytes_, st->out.size());
            st->upper_id.reset();
        }
    return 0;
}

void h3_session::blocked(std::int64_t id) {
    if (h3_) nghttp3_conn_block_stream(h3_, id);
}

void h3_session::shut(std::int64_t id) {
    if (h3_) nghttp3_conn_shutdown_stream_write(h3_, id);
}

// ---- events upward ------------------------------------------------------------------------

void h3_session::finish(const sdk::flow_error& e) {
    if (!ended_) ended_ = e;
}

void h3_session::dispatch() {
    if (aborted_ || end_reported_) return;
    auto ev = events_.lock();
    if (!ev) return;
    if (established_ && !ready_reported_ && !ended_) {
        ready_reported_ = true;
        ev->on_ready();
    }
    for (auto& [id, e] : std::exchange(send_errors_, {}))
        ev->on_send_error(id, e);
    for (auto id : std::exchange(sent_, {}))
        ev->on_sent(id);
    auto deliver = [&](stream_state& st) {
        if (auto m = st.fields.find(":method"); m != st.fields.end()) st.head = m->second == "HEAD";
        sdk::receive_meta meta;
        meta.properties = std::move(st.fields);
        st.delivered = true;
        ev->on_received(std::move(st.body), meta);
    };
    if (!ready_reported_) {
        // Nothing goes up before the flow is ready (a request in 0.5-RTT waits for it).
    } else if (client()) {
        while (!order_.empty() && !aborted_) {
            auto* st = state_of(order_.front());
            if (!st) {
                order_.pop_front();
                continue;
            }
            if (!st->complete) {
                if (!st->closed) break;
                // Reset by the server, or closed before the response ended: HTTP/1.1 would
                // have lost the connection; the flow ends so the application hears of it.
                finish({std::make_error_code(std::errc::connection_reset),
                        "h3: the server reset request stream " + std::to_string(st->id) + " (" +
                            error_name(st->close_code) + ") before the response was complete"});
                break;
            }
            deliver(*st);
            order_.pop_front();
            if (st->closed) streams_.erase(st->id);
        }
    } else {
        while (!arrived_.empty() && !aborted_) {
            const auto id = arrived_.front();
            arrived_.pop_front();
            auto* st = state_of(id);
            if (!st || st->closed) continue;
            unanswered_.push_back(id);
            deliver(*st);
        }
    }
    if (aborted_) return;
    if (close_requested_ && !close_sent_ && !ended_) {
        const bool idle =
            client() ? order_.empty() && waiting_.empty()
                     : unanswered_.empty() &&
                           std::none_of(streams_.begin(), streams_.end(), [](const auto& s) {
                               return s.second->answered && !s.second->closed;
                           });
        if (idle) {
            close_sent_ = true;
            conn_.request_close({}, NGHTTP3_H3_NO_ERROR, "");
        }
    }
    if (ended_ && !end_reported_) {
        end_reported_ = true;
        const auto e = *ended_;
        for (auto& r : std::exchange(waiting_, {}))
            ev->on_send_error(r.id,
                              e ? e
                                : sdk::flow_error{std::make_error_code(std::errc::broken_pipe),
                                                  "h3: the connection ended before this "
                                                  "request was sent"});
        events_.reset();
        ev->on_closed(e);
    }
}

// ---- nghttp3 callbacks --------------------------------------------------------------------

int h3_session::cb_acked(nghttp3_conn*, std::int64_t, std::uint64_t, void*, void*) {
    return 0; // bodies are kept until their stream closes
}

int h3_session::cb_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user,
                                void*) {
    auto* self = static_cast<h3_session*>(user);
    auto* st = self->state_of(id);
    if (!st) return 0;
    st->closed = true;
    st->close_code = code;
    st->out.clear();
    if (self->client()) {
        if (st->delivered || (!st->complete && std::find(self->order_.begin(), self->order_.end(),
                                                         id) == self->order_.end()))
            self->streams_.erase(id);
        return 0;
    }
    // Server: a request stream is done once its response went out (or it was cancelled).
    const bool waiting = std::find(self->unanswered_.begin(), self->unanswered_.end(), id) !=
                         self->unanswered_.end();
    if (!waiting) {
        std::erase(self->arrived_, id);
        self->streams_.erase(id);
        return 0;
    }
    // Handed up, not answered, and cancelled by the client: kept so that answers still go to
    // the oldest request, but its stream no longer counts against MAX_STREAMS, so a client
    // cancelling requests faster than the application answers could grow this without end.
    if (self->unanswered_.size() > max_unanswered) {
        self->fail(std::errc::resource_unavailable_try_again, NGHTTP3_H3_EXCESSIVE_LOAD,
                   std::to_string(self->unanswered_.size()) +
                       " requests handed up and not answered, most of them cancelled by " +
                       self->conn_.peer_name());
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

int h3_session::cb_recv_data(nghttp3_conn*, std::int64_t id, const std::uint8_t* data,
                             std::size_t len, void* user, void*) {
    auto* self = static_cast<h3_session*>(user);
    auto* st = self->state_of(id);
    if (!st) return 0;
    if (st->body.size() + len > self->limits_.max_body) {
        self->fail(std::errc::message_size, NGHTTP3_H3_EXCESSIVE_LOAD,
                   "body from " + self->conn_.peer_name() + " exceeds max-message-size " +
                       std::to_string(self->limits_.max_body) + " on stream " + std::to_string(id));
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    try {
        const auto* b = reinterpret_cast<const std::byte*>(data);
        st->body.insert(st->body.end(), b, b + len);
    } catch (...) {
        self->fail(std::errc::not_enough_memory, NGHTTP3_H3_INTERNAL_ERROR, "out of memory");
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    self->consumed(id, len); // DATA payload is not counted in read_stream's return
    return 0;
}

int h3_session::cb_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* user,
                                    void*) {
    static_cast<h3_session*>(user)->consumed(id, n);
    return 0;
}

int h3_session::cb_begin_headers(nghttp3_conn*, std::int64_t id, void* user, void*) {
    auto* self = static_cast<h3_session*>(user);
    try {
        auto* st = self->state_of(id);
        if (!st) {
            if (self->client()) return 0; // not a request of ours (a push: never asked for)
            auto fresh = std::make_unique<stream_state>();
            fresh->id = id;
            st = fresh.get();
            self->streams_[id] = std::move(fresh);
            nghttp3_conn_set_stream_user_data(self->h3_, id, st);
        }
        st->header_bytes = 0;
        return 0;
    } catch (...) {
        self->fail(std::errc::not_enough_memory, NGHTTP3_H3_INTERNAL_ERROR, "out of memory");
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
}

int h3_session::cb_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name,
                               nghttp3_rcbuf* value, std::uint8_t, void* user, void*) {
    auto* self = static_cast<h3_session*>(user);
    auto* st = self->state_of(id);
    if (!st) return 0;
    const auto n = nghttp3_rcbuf_get_buf(name);
    const auto v = nghttp3_rcbuf_get_buf(value);
    // RFC 9114 4.2.2: a field counts its name, its value and 32 bytes.
    st->header_bytes += n.len + v.len + 32;
    if (st->header_bytes > self->limits_.max_header) {
        self->fail(std::errc::message_size, NGHTTP3_H3_EXCESSIVE_LOAD,
                   "header section from " + self->conn_.peer_name() + " exceeds max-header-size " +
                       std::to_string(self->limits_.max_header) + " on stream " +
                       std::to_string(id));
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    try {
        std::string key(reinterpret_cast<const char*>(n.base), n.len);
        std::string val(reinterpret_cast<const char*>(v.base), v.len);
        // A body announced over the bound is refused before any of it arrives (nghttp3 has
        // checked that the value is a number).
        if (key == "content-length" &&
            (val.size() > 19 || std::strtoull(val.c_str(), nullptr, 10) > self->limits_.max_body)) {
            self->fail(std::errc::message_size, NGHTTP3_H3_EXCESSIVE_LOAD,
                       "body of " + val + " bytes from " + self->conn_.peer_name() +
                           " exceeds max-message-size " + std::to_string(self->limits_.max_body) +
                           " on stream " + std::to_string(id));
            return NGHTTP3_ERR_CALLBACK_FAILURE;
        }
        // Room for the announced body at once (within max-message-size, checked above): growing
        // the buffer as DATA arrives copied a 15 MB body about twice more. Reserved pages are
        // not touched until the body arrives.
        if (key == "content-length")
            st->body.reserve(static_cast<std::size_t>(std::strtoull(val.c_str(), nullptr, 10)));
        auto [it, fresh] = st->fields.try_emplace(std::move(key), val);
        if (!fresh) {
            // docs/http.md: repeated fields join with ", "; set-cookie with a line break; and
            // cookie, which HTTP/3 may split, with "; " (RFC 9114 4.2.1).
            const char* sep = it->first == "set-cookie" ? "\n"
                              : it->first == "cookie"   ? "; "
                                                        : ", ";
            it->second += sep;
            it->second += val;
        }
        return 0;
    } catch (...) {
        self->fail(std::errc::not_enough_memory, NGHTTP3_H3_INTERNAL_ERROR, "out of memory");
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
}

int h3_session::cb_end_headers(nghttp3_conn*, std::int64_t id, int, void* user, void*) {
    auto* self = static_cast<h3_session*>(user);
    auto* st = self->state_of(id);
    if (!st || !self->client()) return 0;
    // Interim responses (1xx) are not delivered (docs/http.md): the final one replaces them.
    if (auto it = st->fields.find(":status");
        it != st->fields.end() && !it->second.empty() && it->second[0] == '1')
        st->fields.clear();
    return 0;
}

int h3_session::cb_end_stream(nghttp3_conn*, std::int64_t id, void* user, void*) {
    auto* self = static_cast<h3_session*>(user);
    auto* st = self->state_of(id);
    if (!st) return 0;
    st->complete = true;
    if (!self->client()) {
        try {
            self->arrived_.push_back(id);
        } catch (...) {
            self->fail(std::errc::not_enough_memory, NGHTTP3_H3_INTERNAL_ERROR, "out of memory");
            return NGHTTP3_ERR_CALLBACK_FAILURE;
        }
    }
    return 0;
}

int h3_session::cb_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user,
                                void*) {
    auto* self = static_cast<h3_session*>(user);
    if (self->quic_) ngtcp2_conn_shutdown_stream_read(self->quic_, id, code);
    return 0;
}

int h3_session::cb_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user,
                                void*) {
    auto* self = static_cast<h3_session*>(user);
    if (self->quic_) ngtcp2_conn_shutdown_stream_write(self->quic_, id, code);
    return 0;
}

int h3_session::cb_shutdown(nghttp3_conn*, std::int64_t, void* user) {
    static_cast<h3_session*>(user)->goaway_ = true;
    return 0;
}

nghttp3_ssize h3_session::cb_read_data(nghttp3_conn*, std::int64_t, nghttp3_vec* vec,
                                       std::size_t veccnt, std::uint32_t* flags, void*,
                                       void* stream_user) {
    auto* st = static_cast<stream_state*>(stream_user);
    *flags |= NGHTTP3_DATA_FLAG_EOF;
    if (!st || st->out_given || st->out.empty() || veccnt == 0) return 0;
    st->out_given = true;
    vec[0].base = reinterpret_cast<std::uint8_t*>(st->out.data());
    vec[0].len = st->out.size();
    return 1;
}

} // namespace post::plugins::quic
