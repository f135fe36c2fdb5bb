// libFuzzer target: arbitrary bytes as a policy document. Parsing must either succeed or throw
// policy_error (never crash, hang or throw anything else); a parsed policy then goes through
// merging, validation, stack selection and option typing against a fixed catalog.
#include <post/policy.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace post_test {
std::vector<post::layer_info> test_catalog();
}

namespace {

const std::vector<post::layer_info>& catalog() {
    static const auto layers = [] {
        auto c = post_test::test_catalog();
        // A stream-to-stream layer with list and string options, so derivation goes deeper
        // and every option type is exercised.
        static const post::sdk::option_spec tls_options[] = {
            {"alpn", post::sdk::option_type::string_list, "ALPN protocols", "", 0, 0},
            {"server-name", post::sdk::option_type::string, "SNI", "", 0, 0},
            {"verify-peer", post::sdk::option_type::boolean, "Verify", "true", 0, 0},
            {"handshake-timeout", post::sdk::option_type::duration, "Timeout", "10s", 0, 0},
        };
        post::layer_info tls{"tls", "tls", "TLS", post::sdk::edge::stream, post::sdk::edge::stream,
                             {},    {}};
        tls.features["security"] = post::sdk::feature_effect::provides;
        tls.options.assign(std::begin(tls_options), std::end(tls_options));
        c.push_back(tls);
        return c;
    }();
    return layers;
}

const post::policy& system_policy() {
    static const auto p = post::policy::parse("version: 1\n"
                                              "selection: { multipath: prohibit, "
                                              "keep-alive: prefer }\n"
                                              "protocols: { tcp: { backlog: 128 } }\n",
                                              "system.yaml");
    return p;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    post::policy p;
    try {
        p = post::policy::parse(text, "fuzz.yaml");
    } catch (const post::policy_error& e) {
        // Every diagnostic must carry the file name and a message.
        for (const auto& d : e.diagnostics())
            if (d.where.file.empty() || d.message.empty()) __builtin_trap();
        return 0;
    }
    for (const auto* system : {&system_policy(), static_cast<const post::policy*>(nullptr)}) {
        auto merged = system ? post::merge(*system, p) : post::merge(post::policy{}, p);
        try {
            post::validate(merged, catalog());
        } catch (const post::policy_error&) {
        }
        try {
            auto result = post::select_stacks(merged, catalog(), {{"tcp"}, "URL scheme tcp://"});
            if (result.candidates.empty()) __builtin_trap(); // Must have thrown instead.
        } catch (const post::policy_error&) {
        }
        try {
            (void)post::select_stacks(merged, catalog());
        } catch (const post::policy_error&) {
        }
        for (const auto& layer : catalog()) {
            try {
                (void)post::layer_options(merged.effective, layer);
            } catch (const post::policy_error&) {
            }
        }
    }
    return 0;
}
