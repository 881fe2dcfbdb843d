// tests/examples/chat_server_test.cpp: runs examples/chat_server the way a user does.
//
// Each test starts the real binary (a data dependency, found in the runfiles) as a child
// process on port 0 with --backend, reads the port from its start line, connects telnet-style
// clients (blocking logic over non-blocking sockets, every wait bounded) and stops it with
// SIGTERM, expecting exit status 0. The only process signalled is the child started here
// (tests/support/process.hpp).

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/support/backends.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace std::chrono_literals;
using namespace coronet::testing;

// A chat_server child with these arguments.
class server : public child {
public:
    explicit server(std::vector<std::string> args) : child(argv(std::move(args))) {}

    // The port of "chat_server: listening on 127.0.0.1:PORT (backend NAME)", waiting up to 10 s.
    unsigned port() {
        INFO("stderr: " << err());
        return port_after(first_line(), "listening on 127.0.0.1:");
    }

    // Sends SIGTERM and waits up to 10 s for the exit: its wait status, or -1.
    int terminate() {
        signal(SIGTERM);
        return wait_exit(10s);
    }

    // Runs the binary with args to its exit (usage errors, --help): status, stdout, stderr.
    static std::tuple<int, std::string, std::string> run(std::vector<std::string> args) {
        auto r = coronet::testing::run(argv(std::move(args)), 10s);
        return {r.status, r.out, r.err};
    }

private:
    static std::vector<std::string> argv(std::vector<std::string> args) {
        args.insert(args.begin(), runfile("examples/chat_server"));
        return args;
    }
};

// A telnet-style client of 127.0.0.1:port: sends lines, reads lines (without "\r\n").
class client : public tcp_client {
public:
    // receive_buffer > 0 shrinks SO_RCVBUF before connecting (a slow reader fills up sooner).
    explicit client(unsigned port, int receive_buffer = 0)
        : tcp_client(port, {.receive_buffer = receive_buffer}) {}
};

const std::string greeting = "* welcome to the chat room; who are you? /nick NAME";

// Connects, checks the greeting and takes a nick.
void join(client& c, const std::string& nick) {
    REQUIRE(c.line() == greeting);
    c.send("/nick " + nick + "\r\n");
    REQUIRE(c.line() == "* hello " + nick + ", you can talk now (/who, /quit)");
}

}  // namespace

