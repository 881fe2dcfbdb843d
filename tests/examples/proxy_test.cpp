// tests/examples/proxy_test.cpp: runs examples/proxy between a line server and a client.
//
// The proxy (a data dependency, found in the runfiles) runs as a child process on port 0, on
// the backend CORONET_BACKEND names; the real server is a thread with blocking sockets that
// answers every line with "echo: <line>" and hangs up after "BYE". Every wait is bounded, and
// the only process signalled is the child started here.
//
// Two more cases put real programs on both sides: redis-cli through the proxy to a redis-server
// started here (Debian's redis-server and redis-tools), and curl through the proxy to the example
// http_server (a data dependency). A missing redis-server, redis-cli or curl fails the test and
// says how to get it; every process started is stopped by its PID.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
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
namespace fs = std::filesystem;

std::string proxy_path() {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/examples/proxy";
    return "examples/proxy";
}

// Appends what fd has within timeout_ms; false at end of file or on timeout.
bool drain(int fd, std::string& into, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    into.append(buf, std::size_t(n));
    return true;
}

// The proxy child, its stdout and stderr on pipes; killed and reaped on the way out.
class proxy {
public:
    explicit proxy(std::vector<std::string> args) {
        int out[2], err[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_adddup2(&actions, err[1], 2);
        std::string path = proxy_path();
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
    ~proxy() {
        stop();
        ::close(out_);
        ::close(err_);
    }
    // The port of "proxy: listening on 0.0.0.0:PORT, relaying to ...".
    unsigned port() {
        while (out_text_.find('\n') == std::string::npos && drain(out_, out_text_, 10000))
            continue;
        INFO("stdout: " << out_text_ << "\nstderr: " << err());
        auto at = out_text_.find("listening on 0.0.0.0:");
        REQUIRE(at != std::string::npos);
        return unsigned(std::stoul(out_text_.substr(at + 21)));
    }
    // Kills the child (SIGTERM) and returns all it printed on stdout.
    std::string stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
        while (drain(out_, out_text_, 1000))
            continue;
        return out_text_;
    }
    // Waits up to 10 s for the child to exit by itself: its exit code, or -1.
    int exit_code() {
        for (int i = 0; i < 1000; ++i) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            std::this_thread::sleep_for(10ms);
        }
        return -1;
    }
    const std::string& out() {
        while (drain(out_, out_text_, 100))
            continue;
        return out_text_;
    }
    const std::string& err() {
        while (drain(err_, err_text_, 100))
            continue;
        return err_text_;
    }

private:
    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    std::string out_text_, err_text_;
};

// A blocking TCP socket with 10 s timeouts, connected to 127.0.0.1:port (or listening, port 0).
int tcp_socket(unsigned port, bool listen) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen) {
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 8) == 0);
    } else {
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    return fd;
}

unsigned local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

// Everything fd receives until the peer closes (or 10 s pass).
std::string read_all(int fd) {
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
        got.append(buf, std::size_t(n));
    return got;
}

// The real server: for each of `clients` connections, "echo: <line>" per line until "BYE".
void line_server(int listener, int clients) {
    for (int i = 0; i < clients; ++i) {
        int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        timeval tv{10, 0};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string buf;
        for (bool bye = false; !bye;) {
            char chunk[256];
            ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
            if (n <= 0) break;
            buf.append(chunk, std::size_t(n));
            for (auto nl = buf.find('\n'); nl != std::string::npos && !bye; nl = buf.find('\n')) {
                std::string line = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                bye = line == "BYE";
                std::string reply = bye ? "bye!\n" : "echo: " + line + "\n";
                ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
            }
        }
        ::close(c);
    }
}

// A program from the runfiles tree (examples/http_server).
std::string runfile(const std::string& path) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/" + path;
    return path;
}

// The full path of an installed tool; fails the test, saying how to get it, when it is missing.
std::string tool(const std::string& name) {
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    dirs += ":/usr/bin:/usr/local/bin:/bin";
    for (std::size_t at = 0; at <= dirs.size();) {
        std::size_t end = std::min(dirs.find(':', at), dirs.size());
        std::string candidate = dirs.substr(at, end - at) + "/" + name;
        if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        at = end + 1;
    }
    FAIL(name << " not found (PATH and /usr/bin): proxy_test needs redis-server, redis-cli and "
                 "curl: `apt-get install -y redis-server redis-tools curl` or "
                 "tools/install-deps.sh (test group)");
    return {};
}

