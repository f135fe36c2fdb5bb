// `post listen` and `post connect`: netcat for messages. One line of stdin is one message; every
// received message is printed on its own line (or as a JSON event).
//
// --niceness, --lifetime, --immediate and --idempotent set the properties of every message the
// command sends (for listen: the --echo replies); --json reports each message's send events.
//
// Both run a single io_context on the main thread; every carrier handler runs there, so the
// state below needs no locking. Only the stdin reader is another thread (reading a pipe, a file
// or a terminal portably means blocking), and it hands chunks over with asio::post (stdin_pump).
#include "common.hpp"
#include "json_events.hpp"
#include "stdin_pump.hpp"
#include "stream_cmd.hpp"

#include <fmt/core.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <unistd.h>

namespace post_tool {
namespace {

using namespace std::chrono_literals;

/// Message properties from the command line, applied to every message the command sends.
struct property_options {
    int niceness = 0;
    std::string lifetime; ///< Checked by the parser (lifetime_validator); empty: no lifetime.
    bool immediate = false, idempotent = false, unordered = false, unreliable = false;

    post::message_properties properties() const {
        post::message_properties p;
        p.niceness = niceness;
        if (!lifetime.empty()) p.lifetime = post::parse_duration(lifetime);
        p.immediate = immediate;
        p.idempotent = idempotent;
        p.ordered = !unordered;
        p.reliable = !unreliable;
        return p;
    }
};

struct listen_options {
    std::string url, policy_file;
    bool echo = false, json = false, stream = false;
    long count = 0; ///< 0: until interrupted.
    property_options props;
};

struct connect_options {
    std::string url, policy_file, file;
    std::string local, interface; ///< --local ADDR[:PORT], --interface NAME
    bool json = false, trace = false, stream = false;
    long count = 0; ///< 0: do not wait for replies.
    property_options props;
};

/// The policy module's duration syntax (docs/policy.md#durations), so that `--lifetime` reads
/// like a policy file; a bad value is a usage error (exit 2) naming the accepted forms.
CLI::Validator lifetime_validator() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            if (post::parse_duration(text)) return {};
            return fmt::format("'{}' is not a duration: use a number and a unit (us, ms, s, m, h), "
                               "e.g. 250ms or 2s, or 0",
                               text);
        },
        "DURATION");
}

CLI::Validator niceness_validator() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            int value = 0;
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            if (ec == std::errc() && end == text.data() + text.size() && value >= 0) return {};
            return fmt::format("'{}' is not a niceness: use an integer from 0 (most urgent) to {}",
                               text, std::numeric_limits<int>::max());
        },
        "N");
}

void add_property_options(CLI::App* app, property_options& p, const char* whose) {
    app->add_option("--niceness", p.niceness,
                    fmt::format("Niceness of {} (0 = most urgent, the default; larger yields to "
                                "smaller)",
                                whose))
        ->check(niceness_validator());
    app->add_option("--lifetime", p.lifetime,
                    fmt::format("Lifetime of {}, e.g. 250ms or 2s: dropped, and reported expired, "
                                "once it cannot arrive in time",
                                whose))
        ->check(lifetime_validator());
    app->add_flag("--immediate", p.immediate,
                  fmt::format("Send {} at once, never held back to be coalesced", whose));
    app->add_flag("--idempotent", p.idempotent,
                  fmt::format("Mark {} safe to replay (eligible for 0-RTT / Fast Open)", whose));
    app->add_flag("--unordered", p.unordered,
                  fmt::format("Let {} be delivered before earlier ones (SCTP unordered "
                              "messages; ignored by in-order stacks)",
                              whose));
    app->add_flag("--unreliable", p.unreliable,
                  fmt::format("Let {} be lost rather than retransmitted (QUIC datagrams; "
                              "ignored by reliable stacks)",
                              whose));
}

/// Splits stdin into lines (without their newline) for `post connect`; the last line may lack
/// its newline.
class line_splitter {
public:
    explicit line_splitter(std::function<void(std::string)> on_line)
        : on_line_(std::move(on_line)) {}

