// Policies: what an application or a host requires and prefers of its transport, loaded from
// YAML (see docs/policy.md), and the engine that turns a policy plus the loaded layers into
// ranked candidate stacks.
#pragma once

#include <post/sdk/edge.hpp>
#include <post/sdk/features.hpp>
#include <post/sdk/options.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace post {

/// The five preference levels of RFC 9622 selection properties.
enum class preference : std::uint8_t { require, prefer, no_preference, avoid, prohibit };

std::string_view to_string(preference p) noexcept;

/// Where something came from in a policy or config file.
struct source_location {
    std::string file; ///< As given to the loader; "<string>" for in-memory text.
    int line = 0;     ///< 1-based; 0 when unknown.
    int column = 0;   ///< 1-based.

    std::string to_string() const; ///< "file:line:column"
};

struct diagnostic {
    source_location where;
    std::string message;

    std::string to_string() const; ///< "file:line:column: message"
};

/// Thrown by the loaders and the engine; what() joins every diagnostic, one per line.
class policy_error : public std::runtime_error {
public:
    explicit policy_error(std::vector<diagnostic> diagnostics);
    const std::vector<diagnostic>& diagnostics() const noexcept { return diagnostics_; }

private:
    std::vector<diagnostic> diagnostics_;
};

struct selection_rule {
    std::string property; ///< A name from sdk::known_features.
    preference level = preference::no_preference;
    source_location where;
};

struct interface_rules {
    std::vector<std::string> require, prefer, avoid, prohibit; ///< Types or interface names.
    source_location where;
};

enum class address_family : std::uint8_t { any, ipv4, ipv6 };

struct racing_settings {
    std::chrono::milliseconds attempt_delay{250};
    std::chrono::milliseconds resolution_delay{50};
    std::chrono::milliseconds stack_delay{0}; ///< Extra delay before a lower-ranked stack.
    address_family prefer_family = address_family::ipv6;
    int max_attempts = 8; ///< In flight at once.
    /// How long what racing learned (the winner, failed candidates) is trusted: after this, a
    /// remote's candidates are ordered afresh.
    std::chrono::milliseconds history_expiry{10 * 60 * 1000};
};

struct connection_settings {
    std::chrono::milliseconds timeout{10000};
    std::optional<std::chrono::milliseconds> keep_alive;
    std::size_t max_message_size = 16u << 20; ///< Largest message accepted from a peer.
    /// When the connection of an initiated carrier goes away, the carrier becomes dormant
    /// (keeping its association, handlers and queued messages) and re-establishes on the next
    /// send, instead of ending.
    bool dormant = false;
    /// For a listener: carriers from it alive at once (establishing or established). A
    /// connection beyond the limit is accepted and closed at once, before any handshake, so
    /// it costs the carriers already there nothing.
    std::size_t max_connections = 4096;
    /// RFC 9622's Direction of Communication for initiated carriers (policy key
    /// connection.direction). send_only (what initiate_source asks for) opens a QUIC
    /// unidirectional stream; stacks without one-way flows use a bidirectional one.
    sdk::flow_direction direction = sdk::flow_direction::bidirectional;
};

/// A stack as written in a policy, top layer first.
struct stack_spec {
    std::vector<std::string> layers;
    source_location where;
};

/// One option value as written, before the layer's schema gives it a type.
struct raw_option {
    std::variant<std::string, std::vector<std::string>> value;
    source_location where;
};

class policy {
public:
    std::string name;
    std::string description;
    source_location where; ///< The document itself.
    std::map<std::string, selection_rule> selection;
    std::optional<interface_rules> interfaces;
    std::vector<stack_spec> stacks; ///< Empty: derive stacks from the loaded layers.
    /// layer name -> option name -> value.
    std::map<std::string, std::map<std::string, raw_option>> protocols;
    racing_settings racing;
    connection_settings connection;

    /// Parse and validate the document's own structure (not yet against plugins).
    /// Throws policy_error with file:line:column and, for unknown keys, the nearest valid key.
    static policy load_file(const std::filesystem::path& file);
    static policy parse(std::string_view yaml, std::string file_name = "<string>");

