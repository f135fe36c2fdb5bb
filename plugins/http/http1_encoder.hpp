// The sending half of HTTP/1.1: a message's properties (docs/http.md) become a request or
// response head. The body is not copied here; the head announces its length (content-length),
// so the flow can hand the body down as it is.
#pragma once

#include <cstddef>
#include <map>
#include <string>

namespace post::plugins::http {

using property_map = std::map<std::string, std::string>;

/// What the flow must remember about a request it sent until its response arrives.
struct sent_request {
    bool head = false;  ///< HEAD: the response has no body.
    bool close = false; ///< The request asked to close after its response.
};

/// Builds a request head. `default_authority` is used when the properties name none. False
/// with `error` set when a property cannot be written as HTTP/1.1 (a bad method, target or
/// field).
bool encode_request(const property_map& props, std::size_t body_size,
                    const std::string& default_authority, std::string& head, sent_request& info,
                    std::string& error);

/// Builds a response head for a request (`head_request`: it was HEAD, so no body is sent and
/// `send_body` is false). `close` is set when the response carries connection: close.
bool encode_response(const property_map& props, std::size_t body_size, bool head_request,
                     std::string& head, bool& send_body, bool& close, std::string& error);

/// Whether a property names a header field of its own (not a pseudo-header, not one this layer
/// writes itself, not a hint the kernel adds for other layers).
bool is_field_property(const std::string& name);

} // namespace post::plugins::http
