// A transient: one flow chain (one protocol stack instance over one path) and the event sink
// on top of it. It forwards events to its owner: the carrier (which, while establishing,
// hands them to the race).
#pragma once

#include "stack.hpp"

#include <post/transient.hpp>

#include <memory>

namespace post::detail {

class transient_impl;

class transient_owner {
public:
    virtual ~transient_owner() = default;
    virtual void transient_ready(transient_impl& t) = 0;
    virtual void transient_received(transient_impl& t, sdk::byte_buffer data,
                                    const sdk::receive_meta& meta) = 0;
    virtual void transient_sent(transient_impl& t, std::uint64_t id) = 0;
    virtual void transient_send_error(transient_impl& t, std::uint64_t id,
                                      const sdk::flow_error& e) = 0;
    virtual void transient_expired(transient_impl& t, std::uint64_t id) = 0;
    virtual void transient_acked(transient_impl& t, std::uint64_t id) = 0;
    virtual void transient_closed(transient_impl& t, const sdk::flow_error& e) = 0;
    /// The peer opened another flow on this transient's multistreaming layer (SCTP or QUIC
    /// stream). The default refuses it.
    virtual void transient_incoming(transient_impl&, std::shared_ptr<sdk::flow> incoming) {
        if (incoming) incoming->abort();
    }
    /// The stack moved the connection to another path (flow_events::on_path_changed).
    virtual void transient_path_changed(transient_impl&) {}
};

class transient_impl final : public sdk::flow_events,
                             public std::enable_shared_from_this<transient_impl> {
public:
    transient_impl(std::shared_ptr<stack_instance> stack, std::string address)
        : stack_(std::move(stack))
        , address_(std::move(address)) {
        info_.stack = stack_->names;
        info_.started = info_.ready = std::chrono::steady_clock::now();
    }

    void attach(std::weak_ptr<transient_owner> owner, std::shared_ptr<sdk::flow> top) {
        owner_ = std::move(owner);
        top_ = std::move(top);
        top_->set_events(weak_from_this());
    }
    void set_owner(std::weak_ptr<transient_owner> owner) { owner_ = std::move(owner); }

    sdk::flow& top() { return *top_; }
    const std::shared_ptr<stack_instance>& stack() const { return stack_; }
    const std::string& address() const { return address_; }
    std::string label() const {
        return label_.empty() ? stack_->label() + " to " + address_ : label_;
    }
    /// Establishment's name for the attempt ("[tcp] to ADDR from LOCAL"), for its error list.
    void set_label(std::string label) { label_ = std::move(label); }
    transient_info& info() { return info_; }
    bool finished() const { return finished_; }

    /// Drop the flow chain at once; no more events.
    void abort() {
        finished_ = true;
        owner_.reset();
        if (top_) top_->abort();
    }

    void on_ready() noexcept override {
        info_.ready = std::chrono::steady_clock::now();
        auto fi = top_->info();
        info_.path.local = fi.local;
        info_.path.remote = fi.remote;
        info_.path.max_message_size = fi.max_message_size;
        if (auto o = owner_.lock()) o->transient_ready(*this);
    }
    void on_received(sdk::byte_buffer data, const sdk::receive_meta& meta) noexcept override {
        if (auto o = owner_.lock()) o->transient_received(*this, std::move(data), meta);
    }
    void on_sent(std::uint64_t id) noexcept override {
        if (auto o = owner_.lock()) o->transient_sent(*this, id);
    }
    void on_send_error(std::uint64_t id, const sdk::flow_error& e) noexcept override {
        if (auto o = owner_.lock()) o->transient_send_error(*this, id, e);
    }
    void on_expired(std::uint64_t id) noexcept override {
        if (auto o = owner_.lock()) o->transient_expired(*this, id);
    }
    void on_acked(std::uint64_t id) noexcept override {
        if (auto o = owner_.lock()) o->transient_acked(*this, id);
    }
    void on_closed(const sdk::flow_error& e) noexcept override {
        if (finished_) return;
        finished_ = true;
        if (auto o = owner_.lock()) o->transient_closed(*this, e);
    }

    void on_path_changed() noexcept override {
        if (auto o = owner_.lock(); o && !finished_) o->transient_path_changed(*this);
    }

    void on_incoming_flow(std::shared_ptr<sdk::flow> incoming) noexcept override {
        if (auto o = owner_.lock(); o && !finished_)
            o->transient_incoming(*this, std::move(incoming));
        else if (incoming)
            incoming->abort();
    }

private:
    std::shared_ptr<stack_instance> stack_; // destroyed after top_: layers outlive flows
    std::shared_ptr<sdk::flow> top_;
    std::weak_ptr<transient_owner> owner_;
    std::string address_;
    transient_info info_;
    std::string label_;
    bool finished_ = false;
};

} // namespace post::detail