    void feed(std::string_view chunk) {
        pending_.append(chunk);
        std::size_t start = 0;
        for (std::size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1)
            on_line_(pending_.substr(start, nl - start));
        pending_.erase(0, start);
    }

    void finish() {
        if (!pending_.empty()) on_line_(std::exchange(pending_, {}));
    }

private:
    std::function<void(std::string)> on_line_;
    std::string pending_;
};

void print_received(const post::message& m, const post::carrier& c, bool json) {
    if (!json) {
        out_line(m.text());
        return;
    }
    auto j = carrier_event("received", c);
    j["id"] = m.id();
    j["size"] = m.size();
    j["message"] = std::string(m.text());
    if (m.sender()) j["remote"] = m.sender()->to_string();
    emit_json(j);
}

void report_error(const char* what, const std::string& reason, const post::carrier& c, bool json) {
    err_line(fmt::format("post: {}: {}", what, reason));
    if (json) {
        auto j = carrier_event("error", c);
        j["reason"] = reason;
        emit_json(j);
    }
}

std::string error_reason(const post::carrier& c, boost::system::error_code ec) {
    if (auto e = c.last_error(); e && *e) return e->to_string();
    return ec ? ec.message() : std::string("unknown error");
}

// ---------------------------------------------------------------------------------------------

