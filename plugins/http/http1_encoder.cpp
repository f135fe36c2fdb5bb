#include "http1_encoder.hpp"

#include <http_parser.h>

#include <cctype>
#include <string_view>

namespace post::plugins::http {

namespace {

bool is_tchar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

/// A field value may hold any visible character, space and tab, but no line break or NUL
/// (RFC 9110 5.5): anything else would let a property inject header lines.
bool is_field_value(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u == '\r' || u == '\n' || u == 0) return false;
    }
    return true;
}

/// A request target: visible ASCII only (RFC 9112 3.2), so no space can split the line.
bool is_target(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return false;
    }
    return true;
}

bool has_token(std::string_view list, std::string_view token) {
    // Connection is a comma-separated list of case-insensitive tokens.
    std::size_t pos = 0;
    while (pos <= list.size()) {
        auto end = list.find(',', pos);
        if (end == std::string_view::npos) end = list.size();
        auto item = list.substr(pos, end - pos);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
            item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
            item.remove_suffix(1);
        if (item.size() == token.size()) {
            bool same = true;
            for (std::size_t i = 0; i < item.size() && same; ++i)
                same = std::tolower(static_cast<unsigned char>(item[i])) == token[i];
            if (same) return true;
        }
        pos = end + 1;
    }
    return false;
}

/// Appends every field property; false with `error` on the first one that cannot be written.
bool append_fields(const property_map& props, std::string& head, std::string& error) {
    for (const auto& [name, value] : props) {
        if (!is_field_property(name)) continue;
        if (!is_token(name)) {
            error = "'" + name + "' is not a valid header field name";
            return false;
        }
        if (name == "set-cookie") {
            // Joined with line breaks on receipt: one field line each.
            std::size_t pos = 0;
            while (pos <= value.size()) {
                auto end = value.find('\n', pos);
                if (end == std::string::npos) end = value.size();
                const auto one = std::string_view(value).substr(pos, end - pos);
                if (!is_field_value(one)) {
                    error = "the value of header field 'set-cookie' holds a CR or NUL";
                    return false;
                }
                head.append(name).append(": ").append(one).append("\r\n");
                pos = end + 1;
            }
            continue;
        }
        if (!is_field_value(value)) {
            error = "the value of header field '" + name + "' holds a line break or NUL";
            return false;
        }
        head.append(name).append(": ").append(value).append("\r\n");
    }
    return true;
}

const std::string* find(const property_map& props, const char* name) {
    auto it = props.find(name);
    return it == props.end() ? nullptr : &it->second;
}

} // namespace

bool is_field_property(const std::string& name) {
    if (name.empty() || name[0] == ':') return false;
    // Written by this layer from the body and :authority.
    if (name == "host" || name == "content-length" || name == "transfer-encoding") return false;
    // Hints the kernel adds to every send for layers that can drop or reorder.
    if (name == "ordered" || name == "reliable") return false;
    return true;
}

bool encode_request(const property_map& props, std::size_t body_size,
                    const std::string& default_authority, std::string& head, sent_request& info,
                    std::string& error) {
    std::string method = body_size > 0 ? "POST" : "GET";
    if (const auto* m = find(props, ":method")) method = *m;
    if (!is_token(method)) {
        error = "':method' '" + method + "' is not a valid method";
        return false;
    }
    std::string path = "/";
    if (const auto* p = find(props, ":path")) path = *p;
    if (!is_target(path)) {
        error = "':path' '" + path + "' is not a valid request target";
        return false;
    }
    std::string authority = default_authority;
    if (const auto* a = find(props, ":authority"))
        authority = *a;
    else if (const auto* h = find(props, "host"))
        authority = *h;
    if (authority.empty() || !is_field_value(authority) ||
        authority.find_first_of(" \t") != std::string::npos) {
        error = "':authority' '" + authority + "' is not a valid authority";
        return false;
    }
    head.clear();
    head.reserve(128);
    head.append(method).append(" ").append(path).append(" HTTP/1.1\r\nhost: ");
    head.append(authority).append("\r\n");
    if (!append_fields(props, head, error)) return false;
    // A request without a body announces none unless its method defines one (RFC 9110 8.6).
    if (body_size > 0 || (method != "GET" && method != "HEAD" && method != "OPTIONS" &&
                          method != "DELETE" && method != "TRACE"))
        head.append("content-length: ").append(std::to_string(body_size)).append("\r\n");
    head.append("\r\n");
    info.head = method == "HEAD";
    const auto* c = find(props, "connection");
    info.close = c && has_token(*c, "close");
    return true;
}

bool encode_response(const property_map& props, std::size_t body_size, bool head_request,
                     std::string& head, bool& send_body, bool& close, std::string& error) {
    int status = 200;
    if (const auto* s = find(props, ":status")) {
        const bool digits = s->size() == 3 && std::isdigit(static_cast<unsigned char>((*s)[0])) &&
                            std::isdigit(static_cast<unsigned char>((*s)[1])) &&
                            std::isdigit(static_cast<unsigned char>((*s)[2]));
        status = digits ? std::stoi(*s) : 0;
        if (status < 200 || status > 599) {
            // 1xx are interim and would not answer the request; the rest are not statuses.
            error = "':status' '" + *s + "' is not a final status code (200 to 599)";
            return false;
        }
    }
    head.clear();
    head.reserve(128);
    head.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
    head.append(http_status_str(static_cast<http_status>(status))).append("\r\n");
    if (!append_fields(props, head, error)) return false;
    const bool bodiless = status == 204 || status == 304;
    if (!bodiless) head.append("content-length: ").append(std::to_string(body_size)).append("\r\n");
    head.append("\r\n");
    send_body = !bodiless && !head_request && body_size > 0;
    const auto* c = find(props, "connection");
    close = c && has_token(*c, "close");
    return true;
}

} // namespace post::plugins::http
