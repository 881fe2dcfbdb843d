// tests/examples/http_server_test.cpp: runs examples/http_server the way a user does.
//
// Each test serves a fresh temporary directory with the real binary (a data dependency, found
// in the runfiles) on port 0, reads the port from its start line, and talks to it with curl,
// wrk and raw sockets over loopback, on every backend; it stops the server with SIGTERM and
// expects exit status 0. curl and wrk are required (tools/install-deps.sh test installs them):
// a missing one fails the test and says so. Every wait is bounded, and the only processes
// signalled are the children started here.

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
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

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

int ms_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
    return left > 0 ? int(left) : 0;
}

// "exited 0", "killed by SIGABRT", ... for failure messages.
std::string describe(int status) {
    if (status == -1) return "still running";
    if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + sigabbrev_np(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// Appends what fd has within timeout_ms; false at EOF or when nothing came.
bool drain(int fd, std::string& into, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[16384];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    into.append(buf, std::size_t(n));
    return true;
}

// A child process with stdout and stderr on pipes; killed and reaped if a test leaves it.
class child {
public:
    explicit child(std::vector<std::string> argv) {
        int out[2], err[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
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
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
        ::close(err_);
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const { REQUIRE(::kill(pid_, sig) == 0); }

    // Waits up to `timeout` for the child to exit: its wait status, or -1.
    int wait_exit(milliseconds timeout) {
        auto deadline = steady::now() + timeout;
        for (;;) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return status;
            }
            if (steady::now() >= deadline) return -1;
            std::this_thread::sleep_for(5ms);
        }
    }

    // Reads both pipes until they end (the child exits), at most `timeout`.
    std::pair<std::string, std::string> output(milliseconds timeout = 10s) {
        auto deadline = steady::now() + timeout;
        bool out_open = true, err_open = true;
        while ((out_open || err_open) && steady::now() < deadline) {
            pollfd p[2] = {{out_open ? out_ : -1, POLLIN, 0}, {err_open ? err_ : -1, POLLIN, 0}};
            if (::poll(p, 2, ms_until(deadline)) <= 0) break;
            if (p[0].revents) out_open = read_some(out_, out_text_);
            if (p[1].revents) err_open = read_some(err_, err_text_);
        }
        return {out_text_, err_text_};
    }

    // The first line of stdout, waiting up to 10 s.
    std::string first_line() {
        auto deadline = steady::now() + 10s;
        while (out_text_.find('\n') == std::string::npos &&
               drain(out_, out_text_, ms_until(deadline))) {
        }
        return out_text_.substr(0, out_text_.find('\n'));
    }

    // Everything on stderr so far (waits for nothing).
    const std::string& err() {
        while (drain(err_, err_text_, 0)) {
        }
        return err_text_;
    }

private:
    static bool read_some(int fd, std::string& into) {
        char buf[16384];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) into.append(buf, std::size_t(n));
        return n > 0 || (n < 0 && errno == EINTR);
    }

    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    std::string out_text_, err_text_;
};

std::string runfile(const std::string& path) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/" + path;
    return path;
}

// The full path of a tool on PATH (or in the usual places); fails the test when it is missing.
std::string tool(const std::string& name) {
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    path += ":/usr/bin:/bin:/usr/local/bin";
    for (std::size_t at = 0; at <= path.size();) {
        std::size_t end = std::min(path.find(':', at), path.size());
        std::string candidate = path.substr(at, end - at) + "/" + name;
        if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        at = end + 1;
    }
    FAIL(name << " is not installed: http_server_test needs curl and wrk "
                 "(tools/install-deps.sh test installs them)");
    return {};
}

struct result {
    int status;
    std::string out, err;
};

// Runs a command to its end (killed after `timeout`) and returns its status and output.
result run(std::vector<std::string> argv, milliseconds timeout = 20s) {
    child c(std::move(argv));
    auto [out, err] = c.output(timeout);
    int status = c.wait_exit(1s);
    return {status, out, err};
}

// A temporary directory, removed at the end of the test.
class temp_dir {
public:
    temp_dir() {
        const char* base = std::getenv("TEST_TMPDIR");
        std::string pattern = std::string(base ? base : "/tmp") + "/http_server_test.XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = fs::canonical(pattern);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void write(const std::string& name, const std::string& text) const {
        fs::create_directories((path_ / name).parent_path());
        std::ofstream(path_ / name, std::ios::binary) << text;
    }

private:
    fs::path path_;
};