    /// The built-in default: reliable, message-preserving, stacks derived from plugins.
    static policy defaults();
};

/// A system policy merged over an application policy: the system's require and prohibit win
/// over the application's rule for the same property; everything else comes from the
/// application. Both rules are kept so that a conflict can name them.
struct merged_policy {
    policy effective;
    /// property -> the application rule that the system overrode.
    std::map<std::string, selection_rule> overridden;
};

merged_policy merge(const policy& system, const policy& application);

/// What the engine knows of one loaded layer (from a plugin descriptor).
struct layer_info {
    std::string name;
    std::string plugin; ///< Plugin name, for messages.
    std::string summary;
    sdk::edge upper = sdk::edge::none;
    sdk::edge lower = sdk::edge::none;
    std::map<std::string, sdk::feature_effect> features;
    std::vector<sdk::option_spec> options;
};

/// Extra constraints from the remote, e.g. a `tcp://` URL needs a stack containing tcp.
struct stack_constraint {
    std::vector<std::string> must_contain;
    std::string origin; ///< For messages: "URL scheme tcp://".
    /// Ask for byte-stream stacks (a carrier to be morphed into a post::stream): the top layer
    /// must offer a `stream` edge ([tcp], later [tls, tcp]) instead of messages or datagrams,
    /// for explicit and derived stacks alike. A byte stream has no message boundaries by
    /// definition, so the preserve-msg-boundaries rule does not apply to such stacks.
    bool stream_top = false;
    /// Layers the stack must not have: tcp:// means plain TCP on the wire, so no tls.
    std::vector<std::string> must_not_contain{};
    /// When not empty, the stack must contain every layer of at least one of these sets:
    /// https:// is HTTP over TLS over TCP, or HTTP/3 over QUIC ({tls, tcp} or {h3, quic}).
    std::vector<std::vector<std::string>> must_contain_one_of{};
};

struct candidate_stack {
    std::vector<std::string> layers;      ///< Top first.
    std::map<std::string, bool> features; ///< Composed feature set of the stack.
    int score = 0;                        ///< Prefers met minus avoids present.
    std::vector<std::string> notes;       ///< "prefers multistreaming: absent", ...
};

struct excluded_stack {
    std::vector<std::string> layers;
    std::string reason;   ///< "prohibit security: provided by tls"
    source_location rule; ///< The rule that excluded it (empty for structural reasons).
};

struct selection_result {
    std::vector<candidate_stack> candidates; ///< Best first.
    std::vector<excluded_stack> excluded;
};

/// Check stacks named in the policy against the catalog (unknown layers, edge mismatches such
/// as "framer needs stream below it but udp offers datagram") and layer options against each
/// layer's schema. Throws policy_error with locations.
void validate(const merged_policy& p, const std::vector<layer_info>& catalog);
/// As above, judging the top of each stack as `constraint` asks (a stream edge when
/// constraint.stream_top is set).
void validate(const merged_policy& p, const std::vector<layer_info>& catalog,
              const stack_constraint& constraint);

/// Rank candidate stacks. Throws policy_error when nothing is left; when the reason is a
/// system rule overriding an application rule, the error names both.
selection_result select_stacks(const merged_policy& p, const std::vector<layer_info>& catalog,
                               const stack_constraint& constraint = {});

/// Typed, validated options for one layer (schema defaults filled in). Throws policy_error.
sdk::options layer_options(const policy& p, const layer_info& layer);

/// Compose the features of a stack (top first) bottom-up, as documented in sdk/features.hpp.
std::map<std::string, bool> compose_features(const std::vector<std::string>& stack,
                                             const std::vector<layer_info>& catalog);

/// Levenshtein-nearest candidate, for "unknown key 'raceing'; did you mean 'racing'?".
std::string nearest(std::string_view word, const std::vector<std::string_view>& candidates);

/// Parse "250ms", "10s", "2m", "1500us" (rounded to ms). Returns nullopt on bad syntax.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

} // namespace post
