#include "quic_paths.hpp"

#include "quic_connection.hpp"

#include <netinet/in.h>

#include <cstring>

namespace post::plugins::quic {

void to_sockaddr(const sdk::endpoint& e, sockaddr_storage& out) {
    out = {};
    if (e.address.is_v6()) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&out);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(e.port);
        const auto b = e.address.to_v6().to_bytes();
        std::memcpy(&a->sin6_addr, b.data(), b.size());
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&out);
        a->sin_family = AF_INET;
        a->sin_port = htons(e.port);
        const auto b = e.address.to_v4().to_bytes();
        std::memcpy(&a->sin_addr, b.data(), b.size());
    }
}

socklen_t length_of(const sockaddr_storage& a) {
    return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

sdk::endpoint to_endpoint(const ngtcp2_addr& a) {
    sdk::endpoint e;
    if (!a.addr) return e;
    if (a.addr->sa_family == AF_INET6 && a.addrlen >= sizeof(sockaddr_in6)) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(a.addr);
        boost::asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), &s->sin6_addr, b.size());
        e.address = boost::asio::ip::address_v6(b, s->sin6_scope_id);
        e.port = ntohs(s->sin6_port);
    } else if (a.addr->sa_family == AF_INET && a.addrlen >= sizeof(sockaddr_in)) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(a.addr);
        boost::asio::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), &s->sin_addr, b.size());
        e.address = boost::asio::ip::address_v4(b);
        e.port = ntohs(s->sin_port);
    }
    return e;
}

void quic_path::set_addresses(const sdk::endpoint& l, const sdk::endpoint& r) {
    to_sockaddr(l, local);
    to_sockaddr(r, remote);
}

ngtcp2_path quic_path::view() {
    ngtcp2_path p{};
    p.local.addr = reinterpret_cast<ngtcp2_sockaddr*>(&local);
    p.local.addrlen = length_of(local);
    p.remote.addr = reinterpret_cast<ngtcp2_sockaddr*>(&remote);
    p.remote.addrlen = length_of(remote);
    p.user_data = reinterpret_cast<void*>(static_cast<std::uintptr_t>(id));
    return p;
}

bool quic_path::same_addresses(const ngtcp2_path& p) const {
    auto mine = const_cast<quic_path*>(this)->view();
    return to_endpoint(p.local) == to_endpoint(mine.local) &&
           to_endpoint(p.remote) == to_endpoint(mine.remote);
}

void quic_path::release() {
    if (!lower || closed || close_requested) return;
    close_requested = true;
    lower->close();
}

void quic_path_events::on_ready() noexcept {
    if (auto c = conn_.lock()) c->path_ready(id_);
}

void quic_path_events::on_received(sdk::byte_buffer data, const sdk::receive_meta&) noexcept {
    if (auto c = conn_.lock()) c->path_received(id_, std::move(data));
}

void quic_path_events::on_closed(const sdk::flow_error& e) noexcept {
    if (auto c = conn_.lock()) c->path_closed(id_, e);
}

} // namespace post::plugins::quic
