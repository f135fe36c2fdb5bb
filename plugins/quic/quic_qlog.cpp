#include "quic_qlog.hpp"

#include <cerrno>
#include <cstring>

namespace post::plugins::quic {

quic_qlog::quic_qlog(const std::string& dir, const std::uint8_t* odcid, std::size_t odcid_len,
                     bool client) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string name;
    for (std::size_t i = 0; i < odcid_len; ++i) {
        name += digits[odcid[i] >> 4];
        name += digits[odcid[i] & 0xf];
    }
    path_ = dir + "/" + name + (client ? "_client" : "_server") + ".sqlog";
    file_.reset(std::fopen(path_.c_str(), "w"));
    if (!file_) error_ = "cannot open " + path_ + ": " + std::strerror(errno);
}

void quic_qlog::write(const void* data, std::size_t len, bool fin) noexcept {
    if (!file_) return;
    const bool failed = (len > 0 && std::fwrite(data, 1, len, file_.get()) != len) ||
                        // Closing flushes what the stdio buffer still holds.
                        (fin && std::fclose(file_.release()) != 0);
    if (!failed) return;
    const int e = errno;
    file_.reset();
    try {
        error_ = "cannot write " + path_ + ": " + std::strerror(e);
    } catch (...) {
        // Out of memory for the message: the file is closed all the same.
    }
}

} // namespace post::plugins::quic