int run_listen(const global_options& g, const listen_options& o) {
    std::string why;
    auto u = post::url::parse(o.url, &why);
    if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", o.url, why));
    const auto constraint = constraint_for_scheme(u->scheme);
    const auto where = local_from_url(*u);

    boost::asio::io_context io;
    // Declared before the context so that it outlives every handler the context holds.
    struct state_t {
        std::map<const void*, post::carrier> carriers; ///< Accepted and not yet closed.
        /// --json: echoes whose send events are still to come, (carrier, echo id) -> what the
        /// events report about them.
        struct echo_info {
            std::size_t size;
            post::message_id reply_to; ///< The id of the received message it answers.
        };
        std::map<std::pair<const void*, post::message_id>, echo_info> echoes;
        long received = 0;
        bool stopping = false;
        int rc = 0;
    } st;
    boost::asio::steady_timer grace(io);

    post::context ctx(io, context_options_for(g));
    print_context_warnings(ctx);
    if (g.verbose) trace_to_stderr(ctx);
    auto pol = policy_for(g, o.policy_file, u->scheme);
    const auto props = o.props.properties();

    post::listener l;
    try {
        l = post::listen(ctx, where, pol, constraint);
    } catch (const std::system_error& e) {
        err_line(fmt::format("post: cannot listen on {}: {}", o.url, e.what()));
        return 1;
    }

    // Stop accepting, close every carrier gracefully (queued echoes still go out), and leave
    // once they are closed or after a grace period.
    auto finish = [&](int rc) {
        if (st.stopping) return;
        st.stopping = true;
        st.rc = rc;
        l.close();
        for (auto& [key, c] : st.carriers)
            c.close();
        if (st.carriers.empty()) return io.stop();
        grace.expires_after(2s);
        grace.async_wait([&](boost::system::error_code ec) {
            if (!ec) io.stop();
        });
    };

    l.on_error(
        [&](const post::error& e) { report_error("listener error", e.to_string(), {}, o.json); });
    l.on_carrier([&](post::carrier c) {
        const void* key = c.impl().get();
        st.carriers[key] = c;
        // Handlers capture a weak handle: the carrier owns its handlers, so a strong one would
        // keep it alive forever.
        std::weak_ptr<post::detail::carrier_impl> weak = c.impl();
        auto self = [weak] { return post::carrier(weak.lock()); };
        if (o.json) emit_json(carrier_event("ready", c));
        c.on_received([&, self](post::message m) {
            // --count N means exactly N: later arrivals (while closing) are not printed.
            if (o.count > 0 && st.received >= o.count) return;
            auto c = self();
            print_received(m, c, o.json);
            if (o.echo && c) {
                auto size = m.size();
                auto reply_to = m.id();
                post::message reply(std::move(m.payload()));
                reply.properties() = props;
                auto id = c.send(std::move(reply));
                if (o.json) st.echoes[{c.impl().get(), id}] = {size, reply_to};
            }
            if (o.count > 0 && ++st.received >= o.count) finish(0);
        });
        // Send events of the echoes. An echo is forgotten after its last event: `acked` on
        // stacks that report it, else `sent`; `expired` and `send-error` end it too.
        auto echo_event = [&, self, key](const char* name, post::message_id id, bool last) {
            auto c = self();
            auto j = send_event(name, c, id);
            auto it = st.echoes.find({key, id});
            if (it != st.echoes.end()) {
                j["size"] = it->second.size;
                j["in_reply_to"] = it->second.reply_to;
                if (last) st.echoes.erase(it);
            }
            add_properties(j, props);
            return j;
        };
        c.on_sent([&, self, echo_event](post::message_id id) {
            if (!o.json) return;
            auto c = self();
            emit_json(echo_event("sent", id, !(c && c.capabilities().acked)));
        });
        c.on_acked([&, echo_event](post::message_id id) {
            if (o.json) emit_json(echo_event("acked", id, true));
        });
        c.on_expired([&, echo_event](post::message_id id) {
            err_line(
                fmt::format("post: echo {} expired: its lifetime ran out before it was sent", id));
            if (o.json) emit_json(echo_event("expired", id, true));
        });
        c.on_send_error([&, echo_event](post::message_id id, const post::error& e) {
            err_line(fmt::format("post: echo {} failed: {}", id, e.to_string()));
            if (!o.json) return;
            auto j = echo_event("send-error", id, true);
            j["reason"] = e.to_string();
            emit_json(j);
        });
        // Forget a carrier after its last handler returns: erasing the last handle inside the
        // handler could destroy the handler while it runs.
        auto forget = [&, key] {
            boost::asio::post(io, [&, key] {
                st.carriers.erase(key);
                std::erase_if(st.echoes, [key](const auto& e) { return e.first.first == key; });
                if (st.stopping && st.carriers.empty()) io.stop();
            });
        };
        // A carrier ends with either on_closed (clean) or on_error (with the reason).
        c.on_error([&, self, forget](const post::error& e) {
            auto c = self();
            report_error("carrier error", e.to_string(), c, o.json);
            if (!c || c.state() == post::carrier_state::closed) forget();
        });
        c.on_closed([&, self, forget] {
            if (o.json) emit_json(carrier_event("closed", self()));
            forget();
        });
    });

    auto stacks = l.stacks();
    std::vector<std::string> names;
    for (const auto& s : stacks)
        names.push_back(join_stack(s));
    for (const auto& ep : l.local_endpoints()) {
        if (o.json) {
            nlohmann::json j{{"event", "listening"}, {"local", ep.to_string()}, {"stacks", stacks}};
            emit_json(j);
        } else {
            err_line(fmt::format("post: listening on {} (stacks: {})", ep.to_string(),
                                 join_stack(names, ", ")));
        }
    }
    for (const auto& why : l.left_out())
        err_line("post: warning: not listening over " + why);

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) finish(0);
    });
    io.run();
    return st.rc;
}

// ---------------------------------------------------------------------------------------------

