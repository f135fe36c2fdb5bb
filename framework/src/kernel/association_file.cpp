#include "association_file.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace post::detail {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* format_name = "post-sockets associations";
// Bounds: the file is ours, but it may be damaged or planted; loading stays cheap either way.
constexpr std::uintmax_t max_file_size = 8u << 20;
constexpr std::size_t max_associations = 4096;
constexpr std::size_t max_blob = association::max_state_bytes; // as layers may store

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xf]);
    }
    return out;
}

bool from_hex(const std::string& text, std::vector<std::uint8_t>& out) {
    if (text.size() % 2 != 0) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    out.clear();
    out.reserve(text.size() / 2);
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
    }
    return true;
}

/// One entry, or a reason it is skipped.
std::optional<association::saved> parse_entry(const json& j, std::string& why) {
    if (!j.is_object() || !j.contains("key") || !j["key"].is_string()) {
        why = "an entry without a \"key\" string";
        return std::nullopt;
    }
    association::saved s;
    s.key = j["key"].get<std::string>();
    if (auto w = j.find("winner"); w != j.end()) {
        if (!w->is_object() || !w->contains("stack") || !(*w)["stack"].is_array() ||
            !w->contains("address") || !(*w)["address"].is_string() || !w->contains("at") ||
            !(*w)["at"].is_number_integer()) {
            why = "entry '" + s.key + "' has a malformed \"winner\"";
            return std::nullopt;
        }
        association::outcome o;
        for (const auto& layer : (*w)["stack"]) {
            if (!layer.is_string()) {
                why = "entry '" + s.key + "' has a non-string layer in \"winner.stack\"";
                return std::nullopt;
            }
            o.stack.push_back(layer.get<std::string>());
        }
        o.address = (*w)["address"].get<std::string>();
        // Seconds since the epoch, from before this format existed to a day ahead (clocks
        // differ a little): anything else is damage, and would overflow time arithmetic.
        const auto at = (*w)["at"].get<std::int64_t>();
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        if (at < 1'600'000'000 || at > now + 86'400) {
            why = "entry '" + s.key + "' has a \"winner.at\" time out of range";
            return std::nullopt;
        }
        s.winner = o;
        s.winner_at = std::chrono::system_clock::time_point(std::chrono::seconds(at));
    }
    if (auto st = j.find("state"); st != j.end()) {
        if (!st->is_object()) {
            why = "entry '" + s.key + "' has a \"state\" that is not an object";
            return std::nullopt;
        }
        for (const auto& [layer, blob] : st->items()) {
            std::vector<std::uint8_t> bytes;
            if (!blob.is_string() || !from_hex(blob.get<std::string>(), bytes) ||
                bytes.size() > max_blob) {
                why = "entry '" + s.key + "' has unusable state for '" + layer +
                      "' (not hex, or over 64 KiB)";
                return std::nullopt;
            }
            s.state[layer] = std::move(bytes);
        }
    }
    return s;
}

} // namespace

std::vector<association::saved> load_association_file(const fs::path& file,
                                                      std::vector<std::string>& warnings) {
    std::vector<association::saved> out;
    const std::string name = file.string();
    try {
        struct stat st {};
        if (::stat(name.c_str(), &st) != 0) {
            if (errno != ENOENT)
                warnings.push_back("association file " + name +
                                   " ignored: " + std::strerror(errno));
            return out; // absent: the first run
        }
        if ((st.st_mode & 077) != 0) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
            warnings.push_back("association file " + name +
                               " ignored: it is readable by others "
                               "(mode " +
                               mode + "), and it holds session secrets; chmod 600 it");
            return out;
        }
        if (static_cast<std::uintmax_t>(st.st_size) > max_file_size) {
            warnings.push_back("association file " + name + " ignored: " +
                               std::to_string(st.st_size) + " bytes is over the 8 MiB limit");
            return out;
        }
        std::ifstream in(file, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        return parse_association_text(text.str(), name, warnings);
    } catch (const std::exception& e) {
        warnings.push_back("association file " + name + " ignored: " + e.what());
        out.clear();
    }
    return out;
}

std::vector<association::saved> parse_association_text(std::string_view text,
                                                       const std::string& name,
                                                       std::vector<std::string>& warnings) {
    std::vector<association::saved> out;
    try {
        json j = json::parse(text, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            warnings.push_back("association file " + name + " ignored: not valid JSON");
            return out;
        }
        if (j.value("format", std::string()) != format_name) {
            warnings.push_back("association file " + name + " ignored: \"format\" is not \"" +
                               format_name + "\"");
            return out;
        }
        if (!j.contains("version") || !j["version"].is_number_integer() ||
            j["version"].get<int>() != association_file_version) {
            warnings.push_back("association file " + name + " ignored: version " +
                               (j.contains("version") ? j["version"].dump() : "missing") +
                               ", this library reads version " +
                               std::to_string(association_file_version));
            return out;
        }
        if (!j.contains("associations") || !j["associations"].is_array()) {
            warnings.push_back("association file " + name + " ignored: no \"associations\" array");
            return out;
        }
        for (const auto& entry : j["associations"]) {
            if (out.size() == max_associations) {
                warnings.push_back("association file " + name + ": only the first " +
                                   std::to_string(max_associations) + " entries were read");
                break;
            }
            std::string why;
            if (auto s = parse_entry(entry, why))
                out.push_back(std::move(*s));
            else
                warnings.push_back("association file " + name + ": skipped " + why);
        }
    } catch (const std::exception& e) {
        warnings.push_back("association file " + name + " ignored: " + e.what());
        out.clear();
    }
    return out;
}

std::string save_association_file(const fs::path& file,
                                  const std::vector<association::saved>& associations) {
    try {
        json list = json::array();
        for (const auto& a : associations) {
            if (!a.winner && a.state.empty()) continue; // nothing worth keeping
            json e{{"key", a.key}};
            if (a.winner)
                e["winner"] = {{"stack", a.winner->stack},
                               {"address", a.winner->address},
                               {"at", std::chrono::duration_cast<std::chrono::seconds>(
                                          a.winner_at.time_since_epoch())
                                          .count()}};
            json state = json::object();
            for (const auto& [layer, blob] : a.state)
                state[layer] = to_hex(blob);
            e["state"] = std::move(state);
            list.push_back(std::move(e));
        }
        const std::string text = json{{"format", format_name},
                                      {"version", association_file_version},
                                      {"associations", std::move(list)}}
                                     .dump(2) +
                                 "\n";
        if (const auto dir = file.parent_path(); !dir.empty() && !fs::exists(dir)) {
            fs::create_directories(dir);
            fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
        }
        const std::string tmp = file.string() + ".tmp" + std::to_string(::getpid());
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
        std::size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const std::string why = std::strerror(errno);
                ::close(fd);
                ::unlink(tmp.c_str());
                return "cannot write " + tmp + ": " + why;
            }
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
        if (::rename(tmp.c_str(), file.c_str()) != 0) {
            const std::string why = std::strerror(errno);
            ::unlink(tmp.c_str());
            return "cannot replace " + file.string() + ": " + why;
        }
        return {};
    } catch (const std::exception& e) {
        return "cannot save " + file.string() + ": " + e.what();
    }
}

} // namespace post::detail
