#include "http1_decoder.hpp"

#include <http_parser.h>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace post::plugins::http {

namespace {

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

/// http-parser strips the whitespace before a value but keeps the whitespace after it.
std::string_view trim_trailing(std::string_view v) {
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    return v;
}

} // namespace

struct http1_decoder::state {
    http_parser parser{};
    http_parser_settings settings{};
    http1_decoder& owner;
    mode kind;
    http1_limits limits;
    std::deque<bool> head_requests; ///< Response mode: for each request sent, whether HEAD.
    std::vector<http1_message>* out = nullptr;

    http1_message current;
    std::string url;
    std::string field;
    std::string value;
    bool in_value = false;
    std::uint64_t header_bytes = 0;
    std::string failure; ///< Our own reason when a callback stops the parser.

    state(http1_decoder& o, mode m, http1_limits l)
        : owner(o)
        , kind(m)
        , limits(l) {
        http_parser_init(&parser, m == mode::request ? HTTP_REQUEST : HTTP_RESPONSE);
        parser.data = this;
        http_parser_settings_init(&settings);
        settings.on_message_begin = [](http_parser* p) { return self(p).begin(); };
        settings.on_url = [](http_parser* p, const char* at, std::size_t n) {
            return self(p).text(self(p).url, at, n, "request target");
        };
        settings.on_status = [](http_parser* p, const char*, std::size_t n) {
            return self(p).count(n, "status line");
        };
        settings.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
            auto& s = self(p);
            if (s.in_value && !s.store()) return 1;
            s.in_value = false;
            return s.text(s.field, at, n, "header block");
        };
        settings.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
            auto& s = self(p);
            s.in_value = true;
            return s.text(s.value, at, n, "header block");
        };
        settings.on_headers_complete = [](http_parser* p) { return self(p).headers_complete(); };
        settings.on_body = [](http_parser* p, const char* at, std::size_t n) {
            return self(p).body(at, n);
        };
        settings.on_message_complete = [](http_parser* p) { return self(p).complete(); };
    }

    static state& self(http_parser* p) { return *static_cast<state*>(p->data); }

    int fail(std::string why) {
        failure = std::move(why);
        return 1;
    }

    int begin() {
        owner.in_message_ = true;
        current = {};
        url.clear();
        field.clear();
        value.clear();
        in_value = false;
        header_bytes = 0;
        return 0;
    }

    int count(std::size_t n, const char*) {
        header_bytes += n;
        if (header_bytes > limits.max_header)
            return fail("header block exceeds max-header-size " +
                        std::to_string(limits.max_header) + " bytes");
        return 0;
    }

    int text(std::string& to, const char* at, std::size_t n, const char* what) {
        if (count(n, what) != 0) return 1;
        to.append(at, n);
        return 0;
    }

    /// Fold one complete field into the properties (RFC 9110 5.3: repeated fields join with
    /// a comma, except set-cookie, whose values may contain commas).
    bool store() {
        if (field.empty()) return true;
        auto name = lower(field);
        auto v = std::string(trim_trailing(value));
        field.clear();
        value.clear();
        if (kind == mode::request && name == "host") {
            if (current.properties.count(":authority") != 0) {
                fail("more than one host field");
                return false;
            }
            current.properties[":authority"] = std::move(v);
            return true;
        }
        auto [it, fresh] = current.properties.try_emplace(name, v);
        if (!fresh) it->second += (name == "set-cookie" ? "\n" : ", ") + v;
        return true;
    }

    int headers_complete() {
        if (in_value && !store()) return -1;
        in_value = false;
        if (parser.upgrade)
            return fail("Upgrade and CONNECT are not supported by the http1 layer"), -1;
        auto& props = current.properties;
        bool skip_body = false;
        if (kind == mode::request) {
            props[":method"] = http_method_str(static_cast<http_method>(parser.method));
            http_parser_url u;
            http_parser_url_init(&u);
            if (!url.empty() && url[0] != '/' && url != "*" &&
                http_parser_parse_url(url.data(), url.size(), 0, &u) == 0 &&
                (u.field_set & (1 << UF_SCHEMA)) && (u.field_set & (1 << UF_HOST))) {
                // Absolute form (RFC 9112 3.2.2): the target names scheme and authority.
                auto part = [&](int f) {
                    return url.substr(u.field_data[f].off, u.field_data[f].len);
                };
                props[":scheme"] = lower(part(UF_SCHEMA));
                props[":authority"] =
                    part(UF_HOST) +
                    ((u.field_set & (1 << UF_PORT)) ? ":" + part(UF_PORT) : std::string());
                const auto from =
                    (u.field_set & (1 << UF_PATH)) ? u.field_data[UF_PATH].off : url.size();
                const auto path = url.substr(from);
                props[":path"] = path.empty() ? "/" : path;
            } else {
                props[":path"] = url;
            }
        } else {
            props[":status"] = std::to_string(parser.status_code);
            if (parser.status_code >= 100 && parser.status_code < 200) return 0;
            if (!head_requests.empty()) {
                skip_body = head_requests.front();
                head_requests.pop_front();
            }
        }
        if (!skip_body && (parser.flags & F_CONTENTLENGTH) &&
            parser.content_length > limits.max_body)
            return fail("body of " + std::to_string(parser.content_length) +
                        " bytes exceeds max-message-size " + std::to_string(limits.max_body)),
                   -1;
        return skip_body ? 1 : 0;
    }

    int body(const char* at, std::size_t n) {
        if (current.body.size() + n > limits.max_body)
            return fail("body exceeds max-message-size " + std::to_string(limits.max_body) +
                        " bytes");
        const auto* b = reinterpret_cast<const std::byte*>(at);
        current.body.insert(current.body.end(), b, b + n);
        return 0;
    }

    int complete() {
        // Trailer fields of a chunked body arrive after the body; the last one ends here.
        if (in_value && !store()) return 1;
        in_value = false;
        owner.in_message_ = false;
        // Interim responses (100 Continue, 103 Early Hints) are not the answer.
        if (kind == mode::response && parser.status_code >= 100 && parser.status_code < 200)
            return 0;
        current.keep_alive = http_should_keep_alive(&parser) != 0;
        out->push_back(std::move(current));
        current = {};
        return 0;
    }
};

