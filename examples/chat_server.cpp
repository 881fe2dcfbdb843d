// examples/chat_server.cpp: a chat room for telnet clients, Medusa's chat_server on coronet.
//
// Each client is greeted and asked for a nick (/nick NAME: 1-32 printable characters, no
// spaces, not taken). Then every line it types goes to everyone else as `<nick> text`, /who
// lists who is here, /quit says goodbye, and joins and leaves are announced. One coroutine per
// client reads its lines (read_until("\n"), a trailing "\r" dropped; a line over 4 KiB is an
// error and a goodbye). Saying something only push()es to the others, so the speaker never
// waits for a listener: a client that stops reading sees its queue grow, and once more than
// 256 KiB is unsent it is disconnected, so one slow reader never stalls the room. Joins and
// leaves are logged on stdout. The listener, --max-connections and the graceful stop are
// coronet::server's, and the signals a coronet::signal_set's: SIGINT or SIGTERM stops
// accepting; every line already received still reaches everyone (a session whose input has
// ended waits for the others' before it leaves), each client hears goodbye, and the server
// exits 0.
// Medusa ancestor: medusa/chat_server.py.
//
// Try: bazel run //examples:chat_server, then telnet 127.0.0.1 7777 from two terminals.

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;

constexpr std::size_t max_line = 4 * 1024;      // a longer line: an error, then goodbye
constexpr std::size_t max_queued = 256 * 1024;  // unsent output a client may leave: then goodbye

// One connected client; it lives in its session's coroutine frame.
struct client {
    coronet::channel& ch;  // the server's connection's
    std::string nick{};    // empty until /nick: until then it hears nothing from the room
    std::string kicked{};  // why the server disconnected it, if it did
};

// The room: the clients, which add and remove themselves in session(); nothing else does.
class chat_server {
public:
    explicit chat_server(coronet::reactor& r) : all_read_(r) {}
    coronet::task<> session(coronet::connection& c);

private:
    bool handle(client& me, std::string_view line);
    void set_nick(client& me, std::string_view nick);
    void broadcast(const std::string& line, const client* from);
    std::vector<client*> clients_;
    std::size_t reading_ = 0;  // sessions whose input has not ended
    coronet::event all_read_;  // notified when reading_ falls to 0
};

// Sends line to everyone in the room but `from`. It only push()es, so it never suspends and
// never changes clients_: a client it disconnects leaves from its own session, on a later turn.
void chat_server::broadcast(const std::string& line, const client* from) {
    for (client* c : clients_) {
        if (c == from || c->nick.empty() || !c->kicked.empty()) continue;
        c->ch.push(line);
        if (c->ch.queued() <= max_queued) continue;
        c->kicked = "too slow: over 256 KiB unread";
        c->ch.close();  // drops its queue; its read_until() sees end of stream
    }
}

// /nick NAME: takes a nick, or changes it, if it is valid and free.
void chat_server::set_nick(client& me, std::string_view nick) {
    auto printable = [](unsigned char c) { return c > ' ' && c < 0x7f; };
    if (nick.empty() || nick.size() > 32 || !std::ranges::all_of(nick, printable))
        return me.ch.push("* a nick is 1 to 32 printable characters, no spaces\r\n");
    if (std::ranges::any_of(clients_, [&](client* c) { return c->nick == nick; }))
        return me.ch.push("* " + std::string(nick) + " is taken, try another\r\n");
    std::string old = std::exchange(me.nick, std::string(nick));
    if (!old.empty()) return broadcast("* " + old + " is now " + me.nick + "\r\n", nullptr);
    me.ch.push("* hello " + me.nick + ", you can talk now (/who, /quit)\r\n");
    broadcast("* " + me.nick + " joined\r\n", &me);
    std::printf("chat_server: %s joined\n", me.nick.c_str());
}

