// A typed carrier: a carrier plus a codec, so the application sends and receives PDU objects
// instead of byte payloads. Each message carries exactly one encoded PDU.
//
// Like carrier, a typed_carrier is a cheap handle; copies share the carrier and the codec.
// Handlers and completions run as the underlying carrier's do (on the context's executor, or
// on a completion token's associated executor), never inside the call that caused them.
//
// A received message that does not decode is the peer's fault, not the application's: it is
// dropped, on_decode_error is told why (errc::protocol_error plus the codec's reason), a
// pending async_receive completes with errc::protocol_error, and the carrier stays usable.
#pragma once

#include <post/carrier.hpp>
#include <post/codec.hpp>
#include <post/detail/completion.hpp>
#include <post/error.hpp>

#include <utility>
// <utility> must precede Asio for coroutine support with g++ 12 (see dependencies notes).
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include <concepts>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace post {

template <message_codec Codec> class typed_carrier {
public:
    using codec_type = Codec;
    using pdu_type = typename Codec::pdu_type;

    typed_carrier() = default;
    explicit typed_carrier(post::carrier c, Codec codec = {})
        : carrier_(std::move(c))
        , state_(std::make_shared<state>(std::move(codec))) {}

    explicit operator bool() const noexcept { return static_cast<bool>(carrier_); }

    /// Each received PDU. Messages that fail to decode go to on_decode_error instead. With no
    /// handler, received messages wait for async_receive.
    typed_carrier& on_received(std::function<void(pdu_type)> h) {
        carrier_.on_received([s = state_, h = std::move(h)](message m) {
            if (auto pdu = s->decode(m)) h(std::move(*pdu));
        });
        return *this;
    }

    /// Why a received message was dropped: code errc::protocol_error, reason from the codec.
    typed_carrier& on_decode_error(std::function<void(const error&)> h) {
        state_->on_decode_error = std::move(h);
        return *this;
    }

    /// Encode and queue one PDU; returns the message id. Throws encode_error when the codec
    /// cannot encode `pdu` (nothing is sent then).
    message_id send(const pdu_type& pdu, message_properties properties = {}) {
        message m(state_->codec.encode(pdu));
        m.properties() = std::move(properties);
        return carrier_.send(std::move(m));
    }

    /// Completion signature: void(boost::system::error_code, message_id), as carrier's. A PDU
    /// the codec cannot encode completes with boost::system::errc::invalid_argument (and id 0).
    template <class CompletionToken> auto async_send(const pdu_type& pdu, CompletionToken&& token) {
        // Encoded before initiation so the operation owns bytes, not a reference to `pdu`.
        std::vector<std::byte> bytes;
        bool encoded = true;
        try {
            bytes = state_->codec.encode(pdu);
        } catch (const std::exception&) {
            encoded = false;
        }
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, message_id)>(
            [c = carrier_, encoded](auto handler, std::vector<std::byte> bytes) mutable {
                if (!encoded) {
                    // Posted, so the handler does not run inside async_send.
                    detail::erase_handler<boost::system::error_code, message_id>(std::move(handler),
                                                                                 c.get_executor())(
                        boost::system::errc::make_error_code(boost::system::errc::invalid_argument),
                        0);
                    return;
                }
                c.async_send(message(std::move(bytes)), std::move(handler));
            },
            token, std::move(bytes));
    }

    /// Completion signature: void(boost::system::error_code, pdu_type). One message per call.
    /// A message that does not decode completes with errc::protocol_error (and a
    /// value-initialised PDU); the next call receives the next message.
    template <class CompletionToken>
    requires std::default_initializable<pdu_type>
    auto async_receive(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, pdu_type)>(
            [c = carrier_, s = state_](auto handler) mutable {
                auto done = detail::erase_handler<boost::system::error_code, pdu_type>(
                    std::move(handler), c.get_executor());
                c.async_receive(
                    [s, done = std::move(done)](boost::system::error_code ec, message m) mutable {
                        if (ec) return done(ec, pdu_type{});
                        if (auto pdu = s->decode(m)) return done(ec, std::move(*pdu));
                        done(make_error_code(errc::protocol_error), pdu_type{});
                    });
            },
            token);
    }

    /// The carrier underneath, for its other events (on_ready, on_closed, ...) and properties.
    post::carrier& underlying() noexcept { return carrier_; }
    const post::carrier& underlying() const noexcept { return carrier_; }
    Codec& codec() noexcept { return state_->codec; }

    void close() { carrier_.close(); }
    boost::asio::any_io_executor get_executor() const { return carrier_.get_executor(); }

private:
    // Shared by every copy of the handle and by the handlers given to the carrier, which may
    // outlive this handle.
    struct state {
        explicit state(Codec c)
            : codec(std::move(c)) {}

        std::optional<pdu_type> decode(const message& m) {
            auto r = decode_whole(codec, m.data());
            if (r.has_value()) return std::optional<pdu_type>(std::move(r).value());
            if (on_decode_error)
                on_decode_error(
                    error{make_error_code(errc::protocol_error),
                          "message " + std::to_string(m.id()) + " does not decode: " + r.reason()});
            return std::nullopt;
        }

        Codec codec;
        std::function<void(const error&)> on_decode_error;
    };

    post::carrier carrier_;
    std::shared_ptr<state> state_;
};

/// `auto t = post::make_typed(c, post::json_codec<my_pdu>{});`
template <message_codec Codec> typed_carrier<Codec> make_typed(carrier c, Codec codec = {}) {
    return typed_carrier<Codec>(std::move(c), std::move(codec));
}

} // namespace post
