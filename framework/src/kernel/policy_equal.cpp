#include "policy_equal.hpp"

#include <algorithm>

namespace post::detail {

namespace {

// One overload per policy struct. Each destructures both sides: the binding count must match
// the struct's member count, which is what makes a forgotten new member a compile error.

bool same(const source_location& x, const source_location& y) {
    const auto& [file1, line1, column1] = x;
    const auto& [file2, line2, column2] = y;
    return line1 == line2 && column1 == column2 && file1 == file2;
}

bool same(const selection_rule& x, const selection_rule& y) {
    const auto& [property1, level1, where1] = x;
    const auto& [property2, level2, where2] = y;
    return level1 == level2 && property1 == property2 && same(where1, where2);
}

bool same(const interface_rules& x, const interface_rules& y) {
    const auto& [require1, prefer1, avoid1, prohibit1, where1] = x;
    const auto& [require2, prefer2, avoid2, prohibit2, where2] = y;
    return require1 == require2 && prefer1 == prefer2 && avoid1 == avoid2 &&
           prohibit1 == prohibit2 && same(where1, where2);
}

bool same(const stack_spec& x, const stack_spec& y) {
    const auto& [layers1, where1] = x;
    const auto& [layers2, where2] = y;
    return layers1 == layers2 && same(where1, where2);
}

bool same(const raw_option& x, const raw_option& y) {
    const auto& [value1, where1] = x;
    const auto& [value2, where2] = y;
    return value1 == value2 && same(where1, where2);
}

bool same(const racing_settings& x, const racing_settings& y) {
    const auto& [attempt1, resolution1, stack1, family1, max1, expiry1] = x;
    const auto& [attempt2, resolution2, stack2, family2, max2, expiry2] = y;
    return attempt1 == attempt2 && resolution1 == resolution2 && stack1 == stack2 &&
           family1 == family2 && max1 == max2 && expiry1 == expiry2;
}

bool same(const connection_settings& x, const connection_settings& y) {
    const auto& [timeout1, keep_alive1, max_size1, dormant1, max_connections1, direction1] = x;
    const auto& [timeout2, keep_alive2, max_size2, dormant2, max_connections2, direction2] = y;
    return timeout1 == timeout2 && keep_alive1 == keep_alive2 && max_size1 == max_size2 &&
           dormant1 == dormant2 && max_connections1 == max_connections2 && direction1 == direction2;
}

template <class T> bool same(const std::optional<T>& x, const std::optional<T>& y) {
    return x.has_value() == y.has_value() && (!x || same(*x, *y));
}

template <class T> bool same(const std::vector<T>& x, const std::vector<T>& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(),
                      [](const T& a, const T& b) { return same(a, b); });
}

template <class K, class V> bool same(const std::map<K, V>& x, const std::map<K, V>& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](const auto& a, const auto& b) {
        return a.first == b.first && same(a.second, b.second);
    });
}

} // namespace

bool same_policy(const policy& a, const policy& b) {
    const auto& [name1, description1, where1, selection1, interfaces1, stacks1, protocols1, racing1,
                 connection1] = a;
    const auto& [name2, description2, where2, selection2, interfaces2, stacks2, protocols2, racing2,
                 connection2] = b;
    return name1 == name2 && description1 == description2 && same(where1, where2) &&
           same(selection1, selection2) && same(interfaces1, interfaces2) &&
           same(stacks1, stacks2) && same(protocols1, protocols2) && same(racing1, racing2) &&
           same(connection1, connection2);
}

bool same_constraint(const stack_constraint& a, const stack_constraint& b) {
    const auto& [contain1, origin1, stream_top1, not_contain1, one_of1] = a;
    const auto& [contain2, origin2, stream_top2, not_contain2, one_of2] = b;
    return stream_top1 == stream_top2 && contain1 == contain2 && origin1 == origin2 &&
           not_contain1 == not_contain2 && one_of1 == one_of2;
}

} // namespace post::detail
