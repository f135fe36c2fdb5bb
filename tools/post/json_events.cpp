#include "json_events.hpp"

#include "common.hpp"

namespace post_tool {

std::string to_line(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void emit_json(const nlohmann::json& j) {
    out_line(to_line(j));
}

nlohmann::json carrier_event(const char* name, const post::carrier& c) {
    nlohmann::json j;
    j["event"] = name;
    if (!c) return j;
    auto stack = c.stack();
    if (!stack.empty()) j["stack"] = stack;
    if (auto p = c.path()) {
        j["local"] = p->local.to_string();
        j["remote"] = p->remote.to_string();
    }
    return j;
}

nlohmann::json send_event(const char* name, const post::carrier& c, post::message_id id) {
    auto j = carrier_event(name, c);
    j["id"] = id;
    return j;
}

void add_properties(nlohmann::json& j, const post::message_properties& p) {
    j["niceness"] = p.niceness;
    if (p.lifetime) j["lifetime_ms"] = p.lifetime->count();
    if (p.immediate) j["immediate"] = true;
    if (p.idempotent) j["idempotent"] = true;
    if (!p.ordered) j["ordered"] = false;
    if (!p.reliable) j["reliable"] = false;
}

} // namespace post_tool
