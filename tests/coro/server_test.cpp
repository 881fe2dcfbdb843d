#include <coronet/coro/server.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/tls.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/tls_certs.hpp"

using namespace std::chrono_literals;
using coronet::address;
using coronet::channel;
using coronet::connection;
using coronet::reactor;
using coronet::server;
using coronet::task;

namespace {

// Greets, then echoes lines until end of stream.
task<void> greet_echo(connection& c) {
    c.ch.push("hello\n");
    for (;;) {
        auto line = co_await c.ch.read_until("\n");
        if (!line) break;
        c.ch.push(std::string(*line) + "\n");
    }
}

// Ignores the stop: sleeps for an hour.
task<void> stubborn(connection& c) {
    c.ch.push("hello\n");
    co_await coronet::sleep_for(c.ch.context(), 1h);
}

// Reads one line, answers it, and returns, whatever else the client sent.
task<void> answer_once(connection& c) {
    auto line = co_await c.ch.read_until("\n");
    if (line) c.ch.push("reply to " + std::string(*line) + "\n");
}

task<channel> dial(reactor& r, address at) {
    auto s = co_await coronet::socket::connect(r, at);
    co_return channel(std::move(s));
}

// The next line from ch, "<eof>" at end of stream, "<timeout>" after 3 s.
task<std::string> line_of(channel& ch) {
    reactor& r = ch.context();
    try {
        auto line = co_await coronet::with_timeout(r, ch.read_until("\n"), 3s);
        co_return line ? std::string(*line) : std::string("<eof>");
    } catch (const std::system_error& e) {
        if (e.code() == coronet::errc::timed_out) co_return std::string("<timeout>");
        co_return std::string("<") + e.code().message() + ">";
    }
}

// Runs the loop until pred() or 3 s.
task<bool> until(reactor& r, std::function<bool()> pred) {
    for (int i = 0; i < 300 && !pred(); ++i)
        co_await coronet::sleep_for(r, 10ms);
    co_return pred();
}

// Captures what is written on stderr (the log) while it lives.
struct stderr_capture {
    std::FILE* file = std::tmpfile();
    int saved = ::dup(2);
    stderr_capture() {
        std::fflush(stderr);
        ::dup2(::fileno(file), 2);
    }
    ~stderr_capture() { restore(); }
    void restore() {
        if (saved < 0) return;
        std::fflush(stderr);
        ::dup2(saved, 2);
        ::close(saved);
        saved = -1;
    }
    std::string text() {
        restore();
        std::rewind(file);
        std::string out;
        char buf[4096];
        while (std::size_t n = std::fread(buf, 1, sizeof buf, file))
            out.append(buf, n);
        return out;
    }
};

std::size_t count(const std::string& text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

std::string unix_socket_path() {
    // Not TEST_TMPDIR: Bazel's is longer than a unix socket path may be (107 bytes).
    return "/tmp/coronet-server-test-" + std::to_string(::getpid());
}

task<std::vector<std::string>> three_families(reactor& r, std::string path) {
    server srv(r,
               {.listen = {address::parse("127.0.0.1:0"), address::parse("[::1]:0"),
                           address::unix_path(path)}},
               greet_echo);
    srv.start();
    std::vector<std::string> got;
    for (const auto& at : srv.local_addresses()) {
        auto ch = co_await dial(r, at);
        got.push_back(co_await line_of(ch));
        ch.push("ping " + at.to_string() + "\n");
        got.push_back(co_await line_of(ch));
    }
    co_await srv.shutdown();
    co_return got;
}

task<void> connection_limit(reactor& r, std::vector<std::string>* log) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}, .max_connections = 5}, greet_echo);
    srv.start();
    auto at = srv.local_addresses()[0];
    std::vector<channel> served, refused;
    for (int i = 0; i < 5; ++i) {
        served.push_back(co_await dial(r, at));
        log->push_back(co_await line_of(served.back()));
    }
    for (int i = 0; i < 5; ++i) {
        refused.push_back(co_await dial(r, at));
        log->push_back(co_await line_of(refused.back()));
    }
    log->push_back("rejected " + std::to_string(srv.rejected()));
    served.resize(3);  // two leave
    bool down = co_await until(r, [&] { return srv.connections().size() == 3; });
    log->push_back(down ? "3 open" : "still " + std::to_string(srv.connections().size()));
    for (int i = 0; i < 2; ++i) {
        served.push_back(co_await dial(r, at));
        log->push_back(co_await line_of(served.back()));
    }
    served.clear();
    co_await srv.shutdown();
}