// One line from a client: a command, or something to say. False after /quit.
bool chat_server::handle(client& me, std::string_view line) {
    if (line == "/quit") {
        me.ch.push("* goodbye\r\n");
        return false;
    }
    if (line == "/who") {
        std::string names;
        for (client* c : clients_)
            if (!c->nick.empty()) names += (names.empty() ? "" : ", ") + c->nick;
        me.ch.push("* here: " + (names.empty() ? "nobody yet" : names) + "\r\n");
    } else if (line == "/nick" || line.starts_with("/nick ")) {
        set_nick(me, line.size() > 6 ? line.substr(6) : "");
    } else if (line.starts_with('/')) {
        me.ch.push("* commands: /nick NAME, /who, /quit\r\n");
    } else if (me.nick.empty()) {
        me.ch.push("* pick a nick first: /nick NAME\r\n");
    } else if (!line.empty()) {
        broadcast("<" + me.nick + "> " + std::string(line) + "\r\n", &me);
    }
    return true;
}

// One client, from hello to goodbye.
coronet::task<> chat_server::session(coronet::connection& c) {
    client me{c.ch};
    struct membership {  // in the room as long as this frame lives, however it ends
        std::vector<client*>& room;
        client* c;
        ~membership() { std::erase(room, c); }
    } in_room{clients_, &me};
    clients_.push_back(&me);
    me.ch.push("* welcome to the chat room; who are you? /nick NAME\r\n");
    std::string why;  // stays empty for /quit or a hang-up
    ++reading_;
    for (;;) {
        // A peer's misbehaviour is routine here: errors come back as values, not exceptions.
        auto line = co_await me.ch.try_read_until("\n");
        if (line.error) {  // a line over max_line, or a receive error
            bool too_long = line.error == coronet::errc::line_too_long;
            why = too_long ? "line too long" : line.error.message();
            me.ch.push("* error: " + why + ", goodbye\r\n");
            break;
        }
        if (!line.bytes) break;  // nullopt: closed, or kicked
        std::string_view text = *line.bytes;
        if (text.ends_with('\r')) text.remove_suffix(1);
        if (!handle(me, text)) break;
    }
    // Shutting down: the server ended every client's input after what it had sent. Stay in the
    // room until every session has read (and said) what came, so no line is lost on the way.
    if (--reading_ == 0) all_read_.notify_all();
    while (c.stopping() && reading_ > 0) {
        bool notified = co_await all_read_.wait();
        if (!notified) break;  // cancelled: the drain's deadline
    }
    if (c.stopping()) {
        me.ch.push("* the server is shutting down, goodbye\r\n");
        why = "server shutting down";
    }
    if (!me.kicked.empty()) why = me.kicked;
    if (!me.nick.empty()) {
        std::string left = me.nick + " left" + (why.empty() ? "" : " (" + why + ")");
        broadcast("* " + left + "\r\n", &me);
        std::printf("chat_server: %s\n", left.c_str());
        me.nick.clear();  // out of /who while the goodbye drains
    }
}  // the server's lingering close sends what is queued, then closes

// The server until SIGINT or SIGTERM, then its graceful stop.
coronet::task<> run(coronet::reactor& r, coronet::server_options options) {
    coronet::signal_set signals(r, {SIGINT, SIGTERM});
    chat_server room(r);  // declared before the server: the sessions use it
    coronet::server server(r, options, [&room](coronet::connection& c) { return room.session(c); });
    server.start();
    std::printf("chat_server: listening on %s (backend %.*s)\n",
                server.local_addresses()[0].to_string().c_str(), int(r.backend_name().size()),
                r.backend_name().data());
    int signal = co_await signals.wait();
    std::printf("chat_server: SIG%s, shutting down\n", sigabbrev_np(signal));
    co_await server.shutdown();
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend = "auto";
    unsigned port = 7777, max_connections = 10'000;
    cli::parser args("chat_server", "A chat room for telnet clients (Medusa's chat_server).");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("max-connections", max_connections, 1u, 1'000'000u, "past it, closed at once");
    args.parse(argc, argv);
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });

    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one log line at a time, even into a pipe
    try {
        coronet::reactor r{{.backend = *coronet::parse_backend_kind(backend)}};
        r.run(run(r, {.listen = {at},
                      .max_connections = max_connections,
                      .channel = {.max_line = max_line},
                      .name = "chat_server"}));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "chat_server: %s\n", e.what());
        return 1;
    }
}
