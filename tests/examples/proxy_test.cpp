// tests/examples/proxy_test.cpp: runs examples/proxy between a line server and a client.
//
// The proxy (a data dependency, found in the runfiles) runs as a child process on port 0, on
// the backend CORONET_BACKEND names; the real server is a thread with blocking sockets that
// answers every line with "echo: <line>" and hangs up after "BYE". Every wait is bounded, and
// the only process signalled is the child started here (tests/support/process.hpp).
//
// Two more cases put real programs on both sides: redis-cli through the proxy to a redis-server
// started here (Debian's redis-server and redis-tools), and curl through the proxy to the example
// http_server (a data dependency). A missing redis-server, redis-cli or curl fails the test and
// says how to get it; every process started is stopped by its PID.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include "tests/support/backends.hpp"
#include "tests/support/dns_server.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace std::chrono_literals;
using namespace coronet::testing;

// The proxy child with these arguments; killed and reaped on the way out.
class proxy : public child {
public:
    explicit proxy(std::vector<std::string> args) : child(argv(std::move(args))) {}

    // The port of "proxy: listening on 0.0.0.0:PORT, relaying to ...".
    unsigned port() {
        INFO("stderr: " << err());
        return port_after(first_line(), "listening on 0.0.0.0:");
    }
    // Stops the child (SIGTERM) and returns all it printed on stdout.
    std::string stop() {
        child::stop();
        return out();
    }
    // Waits up to 10 s for the child to exit by itself: its exit code, or -1.
    int exit_code() {
        int status = wait_exit(10s);
        return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    static std::vector<std::string> argv(std::vector<std::string> args) {
        args.insert(args.begin(), runfile("examples/proxy"));
        return args;
    }
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
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;  // a signal is not the end
        if (n < 0) got += "[recv: " + std::string(std::strerror(errno)) + "]";
        if (n <= 0) return got;
        got.append(buf, std::size_t(n));
    }
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
            if (n < 0 && errno == EINTR) continue;
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

// The full path of an installed tool; fails the test, saying how to get it, when it is missing.
std::string tool(const std::string& name) {
    return coronet::testing::tool(
        name,
        "proxy_test needs redis-server, redis-cli and curl: `apt-get install -y "
        "redis-server redis-tools curl` or tools/install-deps.sh (test group)");
}

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

TEST_CASE("proxy: the server's host name resolves on the loop, each address tried", "[proxy]") {
    CORONET_FOR_EACH_BACKEND(kind);
    ::setenv("CORONET_BACKEND", std::string(coronet::to_string(kind)).c_str(), 1);
    // line.test is ::1 and 127.0.0.1, and the line server listens on 127.0.0.1 only: ::1 is
    // tried first and refused, 127.0.0.1 connects. unknown.test does not exist.
    dnsmasq_server dns("::1 line.test\n127.0.0.1 line.test\n");
    int listener = tcp_socket(0, true);
    std::thread server(line_server, listener, 1);
    proxy p({"line.test", std::to_string(local_port(listener)), "--port", "0", "--dns-server",
             dns.server()});
    int c = tcp_socket(p.port(), false);
    ::send(c, "via a name\nBYE\n", 15, MSG_NOSIGNAL);
    std::string got = read_all(c);
    ::close(c);
    server.join();
    ::close(listener);
    std::string out = p.stop();
    INFO("stdout:\n" << out << "stderr:\n" << p.err());
    CHECK(got == "echo: via a name\nbye!\n");
    CHECK(out.find("relaying to line.test port ") != std::string::npos);
    CHECK(out.find("Connected\n") != std::string::npos);

    proxy lost({"unknown.test", "25", "--port", "0", "--dns-server", dns.server()});
    int d = tcp_socket(lost.port(), false);
    CHECK(read_all(d).empty());  // the name fails: the client is closed
    ::close(d);
    lost.stop();
    INFO("stderr:\n" << lost.err());
    CHECK(lost.err().find("resolve 'unknown.test': no such host name") != std::string::npos);
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
    temp_dir root("proxy_test");
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
