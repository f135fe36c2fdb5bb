// qlog output for one QUIC connection (the `qlog-dir` option): ngtcp2 0.12 produces the records
// (qlog 0.3 draft schema as JSON text sequences, RFC 7464); this file only stores them, one
// file per connection, named after the connection's original destination connection ID, as
// qvis and other qlog tools expect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace post::plugins::quic {

class quic_qlog {
public:
    /// Opens DIR/<odcid hex>_<client|server>.sqlog (created, or truncated). Check ok().
    quic_qlog(const std::string& dir, const std::uint8_t* odcid, std::size_t odcid_len,
              bool client);

    bool ok() const noexcept { return file_ != nullptr; }
    const std::string& path() const noexcept { return path_; }
    /// Why the file could not be opened or written (then nothing more is written).
    const std::string& error() const noexcept { return error_; }

    /// One of ngtcp2's records; `fin`: the connection's last one, after which the file is
    /// closed. A failed write closes the file and keeps the reason in error().
    void write(const void* data, std::size_t len, bool fin) noexcept;

private:
    struct closer {
        void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    std::unique_ptr<std::FILE, closer> file_;
    std::string path_, error_;
};

} // namespace post::plugins::quic