// The http_server child, serving root on a free port.
class http_server {
public:
    http_server(const fs::path& root, coronet::backend_kind kind,
                std::vector<std::string> more = {})
        : proc_(args(root, kind, std::move(more))) {
        std::string line = proc_.first_line();
        INFO("start line: " << line << "\nstderr: " << proc_.err());
        std::smatch m;
        REQUIRE(std::regex_search(
            line, m,
            std::regex("^http_server: serving (.*) on http://127\\.0\\.0\\.1:(\\d+)/ "
                       "\\(backend (\\w+)\\)$")));
        CHECK(m[1] == root.string());
        CHECK(m[3] == std::string(coronet::to_string(kind)));
        port_ = unsigned(std::stoul(m[2]));
    }

    unsigned port() const { return port_; }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    child& process() { return proc_; }

    // SIGTERM, then the exit status (-1 if it did not exit within 10 s).
    int stop() {
        proc_.signal(SIGTERM);
        return proc_.wait_exit(10s);
    }

private:
    static std::vector<std::string> args(const fs::path& root, coronet::backend_kind kind,
                                         std::vector<std::string> more) {
        std::vector<std::string> a{runfile("examples/http_server"),
                                   "--port",
                                   "0",
                                   "--root",
                                   root.string(),
                                   "--backend",
                                   std::string(coronet::to_string(kind))};
        a.insert(a.end(), more.begin(), more.end());
        return a;
    }

    child proc_;
    unsigned port_ = 0;
};

// A raw TCP connection to 127.0.0.1:port.
class connection {
public:
    // receive_buffer: SO_RCVBUF in bytes (0: the default), so that a response can stay in flight.
    explicit connection(unsigned port, int receive_buffer = 0)
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
    }
    ~connection() { ::close(fd_); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    void send(const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            REQUIRE(n > 0);
            sent += std::size_t(n);
        }
    }

    // Reads into the buffer until it holds `size` bytes, the peer closes or `timeout` passes.
    bool fill(std::size_t size, milliseconds timeout = 10s) {
        auto deadline = steady::now() + timeout;
        while (in_.size() < size && !eof_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) return false;  // timed out
            char buf[65536];
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0)
                in_.append(buf, std::size_t(n));
            else if (n == 0 || errno != EINTR)
                eof_ = true;  // closed (or reset)
        }
        return in_.size() >= size;
    }

    // True when the peer closes within `timeout` (and sends nothing more first).
    bool closed_by_peer(milliseconds timeout) {
        std::size_t before = in_.size();
        fill(SIZE_MAX, timeout);
        return eof_ && in_.size() == before;
    }

    struct response {
        std::string status_line;
        std::map<std::string, std::string> headers;  // names lower-cased
        std::string body;
    };

    // The next response: the head, then Content-Length bytes of body (none for HEAD or 304).
    std::optional<response> read_response(bool head_only = false, milliseconds timeout = 10s) {
        auto deadline = steady::now() + timeout;
        std::size_t end;
        while ((end = in_.find("\r\n\r\n")) == std::string::npos)
            if (!fill(in_.size() + 1, milliseconds(ms_until(deadline)))) return std::nullopt;
        response r;
        std::string head = in_.substr(0, end + 2);
        in_.erase(0, end + 4);
        std::size_t at = head.find("\r\n");
        r.status_line = head.substr(0, at);
        for (at += 2; at < head.size();) {
            std::size_t eol = head.find("\r\n", at);
            std::string line = head.substr(at, eol - at);
            std::string name = line.substr(0, line.find(':'));
            for (auto& ch : name)
                ch = char(std::tolower(static_cast<unsigned char>(ch)));
            r.headers[name] = line.substr(line.find(':') + 2);
            at = eol + 2;
        }
        std::size_t length =
            r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
        if (head_only || r.status_line.find(" 304 ") != std::string::npos) length = 0;
        if (!fill(length, milliseconds(ms_until(deadline)))) return std::nullopt;
        r.body = in_.substr(0, length);
        in_.erase(0, length);
        return r;
    }

    std::string& buffered() { return in_; }

private:
    int fd_;
    std::string in_;
    bool eof_ = false;
};

std::string get(unsigned port, const std::string& path, const std::string& headers = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n" +
           headers + "\r\n";
}

