#include "post_frame_codec.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace post::plugins::framing::post_frame {

namespace {

/// Large messages grow their buffer as bytes arrive, starting here: a header announcing
/// max-message-size does not make us allocate it before the bytes come. Messages up to this
/// size are received without reallocation and copying; the reservation is address space
/// (untouched pages cost nothing) and at most max-in-flight of them exist at once.
constexpr std::size_t initial_reserve = 1024 * 1024;

void put_be(std::byte* p, std::uint64_t v, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i)
        p[i] = std::byte(v >> (8 * (n - 1 - i)));
}

std::uint64_t get_be(const std::byte* p, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    return v;
}

/// Grows `out` by `n` bytes and returns where they start.
std::byte* grow(buffer& out, std::size_t n) {
    const std::size_t at = out.size();
    out.resize(at + n);
    return out.data() + at;
}

std::byte* put_header(buffer& out, frame_type t, std::uint8_t flags, std::uint32_t length,
                      std::uint64_t id, std::size_t extra) {
    std::byte* p = grow(out, header_size + extra);
    p[0] = std::byte(t);
    p[1] = std::byte(flags);
    put_be(p + 2, length, 4);
    put_be(p + 6, id, 8);
    return p + header_size;
}

std::string hex_byte(std::uint8_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    return {'0', 'x', digits[v >> 4], digits[v & 15]};
}

} // namespace

void append_data(buffer& out, std::uint64_t id, bool first, bool last, bool ack_requested,
                 std::uint64_t total, std::uint32_t lifetime, std::span<const std::byte> chunk) {
    const std::uint8_t flags = (first ? flag::first : 0) | (last ? flag::last : 0) |
                               (first && ack_requested ? flag::ack_requested : 0);
    const std::size_t extra = first ? first_extension_size : 0;
    out.reserve(out.size() + header_size + extra + chunk.size());
    std::byte* p = put_header(out, frame_type::data, flags,
                              static_cast<std::uint32_t>(chunk.size()), id, extra + chunk.size());
    if (first) {
        put_be(p, total, 8);
        put_be(p + 8, lifetime, 4);
        p += first_extension_size;
    }
    if (!chunk.empty()) std::memcpy(p, chunk.data(), chunk.size());
}

void append_whole_header(buffer& out, std::uint64_t id, bool ack_requested, std::uint32_t total,
                         std::uint32_t lifetime) {
    const std::uint8_t flags = flag::first | flag::last | (ack_requested ? flag::ack_requested : 0);
    std::byte* p = put_header(out, frame_type::data, flags, total, id, first_extension_size);
    put_be(p, total, 8);
    put_be(p + 8, lifetime, 4);
}

void append_abort(buffer& out, std::uint64_t id) {
    put_header(out, frame_type::abort, 0, 0, id, 0);
}

void append_ack(buffer& out, std::uint64_t id, bool expired) {
    put_header(out, frame_type::ack, expired ? flag::expired : 0, 0, id, 0);
}

std::uint32_t lifetime_ms(std::optional<clock::time_point> deadline, clock::time_point now,
                          clock::duration transit) {
    if (!deadline) return 0;
    if (*deadline <= now + transit) return 1; // the caller drops expired messages; never "none"
    const auto ms =
        std::chrono::floor<std::chrono::milliseconds>(*deadline - now - transit).count();
    return static_cast<std::uint32_t>(
        std::clamp<std::int64_t>(ms, 1, std::numeric_limits<std::uint32_t>::max()));
}

std::string hex_prefix(std::span<const std::byte> bytes, std::size_t limit) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
        const auto v = std::to_integer<unsigned>(bytes[i]);
        if (i) s += ' ';
        s += digits[v >> 4];
        s += digits[v & 15];
    }
    if (bytes.size() > limit) s += " ...";
    return s;
}

preface_matcher::result preface_matcher::feed(std::span<const std::byte> data,
                                              std::size_t& used) noexcept {
    used = 0;
    while (have_ < preface_size && used < data.size()) {
        if (data[used] != expected_[have_]) return result::mismatch;
        seen_[have_++] = data[used++];
    }
    return have_ == preface_size ? result::matched : result::need_more;
}

