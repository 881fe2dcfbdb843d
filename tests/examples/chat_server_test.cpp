// tests/examples/chat_server_test.cpp: runs examples/chat_server the way a user does.
//
// Each test starts the real binary (a data dependency, found in the runfiles) as a child
// process on port 0 with --backend, reads the port from its start line, connects telnet-style
// clients (blocking logic over non-blocking sockets, every wait bounded) and stops it with
// SIGTERM, expecting exit status 0. The only process signalled is the child started here (a
// guard kills and reaps one a failed test leaves).

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/backends.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string server_path() {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/examples/chat_server";
    return "examples/chat_server";
}

int ms_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    return left.count() > 0 ? int(left.count()) : 0;
}

// "exited 0", "killed by SIGABRT", ... for failure messages.
std::string describe(int status) {
    if (status == -1) return "still running";
    if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + sigabbrev_np(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// Appends what fd has within timeout_ms; false at end of file or when nothing came.
bool drain(int fd, std::string& into, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    into.append(buf, std::size_t(n));
    return true;
}

// A chat_server child with its stdout and stderr on pipes.
class server {
public:
    explicit server(std::vector<std::string> args) {
        int out[2], err[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_adddup2(&actions, err[1], 2);
        std::string path = server_path();
        std::vector<char*> argv{path.data()};
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int rc = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        ::close(err[1]);
        out_ = out[0];
        err_ = err[0];
        INFO("posix_spawn " << path);
        REQUIRE(rc == 0);
    }
    ~server() {
        if (pid_ > 0) {  // a test failed half-way: do not leave our child behind
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
        ::close(err_);
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // The port of "chat_server: listening on 127.0.0.1:PORT (backend NAME)", waiting up to 10 s.
    unsigned port() {
        auto deadline = steady::now() + 10s;
        while (out_text_.find('\n') == std::string::npos &&
               drain(out_, out_text_, ms_until(deadline)))
            continue;
        std::string line = out_text_.substr(0, out_text_.find('\n'));
        INFO("start line: " << line << "\nstderr: " << err());
        auto at = line.find("listening on 127.0.0.1:");
        REQUIRE(at != std::string::npos);
        return unsigned(std::stoul(line.substr(at + 23)));
    }

    // stdout so far (the start line and the join/leave log; waits for nothing).
    const std::string& out() {
        while (drain(out_, out_text_, 0))
            continue;
        return out_text_;
    }
    const std::string& err() {
        while (drain(err_, err_text_, 0))
            continue;
        return err_text_;
    }

    // Sends SIGTERM and waits up to 10 s for the exit: its wait status, or -1.
    int terminate() {
        REQUIRE(::kill(pid_, SIGTERM) == 0);
        auto deadline = steady::now() + 10s;
        for (;;) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return status;
            }
            if (steady::now() >= deadline) return -1;
            std::this_thread::sleep_for(10ms);
        }
    }

    // Runs the binary with args to its exit (usage errors, --help): status, stdout, stderr.
    static std::tuple<int, std::string, std::string> run(std::vector<std::string> args) {
        server s(std::move(args));
        auto deadline = steady::now() + 10s;
        while (drain(s.out_, s.out_text_, ms_until(deadline)))
            continue;
        while (drain(s.err_, s.err_text_, ms_until(deadline)))
            continue;
        int status = -1;
        while (::waitpid(s.pid_, &status, WNOHANG) != s.pid_ && steady::now() < deadline)
            std::this_thread::sleep_for(10ms);
        if (WIFEXITED(status) || WIFSIGNALED(status)) s.pid_ = -1;
        return {status, s.out_text_, s.err_text_};
    }

private:
    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    std::string out_text_, err_text_;
};

// A telnet-style client of 127.0.0.1:port: sends lines, reads lines (without "\r\n").
class client {
public:
    // receive_buffer > 0 shrinks SO_RCVBUF before connecting (a slow reader fills up sooner).
    explicit client(unsigned port, int receive_buffer = 0)
        : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        if (receive_buffer > 0)
            REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                                 sizeof receive_buffer) == 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(std::uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        INFO("connect to port " << port << ": " << std::strerror(errno));
        REQUIRE(rc == 0);
        ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    }
    ~client() { close(); }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    // Sends all of data within 20 s.
    void send(const std::string& data) {
        std::size_t sent = 0;
        auto deadline = steady::now() + 20s;
        while (sent < data.size() && steady::now() < deadline) {
            pollfd p{fd_, POLLOUT, 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) continue;
            ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += std::size_t(n);
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
        }
        REQUIRE(sent == data.size());
    }

    // The next line, waiting up to `limit`; nullopt at end of stream or when none came in time.
    std::optional<std::string> line(std::chrono::milliseconds limit = 10s) {
        auto deadline = steady::now() + limit;
        for (;;) {
            if (auto nl = in_.find('\n'); nl != std::string::npos) {
                std::string l = in_.substr(0, nl);
                in_.erase(0, nl + 1);
                if (l.ends_with('\r')) l.pop_back();
                return l;
            }
            if (eof || !fill(ms_until(deadline))) return std::nullopt;
        }
    }

    // Reads and drops everything up to end of stream (or a reset) within 20 s: true if it came.
    bool reaches_end() {
        auto deadline = steady::now() + 20s;
        in_.clear();
        while (!eof && steady::now() < deadline) {
            fill(ms_until(deadline));
            in_.clear();
        }
        return eof;
    }

    bool eof = false;          // end of stream (or a reset) seen
    std::size_t received = 0;  // bytes read in all

private:
    // One read, waiting up to timeout_ms; false when nothing came.
    bool fill(int timeout_ms) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return false;
        char buf[65536];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        if (n <= 0) {
            eof = true;
            return false;
        }
        received += std::size_t(n);
        in_.append(buf, std::size_t(n));
        return true;
    }

    int fd_;
    std::string in_;
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
                        "[--backend auto|io_uring|epoll|select]\n"));
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
    INFO("lines sent: " << sent << ", bytes the slow reader had by then: " << slow.received);
    REQUIRE(kicked_at >= 0);
    // The slow reader finds its connection closed once it reads what the kernel holds.
    CHECK(slow.reaches_end());
    CHECK(slow.received < std::size_t(sent) * 1000);
    speaker.send("/who\r\n");
    CHECK(speaker.line() == "* here: speaker, listener");

    int status = s.terminate();
    INFO(describe(status) << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(s.out().find("chat_server: slow left (too slow: over 256 KiB unread)\n") !=
          std::string::npos);
}
