// tests/examples/kv_server_test.cpp: runs examples/kv_server the way a user does, with Redis's
// own tools.
//
// Each test starts the real binary (a data dependency, found in the runfiles) on port 0 and reads
// the port from its start line. It talks to it with redis-cli, redis-benchmark and raw RESP over
// a loopback socket, then stops it with a signal, expecting exit status 0. redis-cli and
// redis-benchmark come from Debian's redis-tools: a missing tool fails the test and says how to
// install it. Every wait is bounded, and the only processes signalled are the children started
// here (tests/support/process.hpp kills and reaps one a failed test leaves behind).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/backends.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace coronet::testing;
using namespace std::chrono_literals;

// The kv_server binary, from the runfiles tree.
std::string server_path() { return runfile("examples/kv_server"); }

// kv_server on a free port with these extra arguments.
struct server : child {
    explicit server(std::vector<std::string> args, const child_options& o = {})
        : child(with_port(std::move(args)), o) {}
    static std::vector<std::string> with_port(std::vector<std::string> args) {
        args.insert(args.begin(), {server_path(), "--port", "0"});
        return args;
    }
    // The first line of stdout: "kv_server: listening on 127.0.0.1:PORT (backend ...)".
    std::string start_line() { return first_line(); }
    unsigned port() { return port_after(first_line(), "listening on 127.0.0.1:"); }
    // Stops it with sig and expects exit status 0 and no escaped exception in the log.
    void stop_cleanly(int sig = SIGTERM) {
        signal(sig);
        int status = wait_exit(10s);
        INFO(describe(status) << "\nstderr: " << err());
        CHECK(status == 0);
        CHECK(err().find("uncaptured") == std::string::npos);
    }
};

// What a tool printed on stdout, its trailing newlines trimmed; fails if it fails or overruns.
std::string run_tool(const std::string& name, std::vector<std::string> args,
                     milliseconds timeout = 20s) {
    args.insert(args.begin(), tool(name,
                                   "install Debian's redis-tools, e.g. `apt-get install -y "
                                   "redis-tools` or tools/install-deps.sh (test group)"));
    auto [status, out, err] = run(args, timeout);
    INFO(Catch::Detail::stringify(args)
         << ": " << describe(status) << "\nstdout: " << out << "\nstderr: " << err);
    REQUIRE(status == 0);
    while (out.ends_with('\n'))
        out.pop_back();
    return out;
}

std::string cli(unsigned port, std::vector<std::string> args) {
    args.insert(args.begin(), {"-p", std::to_string(port)});
    return run_tool("redis-cli", std::move(args));
}

