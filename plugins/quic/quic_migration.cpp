// Connection migration (RFC 9000 9, docs/quic.md "Migration"): the members of quic_connection
// that manage its paths. A client moves onto a new lower flow the kernel opened (migrate); a
// server adopts the lower flow of a new peer address whose packets carry one of its connection
// IDs (hand_over on the fresh connection object, adopt_path on the one that owns the ID).
// ngtcp2 validates paths and decides which one is in use; track_path follows it.
#include "quic_cid_registry.hpp"
#include "quic_connection.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include <algorithm>

namespace post::plugins::quic {

sdk::endpoint quic_connection::local_endpoint() const {
    const auto& p = current_path();
    return p.lower ? p.lower->info().local : sdk::endpoint{};
}

sdk::endpoint quic_connection::remote_endpoint() const {
    const auto& p = current_path();
    if (!p.lower) return params_.remote;
    auto r = p.lower->info().remote;
    return r.port ? r : params_.remote;
}

quic_path* quic_connection::find_path(std::uint64_t id) noexcept {
    for (auto& p : paths_)
        if (p->id == id) return p.get();
    return nullptr;
}

quic_path* quic_connection::path_for(const ngtcp2_path& np) noexcept {
    const auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(np.user_data));
    if (id) return find_path(id);
    for (auto& p : paths_)
        if (p->same_addresses(np)) return p.get();
    return nullptr;
}

bool quic_connection::migrate(std::shared_ptr<sdk::flow> new_lower, sdk::flow_error& err) noexcept {
    try {
        auto refuse = [&](std::errc code, const std::string& why) {
            err = {std::make_error_code(code),
                   "quic: cannot move the connection to " + peer() + ": " + why};
            return false;
        };
        if (!new_lower || new_lower->info().kind != sdk::edge::datagram)
            return refuse(std::errc::invalid_argument, "the new path needs a datagram flow");
        if (!client())
            return refuse(std::errc::operation_not_supported,
                          "only a client moves a connection (RFC 9000 9); a server follows");
        if (!settings_->migration)
            return refuse(std::errc::operation_not_supported,
                          "migration is off here (option migration: false)");
        if (state_ != state::established || !conn_)
            return refuse(std::errc::not_connected, "the handshake has not completed");
        if (const auto* rp = ngtcp2_conn_get_remote_transport_params(conn_);
            rp && rp->disable_active_migration)
            return refuse(std::errc::operation_not_supported,
                          "the server forbids it (transport parameter disable_active_migration)");
        // Transient: after the permanent refusals, so those are reported at once.
        if (!handshake_confirmed_)
            return refuse(std::errc::resource_unavailable_try_again,
                          "the handshake is not confirmed yet (RFC 9000 9: no migration "
                          "before that)");
        if (migrating_to_)
            return refuse(std::errc::operation_in_progress, "a migration is already under way");
        // Room for the new path: paths that are neither in use nor new go first.
        while (paths_.size() >= max_paths) {
            paths_[1]->release();
            paths_.erase(paths_.begin() + 1);
        }
        auto path = std::make_unique<quic_path>();
        path->id = next_path_id_++;
        path->lower = new_lower;
        path->events = std::make_shared<quic_path_events>(weak_from_this(), path->id);
        new_lower->set_events(path->events);
        migrating_to_ = path->id;
        paths_.push_back(std::move(path));
        log(sdk::log_level::debug, "moving the connection to " + peer() + " off " +
                                       local_endpoint().to_string() + ": opening a new path");
        new_lower->start(); // path_ready() migrates
        return true;
    } catch (...) {
        err = {std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"};
        return false;
    }
}

void quic_connection::path_ready(std::uint64_t id) noexcept {
    auto* path = find_path(id);
    if (!path || id != migrating_to_) return;
    migrating_to_ = 0;
    if (state_ != state::established || !conn_) return;
    try {
        const auto below = path->lower->info();
        path->ready = true;
        path->trains = (below.capabilities & sdk::cap_segmented_send) != 0;
        path->set_addresses(below.local, params_.remote.port ? params_.remote : below.remote);
        const auto view = path->view();
        // Immediate: the old path may be gone already (its address removed), so there is
        // nothing to wait on; ngtcp2 validates the new path while using it.
        if (int rv = ngtcp2_conn_initiate_immediate_migration(conn_, &view, now()); rv != 0) {
            log(sdk::log_level::info,
                "migration to " + below.local.to_string() + " not started: " +
                    (rv == NGTCP2_ERR_CONN_ID_BLOCKED
                         ? std::string("the server has given no spare connection ID yet")
                         : std::string(ngtcp2_strerror(rv))) +
                    "; the connection stays on " + local_endpoint().to_string());
            path->release();
            std::erase_if(paths_, [&](const auto& p) { return p.get() == path; });
            return;
        }
        ++summary_.migrations;
        log(sdk::log_level::debug, "migrated: packets to " + peer() + " now leave from " +
                                       below.local.to_string() + " (path validation under way)");
        track_path();
        service();
    } catch (...) {
        fail_later({std::make_error_code(std::errc::not_enough_memory), "quic: out of memory"});
    }
}

void quic_connection::track_path() {
    if (!conn_ || paths_.empty()) return;
    const bool prune = std::exchange(validation_ended_, false);
    auto* now_path = path_for(*ngtcp2_conn_get_path(conn_));
    if (now_path && now_path != paths_.front().get()) {
        auto it = std::find_if(paths_.begin(), paths_.end(),
                               [&](const auto& p) { return p.get() == now_path; });
        std::rotate(paths_.begin(), it, it + 1);
        ++summary_.path_changes;
        log(sdk::log_level::debug, "the connection now runs from " + local_endpoint().to_string() +
                                       " to " + remote_endpoint().to_string());
        for (auto& w : streams_)
            if (auto s = w.lock()) s->path_changed_ = true;
        schedule(); // the streams report on_path_changed
    }
    if (prune) prune_paths();
}

void quic_connection::prune_paths() {
    for (auto it = paths_.begin() + 1; it != paths_.end();) {
        if ((*it)->id == migrating_to_) {
            ++it;
            continue;
        }
        auto view = (*it)->view();
        log(sdk::log_level::debug, "path from " + to_endpoint(view.local).to_string() + " to " +
                                       to_endpoint(view.remote).to_string() +
                                       " no longer used: released");
        (*it)->release();
        it = paths_.erase(it);
    }
}

bool quic_connection::hand_over(sdk::byte_buffer& data) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
    const auto len = data.size();
    // Long headers start connections (or are strangers'); a moved client sends short ones.
    if (len == 0 || (p[0] & 0x80)) return false;
    ngtcp2_version_cid vc{};
    if (ngtcp2_pkt_decode_version_cid(&vc, p, len, cid_length) != 0 || vc.dcidlen != cid_length)
        return false;
    auto owner = cid_registry::find(vc.dcid, vc.dcidlen);
    if (!owner || owner.get() == this) return false;
    auto& mine = current_path();
    if (!mine.lower || !owner->adopt_path(mine.lower, data)) return false;
    mine.closed = true; // the flow is the owner's now: neither closed nor used here
    ++summary_.handed_over;
    // Quietly: the kernel's listener drops an accepted flow that ends with already_connected
    // before it was ready (no carrier, no error).
    end_all({std::make_error_code(std::errc::already_connected),
             "quic: datagrams from " + peer() +
                 " belong to an existing connection (its client moved): handed over"});
    return true;
}