http1_decoder::http1_decoder(mode m, http1_limits limits)
    : s_(std::make_unique<state>(*this, m, limits)) {}

http1_decoder::~http1_decoder() = default;

void http1_decoder::expect_response(bool head) {
    s_->head_requests.push_back(head);
}

bool http1_decoder::feed(std::span<const std::byte> data, std::vector<http1_message>& out) {
    if (failed()) return false;
    if (data.empty()) return true; // a zero length means "end of stream" to http-parser
    s_->out = &out;
    const auto* p = reinterpret_cast<const char*>(data.data());
    const auto n = http_parser_execute(&s_->parser, &s_->settings, p, data.size());
    s_->out = nullptr;
    const auto err = HTTP_PARSER_ERRNO(&s_->parser);
    if (err != HPE_OK) {
        error_ = !s_->failure.empty()
                     ? s_->failure
                     : std::string(http_errno_name(err)) + " (" + http_errno_description(err) + ")";
        return false;
    }
    if (s_->parser.upgrade || n != data.size()) {
        error_ = "Upgrade and CONNECT are not supported by the http1 layer";
        return false;
    }
    return true;
}

bool http1_decoder::finish(std::vector<http1_message>& out) {
    if (failed()) return false;
    s_->out = &out;
    http_parser_execute(&s_->parser, &s_->settings, nullptr, 0);
    s_->out = nullptr;
    const auto err = HTTP_PARSER_ERRNO(&s_->parser);
    if (err != HPE_OK) {
        error_ = !s_->failure.empty()
                     ? s_->failure
                     : std::string(http_errno_name(err)) + " (" + http_errno_description(err) + ")";
        return false;
    }
    if (in_message_) {
        error_ = "the stream ended inside a message";
        return false;
    }
    return true;
}

} // namespace post::plugins::http