// A raw TCP connection to 127.0.0.1:port.
class connection {
public:
    explicit connection(unsigned port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(std::uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        INFO("connect to port " << port << ": " << std::strerror(errno));
        REQUIRE(rc == 0);
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~connection() { ::close(fd_); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Sends all of data (blocking; the replies here are small enough not to fill the buffers).
    void send(std::string_view data) {
        while (!data.empty()) {
            ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            REQUIRE(n > 0);
            data.remove_prefix(std::size_t(n));
        }
    }

    // Sends what it can of data: false when the peer closed or reset before all of it went.
    bool try_send(std::string_view data) {
        while (!data.empty()) {
            ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            data.remove_prefix(std::size_t(n));
        }
        return true;
    }

    // shutdown(SHUT_WR): the server sees end of stream, reading goes on.
    void shutdown_send() { REQUIRE(::shutdown(fd_, SHUT_WR) == 0); }

    // SO_LINGER 0, then close: the kernel drops what is queued and sends a reset.
    void reset() {
        linger l{1, 0};
        REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
        ::close(fd_);
        fd_ = -1;
    }

    // Reads until `size` bytes came, the peer closed (closed() is then true) or 10 s passed.
    std::string receive(std::size_t size) {
        std::string got;
        auto deadline = steady::now() + 10s;
        while (got.size() < size) {
            pollfd p{fd_, POLLIN, 0};
            int ready = ::poll(&p, 1, ms_until(deadline));
            if (ready < 0 && errno == EINTR) continue;  // a signal is not the deadline
            if (ready <= 0) break;
            char buf[65536];
            ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, size - got.size()), 0);
            if (n <= 0) {
                closed_ = true;
                break;
            }
            got.append(buf, std::size_t(n));
        }
        return got;
    }

    // Reads until what came ends with marker (or the peer closed, or 10 s passed per byte).
    std::string receive_until(std::string_view marker) {
        std::string got;
        while (!got.ends_with(marker)) {
            std::string one = receive(1);
            if (one.empty()) break;
            got += one;
        }
        return got;
    }

    // The reply to `request`, expected to be exactly as long as `expected` (then compared).
    std::string round_trip(std::string_view request, std::string_view expected) {
        send(request);
        return receive(expected.size());
    }

    // Reads replies of exactly `expected` until it differs or `count` were read: how many matched.
    std::size_t receive_each(const std::string& expected, std::size_t count) {
        std::size_t n = 0;
        while (n < count && receive(expected.size()) == expected)
            ++n;
        return n;
    }

    // True when the server closed the connection (EOF or a reset) within 10 s.
    bool closed() {
        if (!closed_) receive(SIZE_MAX);
        return closed_;
    }

private:
    int fd_;
    bool closed_ = false;
};

// A non-blocking connect to 127.0.0.1:port, not waited for (-1 if even socket() failed).
int start_connect(unsigned port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // 0 or EINPROGRESS
    return fd;
}

// Resident memory of a process (VmRSS in /proc/PID/status), in bytes.
std::size_t rss_bytes(pid_t pid) { return rss_kib(pid) * 1024; }

double mib(std::size_t bytes) { return double(bytes) / (1024 * 1024); }

// Growth in resident memory the fault tests allow the server (its own buffers are ~1 MiB).
constexpr std::size_t rss_bound = 16 * 1024 * 1024;

// "*N\r\n$len\r\nword\r\n..." for a command.
std::string resp(std::vector<std::string> words) {
    std::string out = "*" + std::to_string(words.size()) + "\r\n";
    for (auto& w : words)
        out += "$" + std::to_string(w.size()) + "\r\n" + w + "\r\n";
    return out;
}

}  // namespace

