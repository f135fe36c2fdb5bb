#include "sctp_options.hpp"

#include <iterator>
#include <string>

namespace post::plugins::sctp {

namespace {

constexpr std::int64_t max_message_limit = std::int64_t{1} << 30;

constexpr sdk::option_spec schema[] = {
    {"port", sdk::option_type::integer,
     "SCTP port inside the association (not the UDP port): a server listens on it, a client "
     "connects to it. usrsctp's echo_server listens on 7, tsctp on 5001",
     "5000", 1, 65535},
    {"max-message-size", sdk::option_type::integer,
     "Largest message a send accepts and a receive reassembles; a larger one from the peer "
     "aborts the association with an error",
     "16777216", 1, max_message_limit},
    {"streams", sdk::option_type::integer,
     "Outgoing streams requested and incoming streams accepted per association (the peer may "
     "grant fewer)",
     "16", 1, 65535},
    {"handshake-timeout", sdk::option_type::duration,
     "Give up an association not established after this long (INIT is retransmitted "
     "meanwhile); also ends accepted flows whose peer never completes one",
     "10s"},
};

sdk::flow_error bad(std::string text) {
    return {std::make_error_code(std::errc::invalid_argument), "sctp: " + std::move(text)};
}

} // namespace

std::span<const sdk::option_spec> option_schema() noexcept {
    return {schema, std::size(schema)};
}

bool parse_settings(const sdk::options& opts, sctp_settings& s, sdk::flow_error& err) {
    const auto port = opts.get_or<std::int64_t>("port", s.port);
    const auto max_size = opts.get_or<std::int64_t>("max-message-size",
                                                    static_cast<std::int64_t>(s.max_message_size));
    const auto streams = opts.get_or<std::int64_t>("streams", s.streams);
    const auto timeout =
        opts.get_or<std::chrono::milliseconds>("handshake-timeout", s.handshake_timeout);
    if (port < 1 || port > 65535) {
        err = bad("port must be between 1 and 65535, got " + std::to_string(port));
        return false;
    }
    if (max_size < 1 || max_size > max_message_limit) {
        err = bad("max-message-size must be between 1 and " + std::to_string(max_message_limit) +
                  " bytes, got " + std::to_string(max_size));
        return false;
    }
    if (streams < 1 || streams > 65535) {
        err = bad("streams must be between 1 and 65535, got " + std::to_string(streams));
        return false;
    }
    if (timeout.count() <= 0) {
        err = bad("handshake-timeout must be above 0, got " + std::to_string(timeout.count()) +
                  " ms");
        return false;
    }
    s.port = static_cast<std::uint16_t>(port);
    s.max_message_size = static_cast<std::size_t>(max_size);
    s.streams = static_cast<std::uint16_t>(streams);
    s.handshake_timeout = timeout;
    return true;
}

} // namespace post::plugins::sctp