// Any child process (argv[0] a full path), stdin from /dev/null, stdout and stderr on pipes;
// SIGTERMed (SIGKILLed after 10 s) and reaped by stop() or on the way out.
class child {
public:
    explicit child(std::vector<std::string> argv) {
        int out[2], err[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_adddup2(&actions, err[1], 2);
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        int rc = ::posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        ::close(err[1]);
        out_ = out[0];
        err_ = err[0];
        INFO("posix_spawn " << argv[0] << ": " << std::strerror(rc));
        REQUIRE(rc == 0);
    }
    ~child() {
        stop();
        ::close(out_);
        ::close(err_);
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    // Stops the child by its PID (if it still runs) and reaps it: its wait status, or -1.
    int stop() {
        if (pid_ <= 0) return status_;
        ::kill(pid_, SIGTERM);
        for (int i = 0; i < 1000; ++i) {
            if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
                pid_ = -1;
                return status_;
            }
            pump(10);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        pid_ = -1;
        return status_;
    }
    // Waits up to `timeout` for the child to exit by itself (reading its output meanwhile): its
    // wait status, or -1 (it is still running).
    int wait(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (pid_ > 0) {
            if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            if (std::chrono::steady_clock::now() >= deadline) return -1;
            pump(10);
        }
        pump(0);
        return status_;
    }
    // The first line of stdout, waiting up to 10 s.
    std::string first_line() {
        for (int i = 0; i < 1000 && out_text_.find('\n') == std::string::npos; ++i)
            pump(10);
        return out_text_.substr(0, out_text_.find('\n'));
    }
    const std::string& out() {
        pump(0);
        return out_text_;
    }
    const std::string& err() {
        pump(0);
        return err_text_;
    }

private:
    // Reads what both pipes have, waiting up to timeout_ms for the first bytes.
    void pump(int timeout_ms) {
        for (bool any = true; any; timeout_ms = 0) {
            any = false;
            pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
            if (::poll(p, 2, timeout_ms) <= 0) return;
            char buf[16384];
            for (int i = 0; i < 2; ++i) {
                if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
                ssize_t n = ::read(p[i].fd, buf, sizeof buf);
                if (n > 0) (i ? err_text_ : out_text_).append(buf, std::size_t(n)), any = true;
            }
        }
    }

    pid_t pid_ = -1;
    int status_ = -1;
    int out_ = -1, err_ = -1;
    std::string out_text_, err_text_;
};

struct result {
    int status;
    std::string out, err;
};

// Runs a command to its end (stopped after 20 s): its wait status and output.
result run(std::vector<std::string> argv) {
    child c(std::move(argv));
    int status = c.wait(20s);
    if (status == -1) status = c.stop();
    return {status, c.out(), c.err()};
}

// True once 127.0.0.1:port accepts a connection, trying for up to 10 s.
bool wait_until_accepting(unsigned port) {
    for (int i = 0; i < 200; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(std::uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok) return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

// A temporary directory, removed at the end of the test.
class temp_dir {
public:
    temp_dir() {
        const char* base = std::getenv("TEST_TMPDIR");
        std::string pattern = std::string(base ? base : "/tmp") + "/proxy_test.XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = fs::canonical(pattern);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

}  // namespace

TEST_CASE("proxy: relays lines both ways and prints them repr-quoted", "[proxy]") {
    CORONET_FOR_EACH_BACKEND(kind);
    ::setenv("CORONET_BACKEND", std::string(coronet::to_string(kind)).c_str(), 1);
    int listener = tcp_socket(0, true);
    std::thread server(line_server, listener, 2);
    proxy p({"127.0.0.1", std::to_string(local_port(listener)), "--port", "0"});
    unsigned port = p.port();
    std::string first, second;
    {
        int c = tcp_socket(port, false);
        std::string lines = "hello\r\nit's \"q\"\n\x01\xff\n";
        ::send(c, lines.data(), lines.size(), MSG_NOSIGNAL);
        ::send(c, "BYE\n", 4, MSG_NOSIGNAL);
        first = read_all(c);  // the server hangs up after BYE: the proxy closes the client
        ::close(c);
    }
    {
        int c = tcp_socket(port, false);
        ::send(c, "two\nBYE\n", 8, MSG_NOSIGNAL);
        second = read_all(c);
        ::close(c);
    }
    server.join();
    ::close(listener);
    std::string out = p.stop();
    INFO("stdout:\n" << out << "stderr:\n" << p.err());
    CHECK(first == "echo: hello\r\necho: it's \"q\"\necho: \x01\xff\nbye!\n");
    CHECK(second == "echo: two\nbye!\n");
    for (const char* line :
         {"<== (0) 'hello\\r'\n", "<== (0) 'it\\'s \"q\"'\n", "<== (0) '\\x01\\xff'\n",
          "<== (0) 'BYE'\n", "==> (0) 'echo: hello\\r'\n", "==> (0) 'echo: it\\'s \"q\"'\n",
          "==> (0) 'bye!'\n", "<== (1) 'two'\n", "==> (1) 'echo: two'\n", "==> (1) 'bye!'\n",
          "Connected\n", "Closing\n"}) {
        INFO("expected line: " << line);
        CHECK(out.find(line) != std::string::npos);
    }
}

TEST_CASE("proxy: a refused server connection closes the client", "[proxy]") {
    CORONET_FOR_EACH_BACKEND(kind);
    ::setenv("CORONET_BACKEND", std::string(coronet::to_string(kind)).c_str(), 1);
    int closed = tcp_socket(0, true);
    unsigned nowhere = local_port(closed);
    ::close(closed);
    proxy p({"127.0.0.1", std::to_string(nowhere), "--port", "0"});
    int c = tcp_socket(p.port(), false);
    ::send(c, "hello\n", 6, MSG_NOSIGNAL);
    CHECK(read_all(c).empty());  // end of stream, not a timeout
    ::close(c);
    std::string out = p.stop();
    INFO("stdout:\n" << out << "stderr:\n" << p.err());
    // (whether "<== (0) 'hello'" comes first depends on which the proxy sees first: the line or
    // the refusal, which closes the client without reading further)
    CHECK(p.err().find("uncaptured exception, closing channel <proxy_sender") != std::string::npos);
    CHECK(p.err().find("Connection refused") != std::string::npos);
}

TEST_CASE("proxy: bad arguments exit 2 with the reason, --help exits 0", "[proxy]") {
    struct bad {
        std::vector<std::string> args;
        const char* says;
    };
    for (const auto& b :
         {bad{{}, "missing <server-host>"}, bad{{"localhost"}, "missing <server-port>"},
          bad{{"localhost", "99999"}, "expected a port from 1 to 65535"},
          bad{{"localhost", "x25"}, "expected a port from 1 to 65535"},
          bad{{"localhost", "60000"}, "choose one with --port"},
          bad{{"localhost", "25", "--port", "-1"}, "--port: expected a port"},
          bad{{"localhost", "25", "--bogus"}, "unknown flag '--bogus'"}}) {
        proxy p(b.args);
        int code = p.exit_code();
        INFO("args: " << Catch::Detail::stringify(b.args) << "\nstderr: " << p.err());
        CHECK(code == 2);
        CHECK(p.err().find(b.says) != std::string::npos);
        CHECK(p.err().find("usage: proxy <server-host> <server-port>") != std::string::npos);
    }
    proxy help({"--help"});
    CHECK(help.exit_code() == 0);
    CHECK(help.out().find("usage: proxy <server-host> <server-port> [--port") != std::string::npos);
}

TEST_CASE("proxy: redis-cli through the proxy to a real redis-server", "[proxy]") {
    std::string redis_server = tool("redis-server"), redis_cli = tool("redis-cli");
    CORONET_FOR_EACH_BACKEND(kind);
    ::setenv("CORONET_BACKEND", std::string(coronet::to_string(kind)).c_str(), 1);
    int probe = tcp_socket(0, true);  // a free port for redis-server (released just before)
    unsigned redis_port = local_port(probe);
    ::close(probe);
    child redis({redis_server, "--port", std::to_string(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no"});
    {
        INFO("redis-server stdout:\n" << redis.out() << "stderr:\n" << redis.err());
        REQUIRE(wait_until_accepting(redis_port));
    }
    proxy p({"127.0.0.1", std::to_string(redis_port), "--port", "0"});
    std::string port = std::to_string(p.port());
    auto set = run({redis_cli, "-h", "127.0.0.1", "-p", port, "SET", "coronet-key", "hello"});
    auto get = run({redis_cli, "-h", "127.0.0.1", "-p", port, "GET", "coronet-key"});
    std::string out = p.stop();
    int redis_status = redis.stop();
    INFO("proxy stdout:\n"
         << out << "proxy stderr:\n"
         << p.err() << "redis-cli SET: status " << set.status << ", " << set.out << set.err
         << "redis-cli GET: status " << get.status << ", " << get.out << get.err);
    CHECK(set.status == 0);
    CHECK(set.out == "OK\n");
    CHECK(get.status == 0);
    CHECK(get.out == "hello\n");
    CHECK(WIFEXITED(redis_status) | WIFSIGNALED(redis_status));
    // RESP lines end in "\r\n": the proxy splits at "\n", so every line shows its "\r".
    for (const char* line :
         {"<== (0) '*3\\r'\n", "<== (0) '$3\\r'\n", "<== (0) 'SET\\r'\n",
          "<== (0) 'coronet-key\\r'\n", "<== (0) 'hello\\r'\n", "==> (0) '+OK\\r'\n",
          "<== (1) '*2\\r'\n", "<== (1) 'GET\\r'\n", "==> (1) '$5\\r'\n", "==> (1) 'hello\\r'\n"}) {
        INFO("expected line: " << line);
        CHECK(out.find(line) != std::string::npos);
    }
}

TEST_CASE("proxy: curl through the proxy to the example HTTP server", "[proxy]") {
    std::string curl = tool("curl");
    CORONET_FOR_EACH_BACKEND(kind);
    ::setenv("CORONET_BACKEND", std::string(coronet::to_string(kind)).c_str(), 1);
    temp_dir root;
    // Lines each ending in "\n" (the proxy relays whole lines), one with a "\r\n", one empty.
    std::string body = "first line of the file\nsecond: it's \"quoted\"\r\n\n";
    for (int i = 0; i < 300; ++i)
        body += "line " + std::to_string(i) + " " + std::string(std::size_t(i % 50), 'x') + "\n";
    std::ofstream(root.path() / "file", std::ios::binary) << body;
    child server({runfile("examples/http_server"), "--port", "0", "--root", root.path().string(),
                  "--backend", std::string(coronet::to_string(kind))});
    std::string start = server.first_line();
    unsigned server_port = 0;
    {
        INFO("http_server start line: " << start << "\nstderr: " << server.err());
        auto at = start.find("on http://127.0.0.1:");
        REQUIRE(at != std::string::npos);
        server_port = unsigned(std::stoul(start.substr(at + 20)));
    }
    proxy p({"127.0.0.1", std::to_string(server_port), "--port", "0"});
    std::string url = "http://127.0.0.1:" + std::to_string(p.port()) + "/file";
    auto got = run({curl, "-s", "--max-time", "10", "--noproxy", "*", "--http1.0", url});
    auto head = run({curl, "-s", "--max-time", "10", "--noproxy", "*", "--http1.0", "-i", url});
    std::string out = p.stop();
    int server_status = server.stop();
    INFO("proxy stdout:\n"
         << out << "proxy stderr:\n"
         << p.err() << "curl: status " << got.status << ", stderr " << got.err
         << "\nhttp_server: status " << server_status << ", stderr " << server.err());
    CHECK(got.status == 0);
    CHECK(got.out == body);  // byte for byte: every line came through with its "\n"
    CHECK(head.status == 0);
    CHECK(head.out.ends_with("\r\n\r\n" + body));
    CHECK(head.out.find("Content-Length: " + std::to_string(body.size()) + "\r\n") !=
          std::string::npos);
    // The status line the server sent, as curl saw it, is what the proxy printed.
    std::string status_line = head.out.substr(0, head.out.find('\n'));
    CHECK(status_line.starts_with("HTTP/1."));
    CHECK(status_line.find(" 200 OK") != std::string::npos);
    for (const std::string& line : std::vector<std::string>{
             "<== (0) 'GET /file HTTP/1.0\\r'\n", "<== (0) '\\r'\n",
             "==> (0) '" + status_line.substr(0, status_line.size() - 1) + "\\r'\n",
             std::string("==> (0) 'first line of the file'\n"),
             std::string("==> (0) 'second: it\\'s \"quoted\"\\r'\n"),
             std::string("==> (0) 'line 299 ") + std::string(49, 'x') + "'\n",
             std::string("<== (1) 'GET /file HTTP/1.0\\r'\n")}) {
        INFO("expected line: " << line);
        CHECK(out.find(line) != std::string::npos);
    }
}