int run_connect(const global_options& g, const connect_options& o) {
    std::string why;
    auto u = post::url::parse(o.url, &why);
    if (!u) throw std::invalid_argument(fmt::format("bad URL '{}': {}", o.url, why));
    constraint_for_scheme(u->scheme); // refuses schemes the tool does not know
    const auto r = post::remote::from_url(o.url);

    std::vector<std::byte> file_payload;
    if (!o.file.empty()) {
        // Read before connecting, so that a missing file fails fast and cleanly.
        std::ifstream in(o.file, std::ios::binary);
        if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", o.file));
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto* p = reinterpret_cast<const std::byte*>(bytes.data());
        file_payload.assign(p, p + bytes.size());
    }

    boost::asio::io_context io;
    struct state_t {
        struct message_info {
            std::uint64_t index; ///< 0 for the first message the command sends, then 1, 2, ...
            std::size_t size;
            bool left = false; ///< `sent`, `expired` or `send-error` came (counted in `done`).
        };
        /// Messages with send events still to come.
        std::map<post::message_id, message_info> messages;
        std::uint64_t queued = 0, done = 0;
        std::size_t awaiting_ack = 0; ///< Sent, and `acked` still to come (when wait_acks).
        long received = 0;
        bool ready = false, eof = false, closing = false;
        /// --json on a stack that reports `acked`: stay until every sent message is acked, so
        /// that the events are printed (a graceful close does not wait for acknowledgements).
        bool wait_acks = false, ack_timer_armed = false;
        int rc = 0;
    } st;
    std::optional<line_splitter> lines;
    std::unique_ptr<stdin_pump> pump; // after `lines` and `st`: its thread is joined first
    boost::asio::steady_timer grace(io), ack_grace(io);

    post::context ctx(io, context_options_for(g));
    print_context_warnings(ctx);
    if (g.verbose || o.trace) trace_to_stderr(ctx);
    auto pol = policy_for(g, o.policy_file, u->scheme);
    const auto props = o.props.properties();

    post::local from;
    if (!o.local.empty()) {
        // "ADDR", "ADDR:PORT", "[V6]:PORT" or ":PORT".
        try {
            from = post::local::parse(o.local);
        } catch (const std::invalid_argument&) {
            from =
                post::local::parse(o.local.find(':') != std::string::npos && o.local.front() != '['
                                       ? "[" + o.local + "]:0"
                                       : o.local + ":0");
        }
    }
    from.interface = o.interface;
    post::carrier c = post::initiate(ctx, r, from, pol);

    // Close once input is exhausted, every message has left, and the replies we wait for came.
    std::function<void()> maybe_close;
    maybe_close = [&] {
        if (st.closing || !st.eof || st.done < st.queued) return;
        if (o.count > 0 && st.received < o.count) return;
        if (st.awaiting_ack > 0) {
            // A peer that never acknowledges must not keep us forever.
            if (st.ack_timer_armed) return;
            st.ack_timer_armed = true;
            ack_grace.expires_after(5s);
            ack_grace.async_wait([&](boost::system::error_code ec) {
                if (ec) return;
                err_line(fmt::format("post: {} sent messages not acknowledged in time",
                                     st.awaiting_ack));
                st.awaiting_ack = 0;
                maybe_close();
            });
            return;
        }
        ack_grace.cancel();
        st.closing = true;
        c.close();
        grace.expires_after(5s);
        grace.async_wait([&](boost::system::error_code ec) {
            if (ec) return;
            err_line("post: the carrier did not close in time; aborting it");
            c.abort();
            io.stop();
        });
    };
    std::uint64_t next_index = 0;
    auto send = [&](post::message m) {
        m.properties() = props;
        auto size = m.size();
        ++st.queued;
        // No handler runs inside send() (carrier.hpp), so the record is there for every event.
        st.messages[c.send(std::move(m))] = {next_index++, size};
    };
    // The JSON event of message `id`, with what we know of it.
    auto message_event = [&](const char* name, post::message_id id) {
        auto j = send_event(name, c, id);
        if (auto it = st.messages.find(id); it != st.messages.end()) {
            j["index"] = it->second.index;
            j["size"] = it->second.size;
        }
        add_properties(j, props);
        return j;
    };
    auto describe = [&](post::message_id id) {
        auto it = st.messages.find(id);
        return it == st.messages.end()
                   ? fmt::format("message {}", id)
                   : fmt::format("message {} ({} bytes)", it->second.index, it->second.size);
    };

    c.on_received([&](post::message m) {
        print_received(m, c, o.json);
        ++st.received;
        maybe_close();
    });
    c.on_sent([&](post::message_id id) {
        if (o.json) emit_json(message_event("sent", id));
        // The first of `sent`, `expired` and `send-error` counts a message as done; an unknown
        // id was settled before and counts nothing.
        if (auto it = st.messages.find(id); it != st.messages.end() && !it->second.left) {
            it->second.left = true;
            ++st.done;
            if (st.wait_acks)
                ++st.awaiting_ack;
            else
                st.messages.erase(it);
        }
        maybe_close();
    });
    c.on_acked([&](post::message_id id) {
        if (o.json) emit_json(message_event("acked", id));
        if (auto it = st.messages.find(id); it != st.messages.end()) {
            if (it->second.left && st.awaiting_ack > 0) --st.awaiting_ack;
            if (!it->second.left) ++st.done; // acked before sent: it left all the same
            st.messages.erase(it);
        }
        maybe_close();
    });
    // Expiry and send errors end a message for good: it was (or will be) dropped, so the exit
    // code says that not everything arrived.
    auto drop = [&](post::message_id id) {
        st.rc = 1;
        auto it = st.messages.find(id);
        if (it == st.messages.end()) return;
        if (!it->second.left)
            ++st.done;
        else if (st.awaiting_ack > 0)
            --st.awaiting_ack; // expired mid-way after `sent`: no `acked` will follow
        st.messages.erase(it);
    };
    c.on_expired([&](post::message_id id) {
        err_line(
            fmt::format("post: {} expired: its lifetime ran out before it was sent", describe(id)));
        if (o.json) emit_json(message_event("expired", id));
        drop(id);
        maybe_close();
    });
    c.on_send_error([&](post::message_id id, const post::error& e) {
        err_line(fmt::format("post: {} not sent: {}", describe(id), e.to_string()));
        if (o.json) {
            auto j = message_event("send-error", id);
            j["reason"] = e.to_string();
            emit_json(j);
        }
        drop(id);
        maybe_close();
    });
    // A carrier ends with either on_closed (clean) or on_error (with the reason), not both.
    c.on_error([&](const post::error& e) {
        if (!st.ready) return; // establishment failures are reported by async_wait_ready
        report_error("error", e.to_string(), c, o.json);
        st.rc = 1;
        if (c.state() == post::carrier_state::closed) io.stop();
    });
    c.on_closed([&] {
        if (!st.ready) return;
        if (!st.closing) {
            bool lost = st.done < st.queued || (o.count > 0 && st.received < o.count);
            if (lost) {
                report_error("closed by peer",
                             fmt::format("{} of {} messages sent, {} received", st.done, st.queued,
                                         st.received),
                             c, o.json);
                st.rc = 1;
            } else {
                err_line("post: closed by peer");
            }
        }
        if (o.json) emit_json(carrier_event("closed", c));
        io.stop();
    });
    c.async_wait_ready([&](boost::system::error_code ec) {
        if (ec) {
            report_error(fmt::format("cannot connect to {}", o.url).c_str(), error_reason(c, ec), c,
                         o.json);
            st.rc = 1;
            io.stop();
            return;
        }
        st.ready = true;
        st.wait_acks = o.json && c.capabilities().acked;
        if (o.json)
            emit_json(carrier_event("ready", c));
        else if (g.verbose || o.trace)
            err_line(fmt::format("post: connected to {} over {}", o.url, join_stack(c.stack())));
        if (!o.file.empty()) {
            send(post::message(std::move(file_payload)));
            st.eof = true;
            maybe_close();
            return;
        }
        lines.emplace([&](std::string line) { send(post::message(std::move(line))); });
        pump = std::make_unique<stdin_pump>(
            io.get_executor(),
            [&](std::string chunk, std::function<void()> done) {
                lines->feed(chunk);
                done(); // sends queue in the carrier, as they always have
            },
            [&] {
                lines->finish();
                st.eof = true;
                maybe_close();
            });
        pump->start();
    });

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        st.eof = true;
        st.closing = true;
        c.abort();
        io.stop();
    });

    io.run();
    if (pump) pump->stop();
    return st.rc;
}

} // namespace