task<std::string> idle_timeout(reactor& r) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}, .idle_timeout = 50ms}, greet_echo);
    srv.start();
    auto ch = co_await dial(r, srv.local_addresses()[0]);
    std::string out = co_await line_of(ch);
    out += " " + co_await line_of(ch);  // nothing sent: closed after ~50 ms
    co_await srv.shutdown();
    co_return out;
}

// Greets and echoes lines; "throw" makes it throw.
task<void> thrower(connection& c) {
    c.ch.push("hello\n");
    for (;;) {
        auto line = co_await c.ch.read_until("\n");
        if (!line) break;
        if (*line == "throw") throw std::runtime_error("handler gave up");
        c.ch.push(std::string(*line) + "\n");
    }
}

// Two clients; the first makes its handler throw. What each reads, and the open connections
// after the throw and after the shutdown.
task<std::string> handler_throws(reactor& r) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}}, thrower);
    srv.start();
    auto a = co_await dial(r, srv.local_addresses()[0]);
    auto b = co_await dial(r, srv.local_addresses()[0]);
    std::string out = co_await line_of(a);
    out += " " + co_await line_of(b);
    a.push("throw\n");
    out += " " + co_await line_of(a);  // closed: end of stream
    b.push("still here\n");
    out += " " + co_await line_of(b);
    bool one_left = co_await until(r, [&] { return srv.connections().size() == 1; });
    out += one_left ? " 1" : " not 1";
    b.close();
    co_await srv.shutdown();
    out += " " + std::to_string(srv.connections().size());
    co_return out;
}

task<std::vector<std::size_t>> registry_rows(reactor& r) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}}, greet_echo);
    srv.start();
    std::vector<channel> clients;
    for (int i = 0; i < 10; ++i) {
        clients.push_back(co_await dial(r, srv.local_addresses()[0]));
        (void)co_await line_of(clients.back());
    }
    clients[0].push("twelve bytes\n");  // 13 in
    (void)co_await line_of(clients[0]);
    std::vector<std::size_t> out;
    (void)co_await until(r, [&] { return srv.connections().list().size() == 10; });
    auto rows = srv.connections().list();
    out.push_back(rows.size());
    std::size_t idle = 0, with_bytes = 0;
    for (auto& row : rows) {
        idle += row.state == coronet::connection_state::idle;
        with_bytes += row.bytes_in == 13 && row.bytes_out == 6 + 13;
        if (row.peer.family() != AF_INET) idle = 1000;
    }
    out.push_back(idle);
    out.push_back(with_bytes);
    clients.resize(5);
    (void)co_await until(r, [&] { return srv.connections().size() == 5; });
    out.push_back(srv.connections().list().size());
    out.push_back(srv.connections().total());
    clients.clear();
    co_await srv.shutdown();
    co_return out;
}

// 100 pipelined lines in flight when the shutdown begins: every one is answered.
task<std::size_t> graceful(reactor& r) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}}, greet_echo);
    srv.start();
    auto ch = co_await dial(r, srv.local_addresses()[0]);
    (void)co_await line_of(ch);
    std::string batch;
    for (int i = 0; i < 100; ++i)
        batch += "request " + std::to_string(i) + "\n";
    co_await ch.write(batch);
    co_await ch.flush();
    // The first answer says the server is working through the batch: the rest are in flight.
    std::string first = co_await line_of(ch);
    std::size_t answered = first == "request 0";
    auto stop = coronet::spawn(r, srv.shutdown(), "shutdown");
    for (;;) {
        auto line = co_await line_of(ch);
        if (line == "<eof>" || line.starts_with("<")) break;
        answered += line == "request " + std::to_string(answered);
    }
    co_await stop;
    co_return answered;
}

