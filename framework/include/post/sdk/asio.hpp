// Conversions every Asio-based plugin needs: Asio endpoints and error codes to the SDK's.
#pragma once

#include <post/sdk/flow.hpp>

#include <boost/asio/ip/basic_endpoint.hpp>
#include <boost/system/error_code.hpp>

#include <string>
#include <system_error>

namespace post::sdk {

/// Asio reports errno values in the Boost system category; the SDK speaks std::error_code.
/// Errors of other categories (Asio's misc errors) become io_error and keep their text in the
/// reason only.
inline std::error_code to_std(const boost::system::error_code& ec) noexcept {
    if (!ec) return {};
    if (ec.category() == boost::system::system_category())
        return {ec.value(), std::system_category()};
    if (ec.category() == boost::system::generic_category())
        return {ec.value(), std::generic_category()};
    return std::make_error_code(std::errc::io_error);
}

/// "what: <Asio's message>", with the code converted.
inline flow_error make_flow_error(const boost::system::error_code& ec, std::string what) {
    return {to_std(ec), std::move(what) + ": " + ec.message()};
}

template <class Protocol> boost::asio::ip::basic_endpoint<Protocol> to_asio(const endpoint& e) {
    return {e.address, e.port};
}

template <class Protocol> endpoint to_sdk(const boost::asio::ip::basic_endpoint<Protocol>& e) {
    return {e.address(), e.port()};
}

} // namespace post::sdk
