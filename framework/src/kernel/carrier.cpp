#include <utility>

#include "carrier_impl.hpp"

#include <post/carrier.hpp>

#include <stdexcept>

namespace post {

namespace {
detail::carrier_impl& checked(const std::shared_ptr<detail::carrier_impl>& impl) {
    if (!impl) throw std::logic_error("operation on an empty post::carrier");
    return *impl;
}
} // namespace

carrier& carrier::on_ready(std::function<void()> h) {
    checked(impl_).on_ready = std::move(h);
    return *this;
}
carrier& carrier::on_received(std::function<void(message)> h) {
    checked(impl_).set_received_handler(std::move(h));
    return *this;
}
carrier& carrier::on_sent(std::function<void(message_id)> h) {
    checked(impl_).on_sent = std::move(h);
    return *this;
}
carrier& carrier::on_send_error(std::function<void(message_id, const error&)> h) {
    checked(impl_).on_send_error = std::move(h);
    return *this;
}
carrier& carrier::on_expired(std::function<void(message_id)> h) {
    checked(impl_).on_expired = std::move(h);
    return *this;
}
carrier& carrier::on_acked(std::function<void(message_id)> h) {
    checked(impl_).on_acked = std::move(h);
    return *this;
}
carrier& carrier::on_closed(std::function<void()> h) {
    checked(impl_).on_closed = std::move(h);
    return *this;
}
carrier& carrier::on_error(std::function<void(const error&)> h) {
    checked(impl_).on_error = std::move(h);
    return *this;
}

carrier& carrier::on_incoming(std::function<void(carrier)> h) {
    checked(impl_).set_incoming_handler(std::move(h));
    return *this;
}

carrier& carrier::on_path_changed(std::function<void(const post::path&)> h) {
    checked(impl_).on_path_changed = std::move(h);
    return *this;
}

void carrier::migrate(const local& to, std::function<void(const error&)> done) {
    checked(impl_).migrate(to, std::move(done));
}

message_id carrier::send(message m) {
    return checked(impl_).send(std::move(m), nullptr);
}

void carrier::send_with(message m,
                        detail::unique_function<void(boost::system::error_code, message_id)> h) {
    checked(impl_).send(std::move(m), std::move(h));
}
void carrier::receive_with(detail::unique_function<void(boost::system::error_code, message)> h) {
    checked(impl_).receive(std::move(h));
}
void carrier::ready_with(detail::unique_function<void(boost::system::error_code)> h) {
    checked(impl_).wait_ready(std::move(h));
}

carrier carrier::fork() const {
    return carrier(checked(impl_).fork());
}

void carrier::close() {
    checked(impl_).close();
}
void carrier::abort() {
    checked(impl_).abort();
}
carrier_state carrier::state() const {
    return checked(impl_).state();
}
std::vector<std::string> carrier::stack() const {
    return checked(impl_).stack();
}
std::optional<post::path> carrier::path() const {
    return checked(impl_).current_path();
}
std::optional<transient_info> carrier::transient() const {
    return checked(impl_).transient();
}
std::shared_ptr<post::association> carrier::association() const {
    return checked(impl_).assoc();
}
std::size_t carrier::max_message_size() const {
    return checked(impl_).max_message_size();
}
send_capabilities carrier::capabilities() const {
    return checked(impl_).capabilities();
}
std::optional<error> carrier::last_error() const {
    return checked(impl_).last_error();
}
boost::asio::any_io_executor carrier::get_executor() const {
    return checked(impl_).executor();
}

} // namespace post