TEST_CASE("kv_server: --help prints the usage and exits 0", "[kv_server]") {
    child s({server_path(), "--help"});
    int status = s.wait_exit(10s);
    INFO(describe(status) << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(
        s.out().starts_with("usage: kv_server [--host 127.0.0.1] [--port 6380] [--threads 1] "
                            "[--backend auto|io_uring|epoll|select] [--max-bulk 536870912] "
                            "[--max-connections 10000]\n"));
    CHECK(s.err().empty());
}

TEST_CASE("kv_server: a bad argument prints what is wrong and the usage, and exits 2",
          "[kv_server]") {
    using case_t = std::pair<std::vector<std::string>, std::string>;
    auto [args, expected] = GENERATE(
        case_t{{"--nope"}, "kv_server: unknown flag '--nope'"},
        case_t{{"--port", "redis"},
               "kv_server: --port: expected an integer from 0 to 65535, got 'redis'"},
        case_t{{"--backend", "kqueue"},
               "kv_server: --backend: expected one of auto|io_uring|epoll|select"},
        case_t{{"--threads", "0"}, "kv_server: --threads: expected an integer from 1 to 256"},
        case_t{{"--max-bulk", "0"},
               "kv_server: --max-bulk: expected an integer from 1 to 1099511627776"},
        case_t{{"--max-bulk", "1k"}, "kv_server: --max-bulk: expected an integer"},
        case_t{{"stray"}, "kv_server: unexpected argument 'stray'"});
    std::vector<std::string> argv{server_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    child s(argv);
    int status = s.wait_exit(10s);
    INFO("args: " << Catch::Detail::stringify(args) << "\n"
                  << describe(status) << "\nstderr: " << s.err());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(s.err().starts_with(expected));
    CHECK(s.err().find("\nusage: kv_server [--host") != std::string::npos);
    CHECK(s.out().empty());
}

TEST_CASE("kv_server: redis-cli commands get Redis's replies on every backend", "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    std::string name(coronet::to_string(kind));
    server s({"--backend", name});
    unsigned port = s.port();
    CHECK(s.start_line().ends_with("(backend " + name + ", 1 thread)"));

    using case_t = std::pair<std::vector<std::string>, std::string>;
    const std::vector<case_t> cases{
        {{"PING"}, "PONG"},
        {{"ECHO", "hello world"}, "hello world"},
        {{"SET", "k", "v1"}, "OK"},
        {{"GET", "k"}, "v1"},
        {{"GET", "missing"}, ""},
        {{"EXISTS", "k", "missing", "k"}, "2"},
        {{"INCR", "n"}, "1"},
        {{"INCR", "n"}, "2"},
        {{"INCR", "k"}, "ERR value is not an integer or out of range"},
        {{"MSET", "a", "1", "b", "2"}, "OK"},
        {{"MGET", "a", "missing", "b"}, "1\n\n2"},
        {{"EXPIRE", "a", "100"}, "1"},
        {{"TTL", "a"}, "100"},
        {{"TTL", "b"}, "-1"},
        {{"TTL", "missing"}, "-2"},
        {{"DEL", "a", "b", "missing"}, "2"},
        {{"EXISTS", "a"}, "0"},
        {{"GET"}, "ERR wrong number of arguments for 'get' command"},
        {{"SET", "k"}, "ERR wrong number of arguments for 'set' command"},
        {{"NOPE", "x"}, "ERR unknown command 'NOPE', with args beginning with: 'x' "},
        {{"CONFIG", "GET", "save"}, "save"},  // and an empty value (trimmed here)
        {{"DBSIZE"}, "2"},
    };
    for (const auto& [args, expected] : cases) {
        INFO("redis-cli " << Catch::Detail::stringify(args));
        CHECK(cli(port, args) == expected);
    }
    s.stop_cleanly();
}

TEST_CASE("kv_server: a pipelined packet switches between lines, counts and bulks", "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind))});
    connection c(s.port());
    // One send: a multibulk SET whose value holds "\r\n" (read_exactly, not read_until), an inline
    // PING, an empty line, "*0", a multibulk GET and inline commands with extra spaces.
    const std::string request = resp({"SET", "key", "a\r\nb"}) + "PING\r\n\r\n*0\r\n" +
                                resp({"GET", "key"}) + "  ECHO   hi  \r\nINCR n\n" +
                                resp({"EXISTS", "key", "n"});
    const std::string expected = "+OK\r\n+PONG\r\n$4\r\na\r\nb\r\n$2\r\nhi\r\n:1\r\n:2\r\n";
    CHECK(c.round_trip(request, expected) == expected);

    SECTION("the same, one byte per send") {
        connection slow(s.port());
        for (char byte : request)
            slow.send(std::string_view(&byte, 1));
        const std::string again = "+OK\r\n+PONG\r\n$4\r\na\r\nb\r\n$2\r\nhi\r\n:2\r\n:2\r\n";
        CHECK(slow.receive(again.size()) == again);
    }
    SECTION("a value bigger than one read comes through whole") {
        std::string big(300 * 1024, 'x');
        for (std::size_t i = 0; i < big.size(); i += 4093)
            big[i] = char('a' + i % 26);
        CHECK(c.round_trip(resp({"SET", "big", big}), "+OK\r\n") == "+OK\r\n");
        std::string reply = "$" + std::to_string(big.size()) + "\r\n" + big + "\r\n";
        CHECK(c.round_trip(resp({"GET", "big"}), reply) == reply);
    }
    SECTION("requests sent just before end of stream are still answered") {
        connection last(s.port());
        last.send(request);
        last.shutdown_send();
        const std::string again = "+OK\r\n+PONG\r\n$4\r\na\r\nb\r\n$2\r\nhi\r\n:2\r\n:2\r\n";
        CHECK(last.receive(again.size()) == again);
        CHECK(last.closed());
    }
    SECTION("QUIT answers, then closes") {
        CHECK(c.round_trip("QUIT\r\nPING\r\n", "+OK\r\n") == "+OK\r\n");
        CHECK(c.closed());
    }
    s.stop_cleanly();
}

TEST_CASE("kv_server: a bad or oversized length gets an error, then the connection closes",
          "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind)), "--max-bulk", "100000"});
    unsigned port = s.port();
    using case_t = std::pair<std::string, std::string>;
    auto [request, error] =
        GENERATE(case_t{"*2\r\n$3\r\nGET\r\n$100001\r\n", "invalid bulk length"},
                 case_t{"*2\r\n$3\r\nGET\r\n$536870913\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$-5\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$12x\r\n", "invalid bulk length"},
                 case_t{"*1048577\r\n", "invalid multibulk length"},
                 // Integer overflow and numbers Redis's string2ll refuses.
                 case_t{"*1\r\n$9223372036854775808\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$18446744073709551617\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$-2\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$+1\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$01\r\n", "invalid bulk length"},
                 case_t{"*1\r\n$\r\n", "invalid bulk length"},
                 case_t{"*9223372036854775808\r\n", "invalid multibulk length"},
                 case_t{"*+1\r\n", "invalid multibulk length"},
                 case_t{"*01\r\n", "invalid multibulk length"},
                 case_t{"*1x\r\n", "invalid multibulk length"},
                 case_t{"*1\r\nx3\r\n", "expected '$', got 'x'"},
                 case_t{"*1\r\n$4\r\nPINGxx", "bulk string not followed by CRLF"},
                 case_t{std::string(70 * 1024, 'a'), "too big inline request"});
    INFO("request: " << request.substr(0, 40));
    connection c(port);
    CHECK(c.round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
    std::string expected = "-ERR Protocol error: " + error + "\r\n";
    CHECK(c.round_trip(request, expected) == expected);
    CHECK(c.closed());
    // The largest allowed bulk still works, on a new connection.
    connection d(port);
    std::string value(100000, 'v');
    CHECK(d.round_trip(resp({"SET", "max", value}), "+OK\r\n") == "+OK\r\n");
    std::string reply = "$100000\r\n" + value + "\r\n";
    CHECK(d.round_trip(resp({"GET", "max"}), reply) == reply);
    s.stop_cleanly(SIGINT);
}

TEST_CASE("kv_server: a client that does not read its replies is not read either", "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind))});
    connection c(s.port());
    const std::string value(256 * 1024, 'v');
    CHECK(c.round_trip(resp({"SET", "v", value}), "+OK\r\n") == "+OK\r\n");
    const std::size_t before = rss_bytes(s.pid());
    // 1,000 GETs in one go are 250 MiB of replies; unread, at most ~1 MiB of them may queue up
    // in the server (plus what the kernel's socket buffers hold, which is not the server's RSS).
    std::string gets;
    for (int i = 0; i < 1000; ++i)
        gets += "GET v\r\n";
    c.send(gets);
    std::size_t peak = 0;
    for (int i = 0; i < 10; ++i) {  // sampled over half a second while the replies stay unread
        std::this_thread::sleep_for(50ms);
        peak = std::max(peak, rss_bytes(s.pid()));
    }
    // Meanwhile another client is served, the big value included.
    connection other(s.port());
    CHECK(other.round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
    CHECK(other.round_trip("SET w 1\r\nINCR w\r\n", "+OK\r\n:2\r\n") == "+OK\r\n:2\r\n");
    const std::string one = "$262144\r\n" + value + "\r\n";
    CHECK((other.round_trip("GET v\r\n", one) == one));
    peak = std::max(peak, rss_bytes(s.pid()));
    std::printf(
        "kv_server [%s] unread replies: RSS %.1f MiB before, %.1f MiB peak (+%.1f MiB) "
        "with 250 MiB of replies asked for\n",
        std::string(coronet::to_string(kind)).c_str(), mib(before), mib(peak),
        mib(peak - std::min(peak, before)));
    CHECK(peak < before + rss_bound);
    CHECK(c.receive_each(one, 1000) == 1000);
    s.stop_cleanly();
}

TEST_CASE("kv_server: huge announced sizes and a 1 MiB inline line leave memory flat",
          "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const std::string name(coronet::to_string(kind));
    server s({"--backend", name});  // default limits: 512 MiB a bulk string, 2^20 of them
    unsigned port = s.port();
    struct case_t {
        std::string label, request, error;
    };
    const std::vector<case_t> cases{
        {"bulk length 2^40", "*2\r\n$3\r\nGET\r\n$1099511627776\r\n", "invalid bulk length"},
        {"multibulk count 2^40", "*1099511627776\r\n", "invalid multibulk length"},
        {"bulk length 600 MiB", "*2\r\n$3\r\nSET\r\n$629145600\r\n", "invalid bulk length"},
        {"1 MiB inline line", std::string(1024 * 1024, 'a') + "\r\n", "too big inline request"},
    };
    for (const auto& [label, request, error] : cases) {
        INFO("request: " << label);
        const std::size_t before = rss_bytes(s.pid());
        connection c(port);
        c.try_send(request);  // the server may close before the end of a long one
        const std::string expected = "-ERR Protocol error: " + error + "\r\n";
        CHECK(c.receive(expected.size()) == expected);
        CHECK(c.closed());
        const std::size_t after = rss_bytes(s.pid());
        std::printf("kv_server [%s] %s: error and close, RSS %.1f -> %.1f MiB\n", name.c_str(),
                    label.c_str(), mib(before), mib(after));
        CHECK(after < before + rss_bound);
    }
    {  // an allowed length that never arrives costs only what did arrive
        const std::size_t before = rss_bytes(s.pid());
        connection c(port);
        c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$524288000\r\n");  // 500 MiB announced
        c.send(std::string(1024 * 1024, 'x'));                   // 1 MiB sent
        connection other(port);
        CHECK(other.round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
        const std::size_t during = rss_bytes(s.pid());
        std::printf("kv_server [%s] 500 MiB bulk announced, 1 MiB sent: RSS %.1f -> %.1f MiB\n",
                    name.c_str(), mib(before), mib(during));
        CHECK(during < before + rss_bound);
        c.shutdown_send();
        CHECK(c.closed());  // end of stream mid-bulk: closed, nothing stored
        CHECK(other.round_trip("DBSIZE\r\n", ":0\r\n") == ":0\r\n");
    }
    {  // a count of zero or less is an empty request, as in Redis
        connection c(port);
        CHECK(c.round_trip("*-2\r\n*0\r\nPING\r\n", "+PONG\r\n") == "+PONG\r\n");
    }
    s.stop_cleanly();
}

TEST_CASE("kv_server: a reset mid-response or a half-close leaves the others served",
          "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const std::string name(coronet::to_string(kind));
    server s({"--backend", name});
    unsigned port = s.port();
    connection other(port);
    const std::string value(256 * 1024, 'r');
    CHECK(other.round_trip(resp({"SET", "v", value}), "+OK\r\n") == "+OK\r\n");
    const std::string one = "$262144\r\n" + value + "\r\n";
    std::string gets;
    for (int i = 0; i < 100; ++i)
        gets += "GET v\r\n";  // 25 MiB of replies: more than the socket buffers hold
    const std::size_t before = rss_bytes(s.pid());
    std::string what;

    SECTION("reset (SO_LINGER 0) with replies queued, five times") {
        what = "five resets with replies queued";
        for (int round = 0; round < 5; ++round) {
            connection c(port);
            c.send(gets);
            CHECK(c.receive(100 * 1024).size() == 100 * 1024);  // part of the first reply
            c.reset();
            CHECK(other.round_trip("INCR resets\r\n", ":" + std::to_string(round + 1) + "\r\n") ==
                  ":" + std::to_string(round + 1) + "\r\n");
        }
    }
    SECTION("half-close after sending: every reply still arrives, then end of stream") {
        what = "half-close, 25 MiB of replies";
        connection c(port);
        c.send(gets);
        c.shutdown_send();
        CHECK(other.round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
        CHECK(c.receive_each(one, 100) == 100);
        CHECK(c.closed());
    }
    CHECK((other.round_trip("GET v\r\n", one) == one));
    connection late(port);
    CHECK(late.round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
    const std::size_t after = rss_bytes(s.pid());
    std::printf("kv_server [%s] %s: RSS %.1f -> %.1f MiB\n", name.c_str(), what.c_str(),
                mib(before), mib(after));
#ifndef __SANITIZE_ADDRESS__
    // Not under ASan: its quarantine keeps the freed reply buffers (25 MiB went out here)
    // resident, up to 256 MiB, so the figure there measures the sanitizer, not the server.
    CHECK(after < before + rss_bound);
#endif
    s.stop_cleanly();
    CHECK(s.err().find("uncaptured") == std::string::npos);
}

TEST_CASE("kv_server: under RLIMIT_NOFILE 256, 1,000 connections do not stop or spin it",
          "[kv_server]") {
    // UBSan's vptr check reads memory through a pipe(), so with no descriptor left the server's
    // own `throw std::system_error` (EMFILE) is reported as "invalid vptr": a sanitizer limit.
#if defined(CORONET_UBSAN_VPTR)  // --config=ubsan
    WARN("UBSan needs free descriptors for its vptr check; skipped");
    return;
#endif
    CORONET_FOR_EACH_BACKEND(kind);
    const std::string name(coronet::to_string(kind));
    REQUIRE(raise_open_files(1100) >= 1100);  // this test's 1,000 sockets
    server s({"--backend", name}, {.max_files = 256});
    unsigned port = s.port();
    connection first(port);
    CHECK(first.round_trip("SET k v\r\n", "+OK\r\n") == "+OK\r\n");

    std::vector<int> flood;
    for (int i = 0; i < 1000; ++i) {
        int fd = start_connect(port);
        REQUIRE(fd >= 0);
        flood.push_back(fd);
    }
    auto deadline = steady::now() + 20s;
    while (s.err().find("Too many open files") == std::string::npos && steady::now() < deadline)
        std::this_thread::sleep_for(10ms);
    INFO("stderr: " << s.err());
    REQUIRE(s.err().find("accept: Too many open files") != std::string::npos);

    // Stuck at the limit for 2 s: it backs off (no busy loop), logs the burst once, and the
    // connections it has are still served. The bound is loose on purpose: a spinning accept
    // loop burns the whole 2 s.
    auto cpu_before = cpu_time(s.pid());
    std::this_thread::sleep_for(2s);
    auto cpu = cpu_time(s.pid()) - cpu_before;
    std::printf(
        "kv_server [%s] at RLIMIT_NOFILE 256 with 1,000 connections: %.0f%% of a core "
        "over 2 s, %zu accept warning(s)\n",
        name.c_str(), cpu.count() / 2 * 100, count(s.err(), "accept:"));
    CHECK(cpu < 1s);
    CHECK(count(s.err(), "accept:") == 1);
    CHECK(s.wait_exit(0ms) == -1);  // still running
    CHECK(first.round_trip("GET k\r\n", "$1\r\nv\r\n") == "$1\r\nv\r\n");

    // Descriptors come back: a new connection is served (after the backlog drains).
    for (int fd : flood)
        ::close(fd);
    std::string reply;
    deadline = steady::now() + 30s;
    while (reply != "+PONG\r\n" && steady::now() < deadline) {
        connection late(port);
        reply = late.round_trip("PING\r\n", "+PONG\r\n");
    }
    CHECK(reply == "+PONG\r\n");
    s.stop_cleanly();
}

TEST_CASE("kv_server: SIGTERM with 100 pipelined commands in flight answers them all, exits 0",
          "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const unsigned threads = GENERATE(1u, 2u);
    INFO("threads: " << threads);
    server s(
        {"--backend", std::string(coronet::to_string(kind)), "--threads", std::to_string(threads)});
    unsigned port = s.port();
    connection idle(port);  // an idle client does not hold up the stop
    CHECK(idle.round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
    connection c(port);
    const std::string value(256 * 1024, 's');
    CHECK(c.round_trip(resp({"SET", "v", value}), "+OK\r\n") == "+OK\r\n");
    // 50 GETs of 256 KiB between 50 INCRs: 12.5 MiB of replies, more than the socket buffers
    // hold, so at the signal most replies are not written yet and most requests not yet run.
    std::string request, expected;
    for (int i = 0; i < 100; ++i) {
        if (i % 2 == 0) {
            request += "GET v\r\n";
            expected += "$262144\r\n" + value + "\r\n";
        } else {
            request += "INCR n\r\n";
            expected += ":" + std::to_string(i / 2 + 1) + "\r\n";
        }
    }
    c.send(request);
    std::string got = c.receive(1);  // the server is answering: the requests reached it
    s.signal(SIGTERM);
    got += c.receive(expected.size() - got.size());
    CHECK(got.size() == expected.size());
    CHECK((got == expected));
    CHECK(c.closed());
    CHECK(idle.closed());
    int status = s.wait_exit(20s);
    INFO(describe(status) << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(s.err().find("uncaptured") == std::string::npos);
}

TEST_CASE("kv_server: INFO says connected_clients and total_connections_received", "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind))});
    unsigned port = s.port();
    auto field = [](const std::string& info, const std::string& name) {
        auto at = info.find(name + ":");
        if (at == std::string::npos) return std::string("missing");
        at += name.size() + 1;
        return info.substr(at, info.find('\r', at) - at);
    };
    std::vector<std::unique_ptr<connection>> open;
    for (int i = 0; i < 3; ++i) {
        open.push_back(std::make_unique<connection>(port));
        CHECK(open.back()->round_trip("PING\r\n", "+PONG\r\n") == "+PONG\r\n");
    }
    connection asker(port);
    asker.send("INFO\r\n");
    std::string info = asker.receive_until("# Keyspace\r\n");
    CHECK(field(info, "connected_clients") == "4");
    CHECK(field(info, "total_connections_received") == "4");
    open.clear();
    std::string now;
    for (int i = 0; i < 100; ++i) {  // the server sees the three closes soon
        asker.send("INFO\r\n");
        now = asker.receive_until("# Keyspace\r\n");
        if (field(now, "connected_clients") == "1") break;
        std::this_thread::sleep_for(20ms);
    }
    CHECK(field(now, "connected_clients") == "1");
    CHECK(field(now, "total_connections_received") == "4");
    s.stop_cleanly();
}

TEST_CASE("kv_server: redis-benchmark -P 16 runs without errors and leaves its keys",
          "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind))});
    unsigned port = s.port();
    std::string out = run_tool("redis-benchmark",
                               {"-p", std::to_string(port), "-t", "set,get", "-P", "16", "-n",
                                "100000", "-r", "100", "-q"},
                               120s);
    INFO("redis-benchmark: " << out);
    CHECK(out.find("SET: ") != std::string::npos);
    CHECK(out.find("GET: ") != std::string::npos);
    CHECK(out.find("requests per second") != std::string::npos);
    CHECK(out.find("ERR") == std::string::npos);
    CHECK(out.find("WARN") == std::string::npos);  // e.g. "Could not fetch server CONFIG"
    // -r 100: keys key:000000000000 to key:000000000099, each set to "VXK".
    std::string dbsize = cli(port, {"DBSIZE"});
    CHECK(std::stoi(dbsize) > 0);
    CHECK(std::stoi(dbsize) <= 100);
    std::vector<std::string> mget{"MGET"};
    for (int i = 0; i < 100; ++i)
        mget.push_back("key:0000000000" + std::string(i < 10 ? "0" : "") + std::to_string(i));
    std::string values = cli(port, mget) + "\n";
    std::size_t found = 0;
    for (std::size_t at = 0; at < values.size();) {
        std::size_t end = values.find('\n', at);
        std::string value = values.substr(at, end - at);
        CHECK((value.empty() || value == "VXK"));
        found += value == "VXK";
        at = end + 1;
    }
    CHECK(found == std::size_t(std::stoi(dbsize)));
    s.stop_cleanly();
}

TEST_CASE("kv_server: with --threads 2 every connection sees one keyspace", "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind)), "--threads", "2"});
    unsigned port = s.port();
    CHECK(s.start_line().ends_with(", 2 threads)"));
    // Enough connections that both SO_REUSEPORT listeners get some, almost surely.
    std::vector<std::unique_ptr<connection>> conns;
    for (int i = 0; i < 16; ++i) {
        conns.push_back(std::make_unique<connection>(port));
        CHECK(conns.back()->round_trip(resp({"SET", "k" + std::to_string(i), "v"}), "+OK\r\n") ==
              "+OK\r\n");
        CHECK(conns.back()->round_trip("INCR shared\r\n", ":" + std::to_string(i + 1) + "\r\n") ==
              ":" + std::to_string(i + 1) + "\r\n");
    }
    for (auto& c : conns)
        CHECK(c->round_trip("DBSIZE\r\n", ":17\r\n") == ":17\r\n");
    s.stop_cleanly(SIGINT);
}

TEST_CASE("kv_server: expired keys go away without being touched (the periodic sweep)",
          "[kv_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--backend", std::string(coronet::to_string(kind))});
    connection c(s.port());
    CHECK(c.round_trip("SET a 1 PX 50\r\nSET b 1 PX 50\r\nSET c 1\r\n", "+OK\r\n+OK\r\n+OK\r\n") ==
          "+OK\r\n+OK\r\n+OK\r\n");
    // DBSIZE counts keys without touching them: only the sweep can bring it to 1. Polled, with
    // a generous bound (the sweep runs every 100 ms).
    auto deadline = steady::now() + 10s;
    std::string size;
    while ((size = c.round_trip("DBSIZE\r\n", ":1\r\n")) != ":1\r\n" && steady::now() < deadline)
        std::this_thread::sleep_for(20ms);
    CHECK(size == ":1\r\n");
    s.stop_cleanly();
}
