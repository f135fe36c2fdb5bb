#include "context_state.hpp"

#include "association_file.hpp"

#include <post/context.hpp>

#include <boost/asio/post.hpp>

#include <cstdlib>
#include <sstream>
#include <unistd.h>

namespace post {

namespace fs = std::filesystem;

namespace {

fs::path executable_dir() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path{} : exe.parent_path();
}

/// The host configuration file to use, in order of precedence; empty when none exists.
fs::path find_config(const context_options& o) {
    if (o.config_file) return *o.config_file;
    if (o.use_environment)
        if (const char* env = std::getenv("POST_CONFIG"); env && *env) return env;
    std::error_code ec;
    if (auto dir = executable_dir(); !dir.empty()) {
        // build/bin/post and build/tests/x both find build/etc/post/post.yaml; an installed
        // <prefix>/bin/post finds <prefix>/etc/post/post.yaml.
        auto candidate = dir / ".." / "etc" / "post" / "post.yaml";
        if (fs::exists(candidate, ec)) return candidate.lexically_normal();
    }
#ifdef POST_INSTALL_CONFIG
    if (fs::exists(POST_INSTALL_CONFIG, ec)) return POST_INSTALL_CONFIG;
#endif
    return {};
}

std::vector<fs::path> split_path(const char* text) {
    std::vector<fs::path> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ':'))
        if (!item.empty()) out.emplace_back(item);
    return out;
}

} // namespace

namespace detail {

void context_state::emit(trace_event e) const {
    std::shared_ptr<const tracer_list> list;
    {
        std::lock_guard lock(mutex);
        list = tracers;
    }
    if (!list) return;
    for (const auto& t : *list)
        t(e);
}

void context_state::keep(std::shared_ptr<live_object> o) {
    std::lock_guard lock(mutex);
    auto* key = o.get();
    live.emplace(key, std::move(o));
}

void context_state::release(live_object* o) {
    std::shared_ptr<live_object> last; // destroyed outside the lock
    std::lock_guard lock(mutex);
    if (auto it = live.find(o); it != live.end()) {
        last = std::move(it->second);
        live.erase(it);
    }
}

void context_state::log(sdk::log_level level, std::string_view layer,
                        std::string_view text) noexcept {
    if (!tracing.load(std::memory_order_relaxed)) return;
    try {
        static constexpr const char* names[] = {"trace", "debug", "info", "warning", "error"};
        trace_event e{trace_event::kind::layer_log, std::chrono::steady_clock::now(), {}, {}, {}};
        e.stack = {std::string(layer)};
        e.detail = std::string(names[static_cast<int>(level)]) + ": " + std::string(text);
        emit(std::move(e));
    } catch (...) {
        // Logging must never take a carrier down.
    }
}

void context_state::watch(association& a) {
    if (association_file.empty()) return;
    std::weak_ptr<context_state> weak = shared_from_this();
    a.set_observer([weak] {
        if (auto self = weak.lock()) self->schedule_save();
    });
}

void context_state::schedule_save() {
    {
        std::lock_guard lock(mutex);
        if (save_posted) return;
        save_posted = true;
    }
    // Coalesced: a burst of changes (a ticket per connection) costs one write.
    boost::asio::post(executor, [weak = std::weak_ptr<context_state>(shared_from_this())] {
        auto self = weak.lock();
        if (!self) return;
        {
            std::lock_guard lock(self->mutex);
            self->save_posted = false;
        }
        if (auto why = self->save_now(); !why.empty())
            self->log(sdk::log_level::warning, "associations", why);
    });
}

std::string context_state::save_now() {
    if (association_file.empty()) return {};
    std::vector<association::saved> all;
    {
        std::lock_guard lock(mutex);
        for (const auto& [key, a] : associations)
            all.push_back(a->save());
    }
    return save_association_file(association_file, all);
}

} // namespace detail

std::filesystem::path default_association_file() {
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state)
        return std::filesystem::path(state) / "post" / "associations.json";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::filesystem::path(home) / ".local" / "state" / "post" / "associations.json";
    return {};
}

context::context(boost::asio::io_context& io, context_options options)
    : state_(std::make_shared<detail::context_state>()) {
    state_->executor = io.get_executor();
    if (auto file = find_config(options); !file.empty())
        state_->config = host_config::load_file(file); // throws policy_error with file:line:col
    if (options.association_file && !options.association_file->empty()) {
        state_->association_file = *options.association_file;
        for (auto& saved :
             detail::load_association_file(*options.association_file, state_->warnings)) {
            auto a = std::make_shared<association>(saved.key);
            a->restore(saved);
            state_->watch(*a);
            state_->associations[saved.key] = std::move(a);
        }
    }
    if (!options.load_plugins) return;

    std::vector<fs::path> search;
    if (options.use_environment)
        if (const char* env = std::getenv("POST_PLUGIN_PATH"); env && *env)
            for (auto& p : split_path(env))
                search.push_back(p);
    for (auto& p : options.plugin_path)
        search.push_back(p);
    for (auto& p : state_->config.plugin_path)
        search.push_back(p);
    if (state_->config.file.empty()) {
        // No configuration at all: the build tree's or the installed plugin folder.
        if (auto dir = executable_dir(); !dir.empty())
            search.push_back((dir / ".." / "lib" / "post" / "plugins").lexically_normal());
#ifdef POST_INSTALL_PLUGIN_DIR
        search.emplace_back(POST_INSTALL_PLUGIN_DIR);
#endif
    }
    for (const auto& dir : search)
        state_->registry.load_directory(dir, state_->config.load);
}

context::~context() {
    state_->save_now(); // a failure was already logged when the last change was saved
    std::map<detail::live_object*, std::shared_ptr<detail::live_object>> live;
    {
        std::lock_guard lock(state_->mutex);
        live.swap(state_->live);
        state_->tracers.reset();
        state_->tracing = false;
    }
    for (auto& [raw, object] : live)
        object->shutdown();
}

boost::asio::any_io_executor context::get_executor() const {
    return state_->executor;
}

plugin_registry& context::plugins() noexcept {
    return state_->registry;
}

const host_config& context::config() const noexcept {
    return state_->config;
}

merged_policy context::effective(const policy& application) const {
    if (state_->config.system_policy) return merge(*state_->config.system_policy, application);
    return merged_policy{application, {}};
}

std::shared_ptr<association> context::association_for(const remote& r) {
    std::lock_guard lock(state_->mutex);
    auto& slot = state_->associations[r.key()];
    if (!slot) {
        slot = std::make_shared<association>(r.key());
        state_->watch(*slot);
    }
    return slot;
}

std::string context::save_associations() const {
    return state_->save_now();
}

std::vector<std::string> context::warnings() const {
    std::lock_guard lock(state_->mutex);
    return state_->warnings;
}

std::size_t context::association_count() const {
    std::lock_guard lock(state_->mutex);
    return state_->associations.size();
}

void context::on_trace(std::function<void(const trace_event&)> h) {
    std::lock_guard lock(state_->mutex);
    auto list = std::make_shared<detail::context_state::tracer_list>(
        state_->tracers ? *state_->tracers : detail::context_state::tracer_list{});
    list->push_back(std::move(h));
    state_->tracers = std::move(list);
    state_->tracing = true;
}

void context::emit(trace_event e) const {
    state_->emit(std::move(e));
}

} // namespace post
