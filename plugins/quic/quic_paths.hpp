// The network paths of one QUIC connection (RFC 9000 9, docs/quic.md "Migration"): each path is
// a lower datagram flow and the pair of addresses ngtcp2 knows it by. ngtcp2 keeps a copy of
// every path it was given (ngtcp2_path::user_data included) and, for each packet it writes,
// names the path to send it on; user_data carries the path's id here, never a pointer, so a
// path we already released is recognised and its packet dropped instead of followed.
//
// A connection starts with one path (the lower flow it was opened over). A client adds one when
// it migrates; a server adopts one when its client's packets arrive from a new address. Paths
// other than the one in use are released when ngtcp2 is done validating (or abandons them),
// and at most max_paths are kept (the oldest unused one goes first).
#pragma once

#include <utility>

#include <ngtcp2/ngtcp2.h>

#include <post/sdk.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace post::plugins::quic {

class quic_connection;

/// Kept per connection at once: the one in use, one being validated, the one it replaces and
/// one the peer probes.
inline constexpr std::size_t max_paths = 4;

struct quic_path {
    std::uint64_t id = 0; ///< In ngtcp2_path::user_data.
    std::shared_ptr<sdk::flow> lower;
    /// Forwards the lower flow's events with this path's id (the first path's events go to the
    /// connection itself).
    std::shared_ptr<sdk::flow_events> events;
    sockaddr_storage local{};
    sockaddr_storage remote{};
    bool trains = false;          ///< The lower flow has cap_segmented_send.
    bool ready = false;           ///< Its on_ready came (client paths).
    bool closed = false;          ///< Its on_closed came.
    bool close_requested = false; ///< We closed it.
    std::uint64_t next_send_id = 1;

    /// Addresses from the lower flow (`remote` when it knows none, as a server flow does).
    void set_addresses(const sdk::endpoint& l, const sdk::endpoint& r);
    /// The ngtcp2 view of this path (pointing into this object, which must stay put).
    ngtcp2_path view();
    bool same_addresses(const ngtcp2_path& p) const;
    /// Closes the lower flow once.
    void release();
};

/// A lower flow's events, for a path that is not the connection's first.
class quic_path_events final : public sdk::flow_events {
public:
    quic_path_events(std::weak_ptr<quic_connection> conn, std::uint64_t id)
        : conn_(std::move(conn))
        , id_(id) {}
    void on_ready() noexcept override;
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override;
    void on_sent(std::uint64_t) noexcept override {}
    void on_send_error(std::uint64_t, const sdk::flow_error&) noexcept override {}
    void on_closed(const sdk::flow_error& e) noexcept override;

private:
    std::weak_ptr<quic_connection> conn_;
    std::uint64_t id_;
};

/// sockaddr conversions shared by the connection and its paths.
void to_sockaddr(const sdk::endpoint& e, sockaddr_storage& out);
socklen_t length_of(const sockaddr_storage& a);
sdk::endpoint to_endpoint(const ngtcp2_addr& a);

} // namespace post::plugins::quic