bool quic_connection::adopt_path(std::shared_ptr<sdk::flow>& lower, sdk::byte_buffer& first) {
    if (client() || state_ != state::established || !conn_ || ended_) return false;
    const auto below = lower->info();
    // Only a flow of the socket we already use: the client's address changed, not ours.
    if (!current_path().lower || below.local != current_path().lower->info().local) return false;
    while (paths_.size() >= max_paths) {
        paths_[1]->release();
        paths_.erase(paths_.begin() + 1);
    }
    auto path = std::make_unique<quic_path>();
    path->id = next_path_id_++;
    path->lower = std::move(lower);
    path->events = std::make_shared<quic_path_events>(weak_from_this(), path->id);
    path->trains = (below.capabilities & sdk::cap_segmented_send) != 0;
    path->ready = true;
    path->set_addresses(below.local, below.remote);
    path->lower->set_events(path->events);
    const auto id = path->id;
    paths_.push_back(std::move(path));
    ++summary_.paths_adopted;
    log(sdk::log_level::debug, "datagrams of the connection with " + peer() + " now come from " +
                                   below.remote.to_string() + ": new path adopted");
    path_received(id, std::move(first));
    return true;
}

void quic_connection::register_cid(const ngtcp2_cid& cid) {
    if (cids_.size() >= cid_registry::max_ids_per_connection) {
        log(sdk::log_level::warning,
            "more than " + std::to_string(cid_registry::max_ids_per_connection) +
                " connection IDs at once: a new one is not registered (the client cannot "
                "move onto it)");
        return;
    }
    if (!cid_registry::add(cid.data, cid.datalen, weak_from_this())) return; // taken: 2^-136
    cids_.emplace_back(reinterpret_cast<const char*>(cid.data), cid.datalen);
}

void quic_connection::unregister_cids() noexcept {
    for (const auto& c : cids_)
        cid_registry::remove(reinterpret_cast<const std::uint8_t*>(c.data()), c.size(), this);
    cids_.clear();
}

} // namespace post::plugins::quic
