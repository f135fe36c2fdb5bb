#include "h3_flow.hpp"

#include "quic_connection.hpp"

namespace post::plugins::quic {

h3_flow::h3_flow(std::shared_ptr<quic_stream> lower, std::shared_ptr<h3_session> session)
    : lower_(std::move(lower))
    , session_(std::move(session)) {}

h3_flow::~h3_flow() {
    // Without a close(), the connection goes with its last flow (quic_connection's destructor
    // sends CONNECTION_CLOSE); the session must not report to anyone meanwhile.
    session_->set_events({});
}

void h3_flow::attach() {
    lower_->set_events(std::static_pointer_cast<sdk::flow_events>(shared_from_this()));
}

void h3_flow::set_events(std::weak_ptr<sdk::flow_events> events) noexcept {
    session_->set_events(std::move(events));
}

void h3_flow::start() noexcept {
    lower_->start();
}

void h3_flow::send(sdk::byte_buffer data, const sdk::send_meta& meta) noexcept {
    try {
        session_->send(std::move(data), meta);
    } catch (...) {
        lower_->connection().request_close(
            {std::make_error_code(std::errc::not_enough_memory), "h3: out of memory while sending"},
            NGHTTP3_H3_INTERNAL_ERROR, "internal error");
    }
}

void h3_flow::close() noexcept {
    session_->close();
}

void h3_flow::abort() noexcept {
    session_->abort();
}

sdk::flow_info h3_flow::info() const noexcept {
    auto i = lower_->info();
    // Responses come in request order; on_sent when a message's last byte is in a packet.
    // Nothing of QUIC's per-message lifetimes or 0-RTT reaches HTTP/3 here.
    i.capabilities = sdk::cap_ordered;
    i.max_message_size = session_->max_body();
    return i;
}

void h3_flow::on_closed(const sdk::flow_error& e) noexcept {
    try {
        session_->connection_ended(e);
    } catch (...) {
    }
}

} // namespace post::plugins::quic
