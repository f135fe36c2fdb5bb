// The `h3` layer of the quic plugin: HTTP/3 over the quic layer directly below it
// (docs/http.md "HTTP/3"). quic_plugin.cpp lists it next to `quic`.
#pragma once

#include <post/sdk.hpp>

#include <memory>
#include <vector>

namespace post::plugins::quic {

std::unique_ptr<sdk::layer> create_h3(const sdk::layer_context& ctx, sdk::flow_error& err) noexcept;
const std::vector<sdk::option_spec>& h3_option_schema();

} // namespace post::plugins::quic