task<std::string> stubborn_closed(reactor& r, reactor::clock::duration* took) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}, .drain_timeout = 100ms}, stubborn);
    srv.start();
    auto ch = co_await dial(r, srv.local_addresses()[0]);
    std::string out = co_await line_of(ch);
    auto t0 = reactor::clock::now();
    co_await srv.shutdown();
    *took = reactor::clock::now() - t0;
    out += " " + co_await line_of(ch);
    out += " " + std::to_string(srv.connections().size());
    co_return out;
}

// The client sends a line and 256 KiB more it never expects to be read: the reply survives.
task<std::string> lingering(reactor& r) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}}, answer_once);
    srv.start();
    auto ch = co_await dial(r, srv.local_addresses()[0]);
    ch.push("question\n" + std::string(256 * 1024, 'x'));
    // The reply has gone out (answer_once returns right after its push): the handler is done,
    // and the connection is in its lingering close with the client's bytes still unread.
    bool answered = co_await until(r, [&] {
        auto list = srv.connections().list();
        return !list.empty() && list[0].bytes_out > 0;
    });
    if (!answered) co_return "<no reply went out in 3 s>";
    std::string out = co_await line_of(ch);
    out += " " + co_await line_of(ch);
    co_await srv.shutdown();
    co_return out;
}

// A server with TLS options: the same greet_echo handler, a client over TLS; and, while a
// connection stalls in its handshake, it counts against max_connections (limit 2: one
// stalled + one served, the third is refused).
task<std::string> over_tls(reactor& r) {
    coronet::server_options o{.listen = {address::parse("127.0.0.1:0")}, .max_connections = 2};
    o.tls = coronet::tls_server_options{
        .certificate = {coronet::testing::certs().cert, coronet::testing::certs().key}};
    o.handshake_timeout = 500ms;
    server srv(r, o, greet_echo);
    srv.start();
    auto at = srv.local_addresses()[0];
    // Says nothing: in its handshake. No wait is needed for the server to count it: the
    // kernel queues connections in order, so the server has accepted this one (and begun its
    // handshake) before it accepts the next, whose handshake takes several loop turns more.
    auto stalled = co_await coronet::socket::connect(r, at);
    auto ctx = coronet::tls_context::client({.ca_file = coronet::testing::certs().ca});
    channel ch(
        co_await coronet::tls_connect(co_await coronet::socket::connect(r, at), ctx, "localhost"));
    std::string out = co_await line_of(ch);
    ch.push("over tls\n");
    out += " " + co_await line_of(ch);
    channel third = co_await dial(r, at);  // past the limit (the stalled one counts)
    out += " " + co_await line_of(third);
    std::array<std::byte, 16> buf;
    std::size_t n = co_await stalled.recv(buf);  // the handshake timeout closed it
    out += " stalled:" + std::to_string(n);
    co_await srv.shutdown();
    co_return out;
}

}  // namespace

TEST_CASE("server: with TLS options the handler is unchanged; handshakes count against the limit",
          "[server][tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(over_tls(r)) == "hello over tls <eof> stalled:0");
}

TEST_CASE("server: listens on IPv4, IPv6 and a unix path at once", "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto path = unix_socket_path();
    auto got = r.run(three_families(r, path));
    REQUIRE(got.size() == 6);
    CHECK(got[0] == "hello");
    CHECK(got[1] == "ping 127.0.0.1:" + got[1].substr(15));
    CHECK(got[2] == "hello");
    CHECK(got[3].starts_with("ping [::1]:"));
    CHECK(got[4] == "hello");
    CHECK(got[5] == "ping unix:" + path);
    CHECK(!std::filesystem::exists(path));  // removed at shutdown
}

TEST_CASE("server: the limit plus 5: 5 closed with one log line, served again after others close",
          "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::vector<std::string> log;
    stderr_capture err;
    r.run(connection_limit(r, &log));
    std::string text = err.text();
    INFO(text);
    REQUIRE(log.size() == 14);
    for (int i = 0; i < 5; ++i)
        CHECK(log[i] == "hello");
    for (int i = 5; i < 10; ++i)
        CHECK(log[i] == "<eof>");
    CHECK(log[10] == "rejected 5");
    CHECK(log[11] == "3 open");
    CHECK(log[12] == "hello");
    CHECK(log[13] == "hello");
    CHECK(count(text, "the limit") == 1);
}

