// A BIO with datagram semantics for DTLS over a lower datagram flow. A memory BIO would merge
// what OpenSSL writes into one byte string and lose where one datagram ends; this one keeps
// every BIO_write (a record, or a flight of records packed up to the MTU) as its own datagram,
// and hands OpenSSL one received datagram per BIO_read, as a UDP socket would.
#pragma once

#include <openssl/bio.h>

#include <post/sdk.hpp>

#include <deque>
#include <vector>

namespace post::plugins::tls {

/// The datagrams between OpenSSL and the flow. Owned by the flow; the BIO points at it.
struct datagram_queue {
    std::deque<sdk::byte_buffer> in;   ///< Received, not yet read by OpenSSL.
    std::vector<sdk::byte_buffer> out; ///< Written by OpenSSL, not yet sent below.
};

/// A new BIO over `q` (nullptr when OpenSSL is out of memory). `q` must outlive it.
BIO* make_datagram_bio(datagram_queue* q) noexcept;

} // namespace post::plugins::tls