TEST_CASE("chat_server: --help prints the usage and exits 0", "[chat_server]") {
    auto [status, out, err] = server::run({"--help"});
    INFO(describe(status) << "\nstderr: " << err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(
        out.starts_with("usage: chat_server [--host 127.0.0.1] [--port 7777] "
                        "[--backend auto|io_uring|epoll|select] [--max-connections 10000]\n"));
    CHECK(err.empty());
}

TEST_CASE("chat_server: a bad argument prints what is wrong and the usage, and exits 2",
          "[chat_server]") {
    using case_t = std::pair<std::vector<std::string>, std::string>;
    auto [args, expected] = GENERATE(
        case_t{{"--port", "telnet"},
               "chat_server: --port: expected an integer from 0 to 65535, got 'telnet'\n"},
        case_t{
            {"--backend", "kqueue"},
            "chat_server: --backend: expected one of auto|io_uring|epoll|select, got 'kqueue'\n"},
        case_t{{"--port"}, "chat_server: --port needs a value\n"},
        case_t{{"stray"}, "chat_server: unexpected argument 'stray'\n"});
    auto [status, out, err] = server::run(args);
    INFO("args: " << Catch::Detail::stringify(args) << "\n"
                  << describe(status) << "\nstderr: " << err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(err.starts_with(expected));
    CHECK(err.find("\nusage: chat_server [--host") != std::string::npos);
    CHECK(out.empty());
}

TEST_CASE("chat_server: nicks, lines to everyone else, /who and /quit, on every backend",
          "[chat_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--port", "0", "--backend", std::string(coronet::to_string(kind))});
    unsigned port = s.port();
    CHECK(s.out().starts_with("chat_server: listening on 127.0.0.1:" + std::to_string(port) +
                              " (backend " + std::string(coronet::to_string(kind)) + ")\n"));

    client alice(port), bob(port), carol(port);
    REQUIRE(alice.line() == greeting);
    alice.send("hi before a nick\r\n");
    CHECK(alice.line() == "* pick a nick first: /nick NAME");
    alice.send("/nick alice\r\n");
    CHECK(alice.line() == "* hello alice, you can talk now (/who, /quit)");

    // Bad and taken nicks are refused; bob ends lines with a bare "\n".
    REQUIRE(bob.line() == greeting);
    const std::string invalid = "* a nick is 1 to 32 printable characters, no spaces";
    const std::vector<std::string> bad_nicks = {"/nick", "/nick ", "/nick two words",
                                                "/nick tab\there", "/nick " + std::string(33, 'b')};
    for (const auto& bad : bad_nicks) {
        INFO("sent: " << bad);
        bob.send(bad + "\n");
        CHECK(bob.line() == invalid);
    }
    bob.send("/nick alice\n");
    CHECK(bob.line() == "* alice is taken, try another");
    bob.send("/nick " + std::string(32, 'b') + "\n/nick bob\n");
    CHECK(bob.line() == "* hello " + std::string(32, 'b') + ", you can talk now (/who, /quit)");
    CHECK(alice.line() == "* " + std::string(32, 'b') + " joined");
    CHECK(bob.line() == "* " + std::string(32, 'b') + " is now bob");
    CHECK(alice.line() == "* " + std::string(32, 'b') + " is now bob");
    join(carol, "carol");
    CHECK(alice.line() == "* carol joined");
    CHECK(bob.line() == "* carol joined");

    // A line goes to everyone else, and not back to its sender: alice's next line is /who's.
    alice.send("hello, everyone\r\n");
    CHECK(bob.line() == "<alice> hello, everyone");
    CHECK(carol.line() == "<alice> hello, everyone");
    alice.send("/who\r\n");
    CHECK(alice.line() == "* here: alice, bob, carol");
    bob.send("/shout\n");
    CHECK(bob.line() == "* commands: /nick NAME, /who, /quit");

    // /quit: a goodbye, then the server closes; the others hear it.
    carol.send("/quit\r\n");
    CHECK(carol.line() == "* goodbye");
    CHECK(carol.reaches_end());
    CHECK(alice.line() == "* carol left");
    CHECK(bob.line() == "* carol left");

    // A line over 4 KiB: an error, then the server closes.
    {
        client dave(port);
        join(dave, "dave");
        CHECK(alice.line() == "* dave joined");
        CHECK(bob.line() == "* dave joined");
        dave.send(std::string(4200, 'x'));
        CHECK(dave.line() == "* error: line too long, goodbye");
        CHECK(dave.reaches_end());
        CHECK(alice.line() == "* dave left (line too long)");
        CHECK(bob.line() == "* dave left (line too long)");
    }

    // A client that just hangs up leaves too.
    bob.close();
    CHECK(alice.line() == "* bob left");
    alice.send("/who\r\n");
    CHECK(alice.line() == "* here: alice");

    int status = s.terminate();
    INFO(describe(status) << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(s.err().empty());
    for (const char* logged :
         {"alice joined", "carol left\n", "dave left (line too long)\n", "bob left\n"})
        CHECK(s.out().find(std::string("chat_server: ") + logged) != std::string::npos);
}

TEST_CASE("chat_server: a client that never reads is disconnected and never stalls the others",
          "[chat_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--port", "0", "--backend", std::string(coronet::to_string(kind))});
    unsigned port = s.port();
    client speaker(port), listener(port), slow(port, 4096);
    join(speaker, "speaker");
    join(listener, "listener");
    CHECK(speaker.line() == "* listener joined");
    join(slow, "slow");  // ... and never reads again
    CHECK(speaker.line() == "* slow joined");
    CHECK(listener.line() == "* slow joined");

    // Batches of 64 lines of 1000 bytes. The listener must get every one of each batch, in
    // order (a broadcaster that waited for the slow reader would stall here), until the slow
    // one is cut off once its queue passes 256 KiB; then a few more batches. At most 20 MB.
    const std::string notice = "* slow left (too slow: over 256 KiB unread)";
    const std::string padding(1000 - 12, '.');
    int kicked_at = -1, sent = 0;
    for (int batch = 0; batch < 320 && (kicked_at < 0 || batch < kicked_at + 4); ++batch) {
        std::string lines;
        for (int i = 0; i < 64; ++i)
            lines += "m" + std::to_string(sent + i) + " " + padding + "\r\n";
        speaker.send(lines);
        for (int i = 0; i < 64; ++i) {
            auto got = listener.line(20s);
            INFO("batch " << batch << ", line " << i);
            REQUIRE(got);
            if (*got == notice) {  // the room hears about it in between
                --i;
                continue;
            }
            REQUIRE(*got == "<speaker> m" + std::to_string(sent + i) + " " + padding);
        }
        sent += 64;
        // The speaker hears nothing of its own, only the notice.
        if (auto heard = speaker.line(0ms)) {
            INFO("batch " << batch);
            REQUIRE(*heard == notice);
            kicked_at = batch;
        }
    }
    INFO("lines sent: " << sent << ", bytes the slow reader had by then: " << slow.received());
    REQUIRE(kicked_at >= 0);
    // The slow reader finds its connection closed once it reads what the kernel holds.
    CHECK(slow.reaches_end());
    CHECK(slow.received() < std::size_t(sent) * 1000);
    speaker.send("/who\r\n");
    CHECK(speaker.line() == "* here: speaker, listener");

    int status = s.terminate();
    INFO(describe(status) << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(s.out().find("chat_server: slow left (too slow: over 256 KiB unread)\n") !=
          std::string::npos);
}

TEST_CASE("chat_server: SIGTERM with 10 chatting clients delivers every line in flight, exits 0",
          "[chat_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--port", "0", "--backend", std::string(coronet::to_string(kind))});
    unsigned port = s.port();
    constexpr int clients = 10, lines = 20;
    std::vector<std::unique_ptr<client>> room;
    for (int i = 0; i < clients; ++i) {
        room.push_back(std::make_unique<client>(port));
        join(*room.back(), "u" + std::to_string(i));
    }
    // Every client says 20 lines at once, and the signal follows at once: the lines are in
    // flight (in the server's sockets, or its buffers) when the shutdown begins.
    for (int i = 0; i < clients; ++i) {
        std::string batch;
        for (int j = 0; j < lines; ++j)
            batch += "line " + std::to_string(j) + "\r\n";
        room[i]->send(batch);
    }
    s.signal(SIGTERM);
    auto started = steady::now();
    for (int i = 0; i < clients; ++i) {
        INFO("client u" << i);
        std::size_t heard = 0;
        std::string last;
        while (auto l = room[i]->line(10s)) {
            if (l->starts_with("<u") && l->find("> line ") != std::string::npos) ++heard;
            last = *l;
        }
        CHECK(room[i]->eof());
        CHECK(heard == std::size_t((clients - 1) * lines));
        CHECK(last.starts_with("* "));  // the goodbye, or someone leaving after it
    }
    int status = s.wait_exit(10s);
    INFO(describe(status) << "\nstdout: " << s.out() << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(steady::now() - started < 10s);
    CHECK(s.out().find("chat_server: SIGTERM, shutting down") != std::string::npos);
    CHECK(s.err().empty());
}
