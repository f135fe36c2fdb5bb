// Typed messages, worked through: a tiny chat protocol in JSON, spoken through typed carriers.
// The application defines two PDU structs and never touches bytes; the codec turns them into
// messages. Built and run by the test suite (example_typed_chat).
//
//   client -> server  chat_request {kind: "join" | "say", nick, text}
//   server -> client  chat_event   {kind: "welcome" | "said" | "error", nick, text}
#include <utility> // before Asio (Boost 1.74 with g++ 12)

#include <post.hpp>
#include <post/codecs/json.hpp>
#include <post/typed_carrier.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct chat_request {
    std::string kind;
    std::string nick;
    std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(chat_request, kind, nick, text)

struct chat_event {
    std::string kind;
    std::string nick;
    std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(chat_event, kind, nick, text)

using request_carrier = post::typed_carrier<post::json_codec<chat_request>>;
using event_carrier = post::typed_carrier<post::json_codec<chat_event>>;

/// The room: who has joined, and the carrier to reach each of them.
struct room {
    std::map<post::detail::carrier_impl*, std::string> nicks;
    std::vector<event_carrier> members;

    void handle(event_carrier from, const chat_request& r) {
        auto* key = from.underlying().impl().get();
        if (r.kind == "join") {
            nicks[key] = r.nick;
            members.push_back(from);
            from.send({"welcome", r.nick, std::to_string(members.size()) + " in the room"});
        } else if (r.kind == "say" && nicks.count(key)) {
            for (auto& m : members)
                if (m.underlying().impl().get() != key) m.send({"said", nicks[key], r.text});
        } else {
            from.send({"error", r.nick, "join first"});
        }
    }
};

int main() {
    boost::asio::io_context io;
    post::context ctx(io);

    // The server: one typed view per direction over each accepted carrier.
    room chat;
    auto l = post::listen(ctx, post::local::parse("127.0.0.1:0"));
    l.on_carrier([&chat](post::carrier c) {
        auto events = post::make_typed(c, post::json_codec<chat_event>{});
        post::make_typed(c, post::json_codec<chat_request>{})
            .on_decode_error([](const post::error& e) { std::cerr << e.to_string() << "\n"; })
            .on_received([&chat, events](chat_request r) { chat.handle(events, r); });
    });
    auto server = post::remote::from_endpoint(l.local_endpoints().front());

    // Three clients. Each sends requests and prints the events it receives.
    std::vector<std::string> transcript;
    struct client {
        request_carrier out;
        event_carrier in;
    };
    auto connect = [&] {
        auto c = post::initiate(ctx, server);
        c.on_error([](const post::error& e) { std::cerr << e.to_string() << "\n"; });
        return client{post::make_typed(c, post::json_codec<chat_request>{}),
                      post::make_typed(c, post::json_codec<chat_event>{})};
    };
    auto alice = connect();
    auto bob = connect();
    auto mallory = connect();
    auto log = [&](const std::string& who, const chat_event& e) {
        transcript.push_back(who + " <- " + e.kind + " " + e.nick + ": " + e.text);
        std::cout << transcript.back() << "\n";
    };
    auto finish = [&] {
        for (auto* c : {&alice, &bob, &mallory})
            c->out.close();
        l.close();
    };

    // The script: alice joins, then bob; bob greets alice, she answers; mallory speaks without
    // joining and is refused. Each step waits for the event that makes the next one valid.
    alice.out.underlying().on_ready([&] { alice.out.send({"join", "alice", ""}); });
    alice.in.on_received([&](chat_event e) {
        log("alice", e);
        if (e.kind == "welcome") bob.out.send({"join", "bob", ""});
        if (e.kind == "said") alice.out.send({"say", "alice", "hi " + e.nick});
    });
    bob.in.on_received([&](chat_event e) {
        log("bob", e);
        if (e.kind == "welcome") bob.out.send({"say", "bob", "hello alice"});
        if (e.kind == "said") mallory.out.send({"say", "mallory", "let me in"});
    });
    mallory.in.on_received([&](chat_event e) {
        log("mallory", e);
        finish();
    });

    io.run();

    const std::vector<std::string> expected{
        "alice <- welcome alice: 1 in the room", "bob <- welcome bob: 2 in the room",
        "alice <- said bob: hello alice",        "bob <- said alice: hi bob",
        "mallory <- error mallory: join first",
    };
    bool ok = transcript == expected;
    std::cout << "typed_chat: " << transcript.size() << " events, "
              << (ok ? "conversation as expected" : "UNEXPECTED conversation") << "\n";
    return ok ? 0 : 1;
}