bool decoder::fail(std::string why) {
    error_ = std::move(why);
    open_.clear(); // release memory: nothing more is accepted
    single_ = {};
    cur_ = nullptr;
    return false;
}

bool decoder::feed(std::span<const std::byte> data, clock::time_point now,
                   std::vector<decoded>& out) {
    if (failed()) return false;
    while (!data.empty()) {
        if (!in_payload_) {
            const std::size_t take = std::min(head_need_ - head_have_, data.size());
            std::memcpy(head_.data() + head_have_, data.data(), take);
            head_have_ += take;
            data = data.subspan(take);
            if (head_have_ < head_need_) break;
            if (!on_header(now, out)) return false;
            continue;
        }
        const std::size_t take = std::min(chunk_left_, data.size());
        auto& buf = cur_->data;
        if (const std::size_t want = buf.size() + take; want > buf.capacity())
            // Geometric growth capped at what the message still needs.
            buf.reserve(static_cast<std::size_t>(
                std::min<std::uint64_t>(std::max<std::uint64_t>(want, 2 * buf.capacity()),
                                        buf.size() + (cur_->total - cur_->received))));
        buf.insert(buf.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
        cur_->received += take;
        chunk_left_ -= take;
        data = data.subspan(take);
        if (chunk_left_ == 0) finish_chunk(out);
    }
    return true;
}

bool decoder::check_chunk(std::uint64_t id, const open_message& m) {
    const std::uint64_t remaining = m.total - m.received;
    const std::uint64_t len = chunk_left_;
    const bool last = cur_flags_ & flag::last;
    const std::string msg = "message " + std::to_string(id);
    if (len == 0 && m.total != 0) return fail("empty DATA chunk for " + msg);
    if (len > remaining)
        return fail("DATA for " + msg + " goes past its total of " + std::to_string(m.total) +
                    " bytes");
    if (last && len != remaining)
        return fail(msg + " ended (LAST) after " + std::to_string(m.received + len) + " of its " +
                    std::to_string(m.total) + " bytes");
    if (!last && len == remaining)
        return fail(msg + " reached its total of " + std::to_string(m.total) +
                    " bytes without LAST");
    return true;
}

bool decoder::on_header(clock::time_point now, std::vector<decoded>& out) {
    const auto type = std::to_integer<std::uint8_t>(head_[0]);
    const auto flags = std::to_integer<std::uint8_t>(head_[1]);
    const auto len = static_cast<std::size_t>(get_be(head_.data() + 2, 4));
    const std::uint64_t id = get_be(head_.data() + 6, 8);
    const std::string msg = "message " + std::to_string(id);

    if (head_need_ == header_size) {
        switch (static_cast<frame_type>(type)) {
        case frame_type::data:
            if (flags & ~(flag::first | flag::last | flag::ack_requested))
                return fail("bad flags " + hex_byte(flags) + " on DATA for " + msg);
            if ((flags & flag::ack_requested) && !(flags & flag::first))
                return fail("ACK-REQUESTED without FIRST on DATA for " + msg);
            if (len > max_chunk_size)
                return fail("chunk of " + std::to_string(len) + " bytes for " + msg +
                            " exceeds the limit of " + std::to_string(max_chunk_size));
            if (flags & flag::first) {
                head_need_ = header_size + first_extension_size;
                return true; // the extension follows
            } else {
                auto it = open_.find(id);
                if (it == open_.end()) return fail("DATA for " + msg + " which has not started");
                cur_ = &it->second;
            }
            break;
        case frame_type::abort: {
            if (flags != 0) return fail("bad flags " + hex_byte(flags) + " on ABORT for " + msg);
            if (len != 0) return fail("ABORT for " + msg + " carries a payload");
            auto it = open_.find(id);
            if (it == open_.end()) return fail("ABORT for " + msg + " which is not in progress");
            open_.erase(it);
            out.push_back({decoded::kind::abort, id, {}, true, false, false, std::nullopt});
            head_have_ = 0;
            return true;
        }
        case frame_type::ack:
            if (flags & ~flag::expired)
                return fail("bad flags " + hex_byte(flags) + " on ACK for " + msg);
            if (len != 0) return fail("ACK for " + msg + " carries a payload");
            out.push_back({decoded::kind::ack,
                           id,
                           {},
                           true,
                           false,
                           (flags & flag::expired) != 0,
                           std::nullopt});
            head_have_ = 0;
            return true;
        default:
            return fail("unknown frame type " + hex_byte(type));
        }
    } else {
        // A FIRST chunk with its extension.
        const std::uint64_t total = get_be(head_.data() + header_size, 8);
        const auto lifetime = get_be(head_.data() + header_size + 8, 4);
        const bool last = flags & flag::last;
        if (id == 0) return fail("message id 0 is reserved");
        if (open_.count(id)) return fail("FIRST for " + msg + " which is already in progress");
        if (id <= last_started_)
            return fail("FIRST for " + msg + " after message " + std::to_string(last_started_) +
                        " (message ids must increase)");
        if (total > limits_.max_message_size)
            return fail(msg + " of " + std::to_string(total) + " bytes exceeds max-message-size " +
                        std::to_string(limits_.max_message_size));
        if (!last && open_.size() >= limits_.max_in_flight)
            return fail("too many messages in flight: " + msg + " would be one more than " +
                        std::to_string(limits_.max_in_flight) + " (max-in-flight)");
        open_message& m = last ? single_ : open_[id];
        m = {};
        m.total = total;
        m.partial = limits_.partial_delivery > 0 && total > limits_.partial_delivery;
        m.ack_requested = flags & flag::ack_requested;
        if (lifetime != 0) m.deadline = now + std::chrono::milliseconds(lifetime);
        cur_ = &m;
        last_started_ = id;
    }
    cur_id_ = id;
    cur_flags_ = flags;
    chunk_left_ = len;
    if (!check_chunk(id, *cur_)) return false;
    head_have_ = 0;
    head_need_ = header_size;
    in_payload_ = true;
    auto& buf = cur_->data;
    if (cur_->partial || (flags & flag::first && flags & flag::last))
        buf.reserve(len); // exactly this chunk
    else if (flags & flag::first)
        buf.reserve(static_cast<std::size_t>(
            std::min<std::uint64_t>(cur_->total, std::max<std::size_t>(len, initial_reserve))));
    if (len == 0) finish_chunk(out);
    return true;
}

void decoder::finish_chunk(std::vector<decoded>& out) {
    open_message& m = *cur_;
    const bool last = cur_flags_ & flag::last;
    if (m.partial)
        out.push_back({decoded::kind::part, cur_id_, std::move(m.data), last, m.ack_requested,
                       false, m.deadline});
    else if (last)
        out.push_back({decoded::kind::message, cur_id_, std::move(m.data), true, m.ack_requested,
                       false, m.deadline});
    if (m.partial || last) m.data = buffer{}; // moved from: make it a valid empty buffer
    if (last && cur_ != &single_) open_.erase(cur_id_);
    cur_ = nullptr;
    in_payload_ = false;
}

std::string decoder::truncation() const {
    if (failed()) return {};
    if (in_payload_)
        return "the stream ended inside a DATA frame of message " + std::to_string(cur_id_) + " (" +
               std::to_string(chunk_left_) + " bytes missing)";
    if (head_have_ != 0)
        return "the stream ended inside a frame header (" + std::to_string(head_have_) + " of " +
               std::to_string(head_need_) + " bytes)";
    if (!open_.empty()) {
        auto it = std::min_element(open_.begin(), open_.end(),
                                   [](const auto& a, const auto& b) { return a.first < b.first; });
        return "the stream ended with message " + std::to_string(it->first) + " incomplete (" +
               std::to_string(it->second.received) + " of " + std::to_string(it->second.total) +
               " bytes)";
    }
    return {};
}

} // namespace post::plugins::framing::post_frame
