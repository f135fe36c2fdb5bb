// The interface between adjacent protocol layers: a flow is one instance of a layer's service
// (a TCP connection, a TLS session over it, one QUIC stream...), seen from the layer above.
#pragma once

#include <post/sdk/edge.hpp>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace post::sdk {

using byte_buffer = std::vector<std::byte>;

struct endpoint {
    boost::asio::ip::address address;
    std::uint16_t port = 0;

    std::string to_string() const {
        return address.is_v6() ? "[" + address.to_string() + "]:" + std::to_string(port)
                               : address.to_string() + ":" + std::to_string(port);
    }
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// An error crossing a layer boundary: a code for programs and a reason for people.
/// Empty (no code) means "no error"; `on_closed` with an empty error is a clean close.
struct flow_error {
    std::error_code code;
    std::string reason;

    explicit operator bool() const noexcept { return static_cast<bool>(code); }
};

/// Per-message metadata passed down with every send. Stream layers see it for the bytes they
/// carry; message and datagram layers apply it to the unit.
struct send_meta {
    std::uint64_t id = 0; ///< Reported back in on_sent / on_send_error.
    int niceness = 0;     ///< 0 = most urgent.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    bool immediate = false;
    bool idempotent = false;
    std::map<std::string, std::string> properties;
    /// ABI 3.0. Non-zero: `data` is a train of datagrams of this many bytes each (the last may
    /// be shorter), to be sent as separate datagrams in one go (UDP GSO). Only sent to a flow
    /// whose info() has cap_segmented_send; `id` is reported once for the whole train.
    std::uint16_t segment_size = 0;
};

struct receive_meta {
    std::optional<endpoint> from; ///< For datagram flows shared by several remotes.
    /// A part of a larger message (explicit opt-in only): parts of one message share `unit`
    /// and arrive in order; `end_of_message` marks the last. Parts of different messages may
    /// interleave.
    bool partial = false;
    bool end_of_message = true;
    std::uint64_t unit = 0;
    /// When the sender's lifetime for this message runs out, as far as this side can tell. A
    /// layer that sets it hands the message up only while it is on time (judged as it hands it
    /// up); the kernel delivers it at once, or drops it if it would wait for the application
    /// past this point.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    /// ABI 3.0. Properties of the received unit that the layer learnt from the wire (HTTP
    /// pseudo-headers and header fields, for example); the kernel hands them to the
    /// application as the message's properties().extra.
    std::map<std::string, std::string> properties;
};

/// What a flow can report and do for the units sent on it (flow_info::capabilities).
enum flow_capability : std::uint32_t {
    /// on_acked: the peer's application side has received the unit.
    cap_acked = 1u << 0,
    /// A unit whose deadline passes while it is being sent stops mid-way (on_expired).
    cap_expires_in_flight = 1u << 1,
    /// Units are interleaved by niceness: an urgent one overtakes one already in progress, so
    /// the kernel may hand down everything at once.
    cap_interleaves = 1u << 2,
    /// The flow delivers ordered and reliably (what was on_sent first is received first).
    cap_ordered = 1u << 3,
    /// Can deliver parts of very large messages (receive_meta::partial) when configured.
    cap_partial = 1u << 4,
    /// ABI 2.1. Reported before on_ready: sends marked `idempotent` are accepted now and may
    /// travel as early data (TLS 1.3 0-RTT, TCP Fast Open). If the peer refuses them, the flow
    /// sends them again after the handshake itself, so nothing is lost or duplicated. Sends
    /// that are not idempotent still wait for on_ready (the kernel holds them).
    cap_early_data = 1u << 5,
    /// ABI 3.0. A datagram flow that accepts send_meta::segment_size (a train of datagrams in
    /// one send).
    cap_segmented_send = 1u << 6,
    /// ABI 4.0. flow::migrate can move this flow's connection to another local address (a QUIC
    /// client connection). The kernel moves such carriers when their local address goes away.
    cap_migrates = 1u << 7,
    /// ABI 4.1. The flow only sends: it will never deliver anything (a QUIC unidirectional
    /// stream this side opened).
    cap_send_only = 1u << 8,
    /// ABI 4.1. The flow only receives: send() fails every unit with
    /// std::errc::operation_not_permitted (a QUIC unidirectional stream the peer opened).
    cap_receive_only = 1u << 9,
    /// ABI 4.3. The flow implements flow::release (plugins built before 4.3 do not: their
    /// flows never set this bit, and release must not be called on them).
    cap_release = 1u << 10,
};

struct flow_info {
    edge kind = edge::none;
    endpoint local;
    endpoint remote;
    std::size_t max_message_size = 0; ///< Largest unit a send accepts; 0 = unlimited.
    std::uint32_t capabilities = 0;   ///< flow_capability bits.
};

class flow;

/// Implemented by whoever sits above a flow (the next layer or the kernel); called by the flow,
/// always on the context's executor. Handlers must not throw.
class flow_events {
public:
    virtual ~flow_events() = default;
    virtual void on_ready() noexcept = 0;
    /// Stream flows deliver byte chunks; datagram and message flows deliver whole units.
    virtual void on_received(byte_buffer data, const receive_meta& meta) noexcept = 0;
    /// The unit sent with this id has left this flow (handed to the layer below or the OS).
    virtual void on_sent(std::uint64_t id) noexcept = 0;
    virtual void on_send_error(std::uint64_t id, const flow_error& e) noexcept = 0;
    /// The unit's deadline passed before it was completely sent; it was dropped (and a peer
    /// that had part of it discards that part). Ends the unit like on_sent or on_send_error.
    /// The default reports it as a send error with std::errc::timed_out.
    virtual void on_expired(std::uint64_t id) noexcept;
    /// After on_sent, for flows with cap_acked: the peer's application side has the unit.
    /// Layers in the middle forward it.
    virtual void on_acked(std::uint64_t) noexcept {}
    /// The flow is finished. An empty error means it closed cleanly. Called at most once.
    virtual void on_closed(const flow_error& e) noexcept = 0;
    /// A multistreaming flow received a new peer-initiated flow (QUIC/SCTP stream). The default
    /// refuses it.
    virtual void on_incoming_flow(std::shared_ptr<flow> incoming) noexcept;
    /// ABI 4.0. The flow now runs over another network path (its info().local or remote
    /// changed): a connection migration, asked for with flow::migrate or done by the peer.
    /// Layers in the middle forward it. The default ignores it.
    virtual void on_path_changed() noexcept {}
};

class flow {
public:
    virtual ~flow() = default;