void add_listen_connect(CLI::App& app, const global_options& g, runner& run) {
    auto lo = std::make_shared<listen_options>();
    auto* l = app.add_subcommand("listen", "Listen on URL's address and print received messages");
    l->fallthrough();
    l->add_option("url", lo->url,
                  "SCHEME://HOST:PORT (tcp, udp, tls, dtls, sctp, quic, https, http) or HOST:PORT "
                  "(policy decides)")
        ->required();
    l->add_option("--policy", lo->policy_file, "Policy file (default: built-in defaults)")
        ->check(CLI::ExistingFile);
    l->add_flag("--echo", lo->echo, "Send every received message back to its sender");
    l->add_flag("--json", lo->json, "One JSON object per line per event");
    l->add_option("--count", lo->count, "Exit 0 after N received messages")
        ->check(CLI::PositiveNumber);
    add_property_options(l, lo->props, "each --echo reply");
    l->add_flag("--stream", lo->stream,
                "Accept one byte-stream carrier and copy it to stdout and stdin to it, like nc "
                "(no message framing: any plain TCP peer works)")
        ->excludes("--echo")
        ->excludes("--json")
        ->excludes("--count");
    l->callback([&g, &run, lo] {
        run = [&g, lo] {
            return lo->stream ? run_stream_listen(g, lo->url, lo->policy_file) : run_listen(g, *lo);
        };
    });

    auto co = std::make_shared<connect_options>();
    auto* c = app.add_subcommand("connect", "Send each line of stdin as a message to URL");
    c->fallthrough();
    c->add_option("url", co->url,
                  "SCHEME://HOST:PORT (tcp, udp, tls, dtls, sctp, quic, https, http) or HOST:PORT "
                  "(policy decides)")
        ->required();
    c->add_option("--policy", co->policy_file, "Policy file (default: built-in defaults)")
        ->check(CLI::ExistingFile);
    c->add_flag("--json", co->json, "One JSON object per line per event");
    c->add_option("--count", co->count, "Wait for N received messages before closing")
        ->check(CLI::PositiveNumber);
    c->add_option("--file", co->file, "Send this file as one message instead of reading stdin")
        ->check(CLI::ExistingFile);
    c->add_flag("--trace", co->trace,
                "Print the establishment timeline to stderr: locals gathered, DNS answers, each "
                "attempt (when it started, from where, how it ended) and the winner");
    c->add_option("--local", co->local,
                  "Bind to this local address (ADDR, ADDR:PORT, [V6]:PORT or :PORT); only "
                  "candidates of its family are tried")
        ->check([](const std::string& text) -> std::string {
            for (const auto& t : {text, text + ":0", "[" + text + "]:0"}) {
                try {
                    post::local::parse(t);
                    return {};
                } catch (const std::invalid_argument&) {
                }
            }
            return "'" + text + "' is not ADDR, ADDR:PORT, [V6]:PORT or :PORT";
        });
    c->add_option("--interface", co->interface,
                  "Use only this interface's addresses (e.g. eth0), within the policy's rules");
    add_property_options(c, co->props, "every message");
    c->add_flag("--stream", co->stream,
                "Morph the carrier into a byte stream and copy stdin to it and it to stdout, like "
                "nc (no message framing: talks to socat, nc, or `post listen --stream`)")
        ->excludes("--json")
        ->excludes("--count")
        ->excludes("--file")
        ->excludes("--local")
        ->excludes("--interface");
    c->callback([&g, &run, co] {
        run = [&g, co] {
            return co->stream ? run_stream_connect(g, co->url, co->policy_file)
                              : run_connect(g, *co);
        };
    });
}

} // namespace post_tool
