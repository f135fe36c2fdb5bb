// Which server connection owns a connection ID, for the whole process (docs/quic.md
// "Migration").
//
// On a server every new peer address is a fresh lower flow, wrapped by the kernel in a fresh
// connection object. When a client migrates (RFC 9000 9), its packets arrive that way, carrying
// one of the connection IDs the server issued. The fresh object looks the ID up here, before
// treating the packet as a stranger's (stateless reset), and hands its lower flow to the
// connection that owns the ID.
//
// Per process, not per layer instance: the IDs are 17 random bytes, and the owner checks that
// the new flow belongs to the socket it already uses. Thread-safe (contexts may run on several
// threads). Bounded: a connection registers at most max_ids_per_connection IDs at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace post::plugins::quic {

class quic_connection;

/// The length of every connection ID we issue (client and server). A short header carries no
/// length, so a fresh server flow decodes the DCID with it.
inline constexpr std::size_t cid_length = 17;

namespace cid_registry {

/// The most IDs one connection holds at once: our active_connection_id_limit (7) for the IDs
/// issued to the peer, plus the one of the handshake until it is retired.
inline constexpr std::size_t max_ids_per_connection = 8;

/// Records that `owner` uses `cid`. False when the ID is taken by another live connection.
bool add(const std::uint8_t* cid, std::size_t len, const std::weak_ptr<quic_connection>& owner);
/// Forgets `cid` if `owner` holds it.
void remove(const std::uint8_t* cid, std::size_t len, const quic_connection* owner);
/// The live connection that uses `cid`, or nullptr.
std::shared_ptr<quic_connection> find(const std::uint8_t* cid, std::size_t len);
/// IDs registered now (for tests).
std::size_t size();

} // namespace cid_registry
} // namespace post::plugins::quic
