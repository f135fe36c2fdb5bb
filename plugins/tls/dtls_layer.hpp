// The `dtls` layer of the tls plugin: DTLS 1.2 over a lower datagram flow. Its factory and
// option schema (the tls options that apply to DTLS, plus its own); the descriptor is in
// tls_plugin.cpp.
#pragma once

#include <post/sdk.hpp>

#include <memory>

namespace post::plugins::tls {

std::unique_ptr<sdk::layer> create_dtls_layer(const sdk::layer_context& ctx,
                                              sdk::flow_error& err) noexcept;

} // namespace post::plugins::tls
