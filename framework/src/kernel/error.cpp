#include <post/error.hpp>

#include <string>

namespace post {
namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "post"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::success:
            return "success";
        case errc::no_candidate:
            return "the policy leaves no candidate stack";
        case errc::establishment_failed:
            return "every establishment attempt failed";
        case errc::resolve_failed:
            return "the remote name did not resolve";
        case errc::timed_out:
            return "connection timeout";
        case errc::message_too_large:
            return "message too large for the stack or path";
        case errc::closed:
            return "carrier closed";
        case errc::protocol_error:
            return "protocol error from the peer";
        case errc::plugin_error:
            return "a protocol layer could not be created";
        case errc::cancelled:
            return "cancelled";
        case errc::not_supported:
            return "not supported by this stack";
        case errc::policy_invalid:
            return "invalid policy";
        case errc::expired:
            return "message expired";
        case errc::antecedent_failed:
            return "an antecedent of the message failed";
        case errc::invalid_argument:
            return "invalid argument";
        case errc::resource_limit:
            return "a policy limit was reached";
        }
        return "unknown post error";
    }
};

} // namespace

const boost::system::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

} // namespace post