TEST_CASE("server: a connection idle past idle_timeout is closed", "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(idle_timeout(r)) == "hello <eof>");
}

TEST_CASE("server: an exception escaping a handler is logged and ends that connection only",
          "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    stderr_capture err;
    std::string out;
    {
        reactor r{{.backend = kind}};
        out = r.run(handler_throws(r));
    }
    std::string log = err.text();
    CHECK(out == "hello hello <eof> still here 1 0");
    CHECK(count(log, "uncaptured exception in server connection: handler gave up") == 1);
}

TEST_CASE("server: the registry lists exactly the open connections", "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto out = r.run(registry_rows(r));
    CHECK(out == std::vector<std::size_t>{10, 10, 1, 5, 10});
}

TEST_CASE("server: shutdown answers the 100 pipelined requests in flight, then closes",
          "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(graceful(r)) == 100);
    CHECK(r.task_count() == 0);
}

TEST_CASE("server: a handler that ignores the stop is closed at the deadline", "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    reactor::clock::duration took{};
    stderr_capture err;
    CHECK(r.run(stubborn_closed(r, &took)) == "hello <eof> 0");
    CHECK(took >= 100ms);
    CHECK(took < 3s);
    CHECK(count(err.text(), "after the drain timeout") == 1);
}

TEST_CASE("server: the lingering close keeps the last reply from a reset", "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(lingering(r)) == "reply to question <eof>");
}

// --- closing at once: connection::close_at_once() ------------------------------------------

namespace {

// Reads one line and answers it; with nothing after the line, tells the server that the peer
// sends nothing more (the server then closes without lingering).
task<void> answer_and_done(connection& c) {
    auto line = co_await c.ch.read_until("\n");
    if (line) c.ch.push("reply to " + std::string(*line) + "\n");
    if (c.ch.buffered() == 0) c.close_at_once();
}

// The kernel's TCP state of fd: TCP_CLOSE once a reset came back.
int tcp_state(int fd) {
    ::tcp_info info{};
    ::socklen_t size = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return -1;
    return info.tcpi_state;
}

// After the server's end of stream: "closed" if the server's socket is gone (a byte sent now
// is answered by a reset, which closes ours, within 2 s), "open" if it still reads and drops
// what comes (it lingers): ours stays in CLOSE_WAIT for 300 ms.
task<std::string> server_side(reactor& r, channel& ch) {
    int fd = ch.sock().native_handle();
    if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) co_return "send failed";
    for (int i = 0; i < 200; ++i) {
        if (tcp_state(fd) == TCP_CLOSE) co_return "closed";
        if (i == 30 && tcp_state(fd) == TCP_CLOSE_WAIT) co_return "open";
        co_await coronet::sleep_for(r, 10ms);
    }
    co_return "state " + std::to_string(tcp_state(fd));
}

task<channel> dial_tls(reactor& r, address at) {
    auto ctx = coronet::tls_context::client({.ca_file = coronet::testing::certs().ca});
    auto s = co_await coronet::socket::connect(r, at);
    co_return channel(co_await coronet::tls_connect(std::move(s), ctx, "localhost"));
}

// A client that sends one line and never closes, against a server that lingers 10 s: the
// reply, the server's end, and (with close_at_once, the line being all the client sent) the
// connection gone from the server at once; with more after the line, it lingers as before.
task<std::string> close_after_reply(reactor& r, bool tls, std::string send) {
    coronet::server_options o{.listen = {address::parse("127.0.0.1:0")}, .linger = 10s};
    if (tls)
        o.tls = coronet::tls_server_options{
            .certificate = {coronet::testing::certs().cert, coronet::testing::certs().key}};
    server srv(r, o, answer_and_done);
    srv.start();
    auto at = srv.local_addresses()[0];
    channel ch;
    if (tls)
        ch = co_await dial_tls(r, at);
    else
        ch = co_await dial(r, at);
    auto t0 = reactor::clock::now();
    ch.push(send);
    std::string out = co_await line_of(ch);
    out += " " + co_await line_of(ch);
    std::function<bool()> unlisted = [&srv] { return srv.connections().size() == 0; };
    bool gone = co_await until(r, unlisted);
    out += gone ? " unlisted" : " listed";
    if (!tls || gone) out += " " + co_await server_side(r, ch);  // TLS: a raw byte is no record
    if (gone && reactor::clock::now() - t0 > 1s) out += " (slow)";
    ch.close();
    co_await srv.shutdown();
    co_return out;
}

}  // namespace