// curl -s -i (--path-as-is keeps "/../"): the status code, headers and body as curl saw them.
result curl(std::vector<std::string> args) {
    std::vector<std::string> argv{tool("curl"), "-s", "--max-time", "10", "--noproxy", "*"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

// The files every test serves.
void fill_root(const temp_dir& root, const temp_dir& outside) {
    root.write("hello.txt", "Hello from a file\n");
    root.write("page.html", "<p>page</p>\n");
    root.write("docs/index.html", "<h1>docs</h1>\n");
    root.write("list/b.bin", std::string(1000, 'b'));
    root.write("list/a <&> \"x\".txt", "x");
    for (int i = 0; i < 20; ++i)
        root.write("pipe/" + std::to_string(i), "file " + std::to_string(i));
    std::string big(8 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = char('a' + (i * 7 + i / 4096) % 26);
    root.write("big.bin", big);
    outside.write("secret.txt", "SECRET\n");
    fs::create_symlink(outside.path() / "secret.txt", root.path() / "escape.txt");
    fs::create_symlink(outside.path(), root.path() / "escape_dir");
}

}  // namespace

TEST_CASE("http_server: --help prints the usage and exits 0", "[http_server]") {
    auto r = run({runfile("examples/http_server"), "--help"});
    INFO(describe(r.status) << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.starts_with(
        "usage: http_server [--host 127.0.0.1] [--port 8080] [--root .] [--threads 1] "
        "[--backend auto|io_uring|epoll|select] [--idle-timeout 30]\n"));
    CHECK(r.err.empty());
}

TEST_CASE("http_server: a bad argument prints what is wrong and the usage, and exits 2",
          "[http_server]") {
    using case_t = std::pair<std::vector<std::string>, std::string>;
    auto [args, expected] = GENERATE(
        case_t{{"--nope"}, "http_server: unknown flag '--nope'"},
        case_t{{"--port", "http"}, "http_server: --port: expected an integer from 0 to 65535"},
        case_t{{"--root", "/nonexistent/dir"},
               "http_server: --root: /nonexistent/dir: No such file"},
        case_t{{"--root", "/etc/hostname"}, "http_server: --root: /etc/hostname: not a directory"},
        case_t{{"--threads", "0"}, "http_server: --threads: expected an integer from 1 to 256"},
        case_t{{"--idle-timeout", "0"}, "http_server: --idle-timeout: expected an integer from 1"},
        case_t{{"--backend", "kqueue"}, "http_server: --backend: expected one of auto|io_uring"},
        case_t{{"stray"}, "http_server: unexpected argument 'stray'"});
    args.insert(args.begin(), runfile("examples/http_server"));
    auto r = run(args);
    INFO("args: " << Catch::Detail::stringify(args) << "\n"
                  << describe(r.status) << "\nstderr: " << r.err);
    CHECK(WIFEXITED(r.status));
    CHECK(WEXITSTATUS(r.status) == 2);
    CHECK(r.err.starts_with(expected));
    CHECK(r.err.find("\nusage: http_server [--host") != std::string::npos);
    CHECK(r.out.empty());
}

TEST_CASE("http_server: serves files, HEAD, 304, listings and errors to curl", "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind);

    // A file: body and headers.
    auto r = curl({"-i", s.url("/hello.txt")});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(r.out.find("\r\nContent-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
    CHECK(r.out.find("\r\nContent-Length: 18\r\n") != std::string::npos);
    CHECK(r.out.find("\r\nServer: coronet\r\n") != std::string::npos);
    CHECK(r.out.ends_with("\r\n\r\nHello from a file\n"));
    std::smatch m;
    REQUIRE(std::regex_search(r.out, m, std::regex("Last-Modified: ([^\r]+)\r\n")));
    std::string last_modified = m[1];
    CHECK(std::regex_search(
        r.out, std::regex("\r\nDate: \\w{3}, \\d\\d \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d GMT\r\n")));

    // An 8 MiB file arrives whole.
    r = curl({s.url("/big.bin")});
    CHECK(r.out.size() == std::size_t(8 << 20));
    CHECK(r.out.substr(0, 8) == "ahovcjqx");

    // HEAD: the same headers, no body.
    r = curl({"-I", s.url("/hello.txt")});
    CHECK(r.out.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(r.out.find("Content-Length: 18\r\n") != std::string::npos);
    CHECK(r.out.ends_with("\r\n\r\n"));

    // If-Modified-Since: 304 when unchanged, 200 when older.
    r = curl({"-i", "-H", "If-Modified-Since: " + last_modified, s.url("/hello.txt")});
    CHECK(r.out.starts_with("HTTP/1.1 304 Not Modified\r\n"));
    CHECK(r.out.ends_with("\r\n\r\n"));
    r = curl({"-i", "-H", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT", s.url("/hello.txt")});
    CHECK(r.out.starts_with("HTTP/1.1 200 OK\r\n"));

    // Directories: redirect to the slash, index.html, a chunked and escaped listing.
    r = curl({"-i", s.url("/docs")});
    CHECK(r.out.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
    CHECK(r.out.find("\r\nLocation: /docs/\r\n") != std::string::npos);
    r = curl({"-L", s.url("/docs")});
    CHECK(r.out == "<h1>docs</h1>\n");
    r = curl({"-i", s.url("/list/")});
    CHECK(r.out.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(r.out.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(r.out.find(
              "<a href=\"a%20%3C%26%3E%20%22x%22.txt\">a &lt;&amp;&gt; &quot;x&quot;.txt</a>") !=
          std::string::npos);
    CHECK(r.out.find("<td>1000</td>") != std::string::npos);
    CHECK(r.out.ends_with("</html>\n"));
    r = curl({s.url("/list/a%20%3C%26%3E%20%22x%22.txt")});  // the link works
    CHECK(r.out == "x");

    // Errors.
    auto code = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"-o", "/dev/null", "-w", "%{http_code}"});
        return curl(args).out;
    };
    CHECK(code({s.url("/missing")}) == "404");
    CHECK(code({s.url("/hello.txt/x")}) == "404");
    CHECK(code({"-X", "POST", s.url("/hello.txt")}) == "405");
    CHECK(code({"-X", "DELETE", s.url("/hello.txt")}) == "405");
    r = curl({"-i", "-X", "PUT", s.url("/x")});
    CHECK(r.out.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
    CHECK(code({"-H", "X-Big: " + std::string(20000, 'a'), s.url("/hello.txt")}) == "431");
    CHECK(code({"-H", "Content-Length: 2000000", s.url("/hello.txt")}) == "413");

    // Traversal: every attempt is refused and nothing from outside the root leaks.
    for (std::vector<std::string> attempt :
         {std::vector<std::string>{"--path-as-is", s.url("/../etc/passwd")},
          {"--path-as-is", s.url("/docs/../../etc/passwd")},
          {s.url("/%2e%2e/%2e%2e/etc/passwd")},
          {s.url("/%2E%2E%2Fetc%2Fpasswd")},
          {s.url("/..%2f..%2fetc/passwd")},
          {s.url("/hello.txt%00.html")},
          {s.url("/escape.txt")},
          {s.url("/escape_dir/secret.txt")},
          {s.url("/escape_dir/")}}) {
        attempt.insert(attempt.begin(), "-i");
        r = curl(attempt);
        INFO("curl " << Catch::Detail::stringify(attempt) << "\n" << r.out);
        CHECK((r.out.starts_with("HTTP/1.1 403 ") || r.out.starts_with("HTTP/1.1 400 ")));
        CHECK(r.out.find("root:") == std::string::npos);
        CHECK(r.out.find("SECRET") == std::string::npos);
    }

    int status = s.stop();
    INFO(describe(status) << "\nstderr: " << s.process().err());
    CHECK(status == 0);
    CHECK(s.process().err().find("uncaptured") == std::string::npos);
}

TEST_CASE("http_server: raw requests: 20 pipelined in order, 431, 505, keep-alive rules",
          "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind);

    SECTION("20 pipelined requests are answered in order on one connection") {
        connection c(s.port());
        std::string batch;
        for (int i = 0; i < 20; ++i) {
            std::string path = i % 5 == 4   ? "/missing" + std::to_string(i)
                               : i % 3 == 0 ? "/hello"
                                            : "/pipe/" + std::to_string(i);
            batch +=
                get(s.port(), path, i == 7 ? "X-Padding: " + std::string(3000, 'p') + "\r\n" : "");
            if (i == 10) batch += "HEAD /pipe/10 HTTP/1.1\r\nHost: h\r\n\r\n";
        }
        c.send(batch);  // all at once
        for (int i = 0; i < 20; ++i) {
            INFO("response " << i);
            auto r = c.read_response();
            REQUIRE(r);
            if (i % 5 == 4) {
                CHECK(r->status_line == "HTTP/1.1 404 Not Found");
            } else if (i % 3 == 0) {
                CHECK(r->status_line == "HTTP/1.1 200 OK");
                CHECK(r->body == "Hello, world!");
                CHECK(r->headers["content-type"] == "text/plain");
            } else {
                CHECK(r->status_line == "HTTP/1.1 200 OK");
                CHECK(r->body == "file " + std::to_string(i));
            }
            if (i == 10) {
                auto head = c.read_response(true);
                REQUIRE(head);
                CHECK(head->headers["content-length"] == "7");
            }
        }
        CHECK(c.buffered().empty());      // nothing more
        c.send(get(s.port(), "/hello"));  // and the connection is still good
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->body == "Hello, world!");
    }

    SECTION("a header line over the limit is 431, and the connection closes") {
        connection c(s.port());
        c.send("GET /hello HTTP/1.1\r\nHost: h\r\nX-Huge: " + std::string(100000, 'h') +
               "\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status_line == "HTTP/1.1 431 Request Header Fields Too Large");
        CHECK(r->headers["connection"] == "close");
        CHECK(c.closed_by_peer(5s));
    }

    SECTION("a request line over the limit is 414") {
        connection c(s.port());
        c.send("GET /" + std::string(20000, 'u') + " HTTP/1.1\r\nHost: h\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status_line == "HTTP/1.1 414 URI Too Long");
    }

    SECTION("HTTP/2.0 is 505, garbage is 400") {
        connection c(s.port());
        c.send("GET / HTTP/2.0\r\nHost: h\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status_line == "HTTP/1.1 505 HTTP Version Not Supported");
        CHECK(c.closed_by_peer(5s));
        connection d(s.port());
        d.send("\x16\x03\x01 hello TLS?\r\n\r\n");
        r = d.read_response();
        REQUIRE(r);
        CHECK(r->status_line == "HTTP/1.1 400 Bad Request");
    }

    SECTION("HTTP/1.0 closes unless asked to keep alive") {
        connection c(s.port());
        c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->headers["connection"] == "keep-alive");
        c.send("GET /hello HTTP/1.0\r\n\r\n");
        r = c.read_response();
        REQUIRE(r);
        CHECK(r->body == "Hello, world!");
        CHECK(r->headers["connection"] == "close");
        CHECK(c.closed_by_peer(5s));
    }

    SECTION("a small body is read and dropped; the next request follows it") {
        connection c(s.port());
        c.send("POST /hello HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde" +
               get(s.port(), "/hello"));
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status_line == "HTTP/1.1 405 Method Not Allowed");
        r = c.read_response();
        REQUIRE(r);
        CHECK(r->body == "Hello, world!");
    }

    int status = s.stop();
    INFO(describe(status) << "\nstderr: " << s.process().err());
    CHECK(status == 0);
}

TEST_CASE("http_server: wrk for 2 s on /hello sees no errors", "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind);
    auto r = run({tool("wrk"), "-t1", "-c10", "-d2s", "--timeout", "2s", s.url("/hello")}, 30s);
    INFO("wrk: " << describe(r.status) << "\n" << r.out << r.err);
    REQUIRE(r.status == 0);
    std::smatch m;
    REQUIRE(std::regex_search(r.out, m, std::regex("(\\d+) requests in")));
    CHECK(std::stoul(m[1]) > 100);
    CHECK(r.out.find("Non-2xx or 3xx responses") == std::string::npos);
    CHECK(r.out.find("Socket errors") == std::string::npos);
    int status = s.stop();
    INFO(describe(status) << "\nstderr: " << s.process().err());
    CHECK(status == 0);
    CHECK(s.process().err().find("uncaptured") == std::string::npos);
}

TEST_CASE("http_server: idle connections close after --idle-timeout", "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind, {"--idle-timeout", "1"});
    connection idle(s.port());
    connection used(s.port());
    used.send(get(s.port(), "/hello"));
    REQUIRE(used.read_response());
    connection partial(s.port());
    partial.send("GET /hello HTTP/1.1\r\nHost");  // a request begun and never finished: 408
    auto start = steady::now();
    CHECK(idle.closed_by_peer(5s));
    CHECK(used.closed_by_peer(5s));
    auto r = partial.read_response();
    REQUIRE(r);
    CHECK(r->status_line == "HTTP/1.1 408 Request Timeout");
    CHECK(steady::now() - start < 4s);
    CHECK(s.stop() == 0);
}

TEST_CASE("http_server: SIGTERM lets a response in flight finish, closes idle connections, exits 0",
          "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const unsigned threads = GENERATE(1u, 2u);
    INFO("threads: " << threads);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind, {"--threads", std::to_string(threads)});
    connection idle(s.port());
    connection busy(s.port(), 16 * 1024);
    busy.send(get(s.port(), "/big.bin"));
    REQUIRE(busy.fill(64 * 1024));  // the response has begun; the rest waits in the socket
    std::this_thread::sleep_for(100ms);
    s.process().signal(SIGTERM);
    CHECK(idle.closed_by_peer(5s));
    auto r = busy.read_response();
    REQUIRE(r);
    CHECK(r->headers["connection"] == "");  // it was keep-alive when the response began
    CHECK(r->body.size() == std::size_t(8 << 20));
    CHECK(busy.closed_by_peer(5s));  // and it closes after it
    int status = s.process().wait_exit(10s);
    INFO(describe(status) << "\nstderr: " << s.process().err());
    CHECK(status == 0);
    CHECK(s.process().err().find("uncaptured") == std::string::npos);
}