    /// Where events go. A weak reference: the layer above owns the layer below, never the
    /// reverse.
    virtual void set_events(std::weak_ptr<flow_events> events) noexcept = 0;
    /// Begin establishment (active) or, for an accepted flow, begin delivering data. Exactly one
    /// of on_ready or on_closed follows.
    virtual void start() noexcept = 0;
    /// Queue one unit (stream: bytes). Never blocks; completion is reported by on_sent.
    virtual void send(byte_buffer data, const send_meta& meta) noexcept = 0;
    /// Graceful close once queued data is sent; on_closed follows.
    virtual void close() noexcept = 0;
    /// Immediate close, dropping queued data. No further events are delivered.
    virtual void abort() noexcept = 0;
    virtual flow_info info() const noexcept = 0;
    /// Bytes accepted by send but not yet reported by on_sent.
    virtual std::size_t queued_bytes() const noexcept = 0;
    /// A new flow to the same peer over the same lower instance, for multistreaming layers.
    /// Others return nullptr, and the kernel opens a new stack instead.
    virtual std::shared_ptr<flow> fork() noexcept { return nullptr; }
    /// ABI 3.0. The transport's smoothed round-trip time to the peer (TCP_INFO, QUIC's RTT
    /// estimate), zero when unknown. Layers in the middle return their lower flow's. The framer
    /// uses it to bound a message's time in transit when it tells the peer its lifetime.
    virtual std::chrono::microseconds smoothed_rtt() const noexcept { return {}; }
    /// ABI 4.0. Move this flow's connection, with every flow that shares it (all streams of a
    /// QUIC connection), onto `new_lower`: a new flow of the layer below, not started, to the
    /// same remote from another local address (the kernel opens it; a plugin cannot open
    /// sockets of another layer). True: the layer took it, starts it and moves over once it is
    /// ready; each flow of the connection then reports on_path_changed. False, with `err`
    /// filled: nothing changed and `new_lower` is not used. Layers in the middle forward it to
    /// their lower flow if they can run over the moved connection. The default refuses with
    /// std::errc::operation_not_supported.
    virtual bool migrate(std::shared_ptr<flow> new_lower, flow_error& err) noexcept {
        (void)new_lower;
        err = {std::make_error_code(std::errc::operation_not_supported),
               "this layer cannot move its connection to another path"};
        return false;
    }
    /// ABI 4.3. close() for a layer above that has already ended the conversation with the
    /// peer in its own protocol (TLS: close_notify sent and received), so nothing the peer
    /// sends from now on is wanted. Queued data is still sent first, but the flow does not wait
    /// for the peer's end before it is done: a TCP flow closes its socket once the queue is
    /// written, without the half-close that waits for the peer's FIN (the operating system
    /// finishes the exchange). on_closed follows, as for close(). Call it only on a flow whose
    /// info() has cap_release: this is the last function of the vtable, missing from flows of
    /// plugins built before ABI 4.3.
    virtual void release() noexcept { close(); }
};

inline void flow_events::on_expired(std::uint64_t id) noexcept {
    on_send_error(id, {std::make_error_code(std::errc::timed_out), "message expired"});
}

inline void flow_events::on_incoming_flow(std::shared_ptr<flow> incoming) noexcept {
    if (incoming) incoming->abort();
}

} // namespace post::sdk