TEST_CASE("server: close_at_once: the reply, then the server closes without the client's end",
          "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(close_after_reply(r, false, "question\n")) ==
          "reply to question <eof> unlisted closed");
}

TEST_CASE("server: close_at_once over TLS: the reply, close_notify, and the socket closed at once",
          "[server][tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(close_after_reply(r, true, "question\n")) ==
          "reply to question <eof> unlisted closed");
}

namespace {

constexpr std::size_t big_reply = 4 * 1024 * 1024;

// As answer_and_done, with a reply larger than the socket buffers.
task<void> answer_big_and_done(connection& c) {
    auto line = co_await c.ch.read_until("\n");
    if (line) c.ch.push(std::string(big_reply, 'x') + "\n");
    if (c.ch.buffered() == 0) c.close_at_once();
}

// A TLS client that asks, lets the server fill the socket buffers, then reads to the end: the
// bytes it got and how the stream ended ("clean": close_notify came after them).
task<std::string> big_reply_then_end(reactor& r) {
    coronet::server_options o{.listen = {address::parse("127.0.0.1:0")}, .linger = 10s};
    o.tls = coronet::tls_server_options{
        .certificate = {coronet::testing::certs().cert, coronet::testing::certs().key}};
    server srv(r, o, answer_big_and_done);
    srv.start();
    channel ch = co_await dial_tls(r, srv.local_addresses()[0]);
    ch.push("question\n");
    co_await coronet::sleep_for(r, 200ms);
    std::size_t got = 0;
    for (;;) {
        auto piece = co_await coronet::with_timeout(r, ch.read_some(), 3s);
        if (!piece) break;
        got += piece->size();
    }
    std::error_code end = ch.close_reason();
    ch.close();
    co_await srv.shutdown();
    co_return std::to_string(got) + " " + (end ? end.message() : "clean");
}

}  // namespace

TEST_CASE(
    "server: close_at_once over TLS after a reply larger than the socket buffers: all of "
    "it, then close_notify",
    "[server][tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(big_reply_then_end(r)) == std::to_string(big_reply + 1) + " clean");
}

TEST_CASE("server: bytes after the last request keep the lingering close (no reset)", "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    // The handler leaves them unread, so it does not call close_at_once(): the server still
    // reads and drops what comes (the until() above gives up after 3 s: "listed").
    CHECK(r.run(close_after_reply(r, false, "question\nmore\n" + std::string(64 * 1024, 'x'))) ==
          "reply to question <eof> listed open");
}

namespace {

task<void> start_and_wait(reactor& r, int* served) {
    server srv(r, {.listen = {address::parse("127.0.0.1:0")}}, greet_echo);
    srv.start();
    std::vector<channel> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(co_await dial(r, srv.local_addresses()[0]));
        *served += co_await line_of(clients.back()) == "hello";
    }
    co_await coronet::sleep_for(r, std::chrono::hours(1));  // the reactor dies first
}

}  // namespace

TEST_CASE("server: a reactor destroyed with the server's connections open frees everything",
          "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int served = 0;
    {
        reactor r{{.backend = kind}};
        coronet::spawn(r, start_and_wait(r, &served), "main");
        r.run_for(200ms);
    }  // under ASan: no use after free, no leak
    CHECK(served == 3);
}

TEST_CASE("server: channel options out of range fail at construction, not at each accept",
          "[server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::server_options o{.listen = {address::parse("127.0.0.1:0")}};
    o.channel.max_buffer = std::size_t{1} << 32;  // past the channel's 32-bit limit
    auto ignore = [](coronet::connection&) -> task<void> { co_return; };
    CHECK_THROWS_WITH(server(r, o, ignore),
                      Catch::Matchers::Contains("channel_options::max_buffer"));
}
