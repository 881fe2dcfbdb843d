// tests/examples/http_client_test.cpp: runs examples/http_client the way a user does.
//
// The client (a data dependency, found in the runfiles) runs as a child process with
// CORONET_BACKEND set in its environment, once per backend. The servers are a python3
// `http.server` over a temporary directory (files with known contents), and small blocking
// servers on threads here for what python will not do: answer only once every request is in
// (which only a concurrent client can see), answer garbage, or never answer. Every wait is
// bounded, and the only processes signalled are the children started here
// (tests/support/process.hpp).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/backends.hpp"
#include "tests/support/dns_server.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace std::chrono_literals;
using namespace coronet::testing;

// Runs http_client with args on the given backend ("" = the default), at most 30 s.
result run_client(std::vector<std::string> args, std::string backend = "") {
    args.insert(args.begin(), runfile("examples/http_client"));
    std::string env = backend.empty() ? "CORONET_BACKEND" : "CORONET_BACKEND=" + backend;
    return run(std::move(args), 30s, {.env = {env}});
}

// python3 -m http.server on 127.0.0.1, a free port, serving dir (HTTP/1.0: it closes after each
// response). Its request log goes to /dev/null.
class python_server {
public:
    explicit python_server(const std::filesystem::path& dir)
        : child_({python(), "-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory",
                  dir.string()},
                 {.discard_stderr = true}) {
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        std::string line = child_.first_line();
        INFO("python3 http.server said: " << line);
        auto at = line.find(" port ");
        REQUIRE(at != std::string::npos);
        port = unsigned(std::stoul(line.substr(at + 6)));
    }
    unsigned port = 0;

private:
    static std::string python() {
        if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
        FAIL("python3 not found at /usr/bin/python3 (Debian's python3 package)");
        return {};
    }
    child child_;
};

// A blocking server on a thread: accepts `count` connections, reads each one's request, and
// only then answers every one of them with reply(request), closing each. Gives up after 20 s.
class gathering_server {
public:
    gathering_server(std::size_t count, std::string (*reply)(const std::string& request))
        : fd_(listen_tcp(port)), thread_([this, count, reply] { serve(count, reply); }) {}
    ~gathering_server() {
        if (thread_.joinable()) thread_.join();
        ::close(fd_);
    }
    unsigned port = 0;

    // The requests received, once the thread is done.
    const std::vector<std::string>& requests() {
        if (thread_.joinable()) thread_.join();
        return requests_;
    }

private:
    void serve(std::size_t count, std::string (*reply)(const std::string&)) {
        auto deadline = steady::now() + 20s;
        std::vector<int> conns;
        while (conns.size() < count && steady::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) continue;
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            std::string request;
            while (request.find("\r\n\r\n") == std::string::npos && steady::now() < deadline) {
                pollfd q{c, POLLIN, 0};
                char buf[4096];
                if (::poll(&q, 1, ms_until(deadline)) <= 0) continue;
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                request.append(buf, std::size_t(n));
            }
            requests_.push_back(request);
            conns.push_back(c);
        }
        for (std::size_t i = 0; i < conns.size(); ++i) {
            std::string r = reply(requests_[i]);
            (void)::send(conns[i], r.data(), r.size(), MSG_NOSIGNAL);
            ::close(conns[i]);
        }
    }
    std::vector<std::string> requests_;
    int fd_;
    std::thread thread_;
};

// size bytes of every value 0-255, so a lost or misplaced byte shows.
std::string pattern(std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = char((i * 7 + i / 251) & 0xff);
    return s;
}

// One response as printed: its ==> line, then status line and headers, then the body.
struct printed {
    int status = 0;
    std::string head, body;
};

// Splits http_client's stdout into its responses, by URL. Each must be whole and contiguous:
// "==> URL (STATUS, N bytes)\n", the head up to "\r\n\r\n", exactly N body bytes, and a "\n"
// when the body does not end with one; anything else (interleaving) fails the test.
std::multimap<std::string, printed> split(const std::string& out) {
    std::multimap<std::string, printed> found;
    std::size_t at = 0;
    while (at < out.size()) {
        INFO("stdout from byte " << at << ": " << out.substr(at, 200));
        REQUIRE(out.compare(at, 4, "==> ") == 0);
        std::size_t eol = out.find('\n', at);
        REQUIRE(eol != std::string::npos);
        std::string line = out.substr(at + 4, eol - at - 4);  // URL (STATUS, N bytes)
        std::size_t paren = line.rfind(" (");
        REQUIRE(paren != std::string::npos);
        REQUIRE(line.ends_with(" bytes)"));
        printed p;
        std::size_t comma = line.find(", ", paren);
        REQUIRE(comma != std::string::npos);
        p.status = std::stoi(line.substr(paren + 2, comma - paren - 2));
        std::size_t size = std::stoul(line.substr(comma + 2));
        std::size_t head_end = out.find("\r\n\r\n", eol + 1);
        REQUIRE(head_end != std::string::npos);
        p.head = out.substr(eol + 1, head_end + 4 - eol - 1);
        REQUIRE(head_end + 4 + size <= out.size());
        p.body = out.substr(head_end + 4, size);
        at = head_end + 4 + size;
        if (out[at - 1] != '\n') {
            REQUIRE(at < out.size());
            REQUIRE(out[at] == '\n');
            ++at;
        }
        found.emplace(line.substr(0, paren), std::move(p));
    }
    return found;
}

std::string http_ok(const std::string& body) {
    return "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("http_client: --help prints the usage and exits 0", "[http_client]") {
    auto [status, out, err] = run_client({"--help"});
    INFO(describe(status) << "\nstderr: " << err);
    CHECK(exited_with(status, 0));
    CHECK(
        out.starts_with("usage: http_client [--timeout 30] [--dns-server HOST:PORT] [--cacert "
                        "FILE] [--insecure] <url>...\n"));
    CHECK(err.empty());
}

TEST_CASE("http_client: a bad argument prints what is wrong and the usage, and exits 2",
          "[http_client]") {
    using case_t = std::pair<std::vector<std::string>, std::string>;
    auto [args, expected] = GENERATE(
        case_t{{"ftp://x/"}, "http_client: ftp://x/: http:// and https:// URLs only, please\n"},
        case_t{{"http://127.0.0.1/", "x"},
               "http_client: x: http:// and https:// URLs only, please\n"},
        case_t{{}, "http_client: missing <url>...\n"},
        case_t{{"http://"}, "http_client: http://: no host\n"},
        case_t{{"http://h:80x/"}, "http_client: http://h:80x/: bad port '80x'\n"},
        case_t{{"http://h:65536/"}, "http_client: http://h:65536/: bad port '65536'\n"},
        case_t{{"--timeout", "0", "http://h/"},
               "http_client: --timeout: expected an integer from 1 to 3600, got '0'\n"});
    auto [status, out, err] = run_client(args);
    INFO("args: " << Catch::Detail::stringify(args) << "\n"
                  << describe(status) << "\nstderr: " << err);
    CHECK(exited_with(status, 2));
    CHECK(err.starts_with(expected));
    CHECK(err.find("\nusage: http_client [--timeout 30] [--dns-server HOST:PORT] [--cacert FILE] "
                   "[--insecure] <url>...\n") != std::string::npos);
    CHECK(out.empty());
}

TEST_CASE("http_client: fetches several URLs at once and prints each response whole",
          "[http_client]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir dir("http_client_test");
    const std::string big = pattern(300 * 1000), small = "hello, world\n";
    dir.write("small.txt", small);
    dir.write("big.bin", big);
    dir.write("empty.txt", "");
    dir.write("sub/index.html", "<p>index</p>");  // what GET /sub/ returns
    python_server server(dir.path());
    const std::string base = "http://127.0.0.1:" + std::to_string(server.port);
    const std::vector<std::string> urls = {base + "/small.txt", base + "/big.bin",
                                           base + "/nope",      base + "/empty.txt",
                                           base + "/sub/",      base + "/big.bin"};

    auto [status, out, err] = run_client(urls, std::string(coronet::to_string(kind)));
    INFO(describe(status) << "\nstderr: " << err);
    CHECK(exited_with(status, 0));  // a 404 is a response, not a failure
    CHECK(err.empty());
    auto got = split(out);
    REQUIRE(got.size() == urls.size());
    CHECK(got.count(base + "/big.bin") == 2);
    for (const auto& [url, p] : got) {
        INFO("URL " << url << "\nhead:\n" << p.head);
        CHECK(p.head.starts_with("HTTP/1.0 " + std::to_string(p.status) + " "));
        CHECK(p.head.find("Server: SimpleHTTP/") != std::string::npos);
    }
    auto body = [&](const std::string& path) { return got.find(base + path)->second; };
    CHECK(body("/small.txt").status == 200);
    CHECK(body("/small.txt").body == small);
    CHECK(body("/empty.txt").status == 200);
    CHECK(body("/empty.txt").body.empty());
    CHECK(body("/sub/").body == "<p>index</p>");
    CHECK(body("/nope").status == 404);
    auto [first, last] = got.equal_range(base + "/big.bin");
    for (auto it = first; it != last; ++it) {
        CHECK(it->second.status == 200);
        CHECK(it->second.body.size() == big.size());
        CHECK(it->second.body == big);
    }
}

TEST_CASE("http_client: the fetches run concurrently, each sending an HTTP/1.0 GET",
          "[http_client]") {
    CORONET_FOR_EACH_BACKEND(kind);
    // The server answers nobody until all three requests are in: a client that fetched one URL
    // after another would wait for its first answer forever (until its --timeout).
    gathering_server server(3, [](const std::string& request) {
        return http_ok("you asked for " + request.substr(4, request.find(' ', 4) - 4));
    });
    const std::string base = "http://127.0.0.1:" + std::to_string(server.port);
    auto [status, out, err] =
        run_client({"--timeout", "20", base + "/one", base + "/two?x=1", base},
                   std::string(coronet::to_string(kind)));
    INFO(describe(status) << "\nstderr: " << err);
    CHECK(exited_with(status, 0));
    auto got = split(out);
    REQUIRE(got.size() == 3);
    CHECK(got.find(base + "/one")->second.body == "you asked for /one");
    CHECK(got.find(base + "/two?x=1")->second.body == "you asked for /two?x=1");
    CHECK(got.find(base)->second.body == "you asked for /");
    REQUIRE(server.requests().size() == 3);
    const std::string host = "Host: 127.0.0.1:" + std::to_string(server.port) + "\r\n\r\n";
    for (const auto& r : server.requests()) {
        INFO("request: " << r);
        CHECK(r.starts_with("GET /"));
        CHECK(r.find(" HTTP/1.0\r\n" + host) != std::string::npos);
    }
}

TEST_CASE("http_client: a failed fetch is one line on stderr and exit status 1, the rest print",
          "[http_client]") {
    CORONET_FOR_EACH_BACKEND(kind);
    // A refused port: bound but not listening, and held, so nobody else takes it meanwhile.
    int closed = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(closed, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::getsockname(closed, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    const std::string refused = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
    // A server that is not HTTP, and one that accepts (the kernel's backlog) and never answers.
    gathering_server garbage(1, [](const std::string&) { return std::string("SSH-2.0-nope\r\n"); });
    const std::string not_http = "http://127.0.0.1:" + std::to_string(garbage.port) + "/";
    unsigned silent_port = 0;
    int silent = listen_tcp(silent_port);
    const std::string silent_url = "http://127.0.0.1:" + std::to_string(silent_port) + "/slow";
    gathering_server fine(1, [](const std::string&) { return http_ok("fine"); });
    const std::string fine_url = "http://127.0.0.1:" + std::to_string(fine.port) + "/";

    auto [status, out, err] =
        run_client({"--timeout", "1", refused, not_http, silent_url, fine_url},
                   std::string(coronet::to_string(kind)));
    ::close(closed);
    ::close(silent);
    INFO(describe(status) << "\nstdout: " << out << "\nstderr: " << err);
    CHECK(exited_with(status, 1));
    auto got = split(out);
    REQUIRE(got.size() == 1);
    CHECK(got.find(fine_url)->second.body == "fine");
    CHECK(err.find("http_client: " + refused + ": connect 127.0.0.1:") != std::string::npos);
    CHECK(err.find(": Connection refused\n") != std::string::npos);
    CHECK(err.find("http_client: " + not_http + ": bad response: not HTTP/1.x") !=
          std::string::npos);
    CHECK(err.find("http_client: " + silent_url + ": no response within 1 s\n") !=
          std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 3);  // one line each, nothing else
}

TEST_CASE("http_client: names resolve through --dns-server, IPv6 first, falling back to IPv4",
          "[http_client]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir dir("http_client_test");
    dir.write("small.txt", "hello, world\n");
    python_server server(dir.path());  // on 127.0.0.1 only: ::1 refuses
    dnsmasq_server dns("127.0.0.1 web.test\n::1 web.test\n127.0.0.1 other.test\n");
    const std::string port = std::to_string(server.port);
    const std::vector<std::string> urls = {"http://web.test:" + port + "/small.txt",
                                           "http://other.test:" + port + "/small.txt"};
    std::vector<std::string> args = {"--dns-server", dns.server()};
    args.insert(args.end(), urls.begin(), urls.end());
    auto [status, out, err] = run_client(args, std::string(coronet::to_string(kind)));
    INFO(describe(status) << "\nstderr: " << err);
    CHECK(exited_with(status, 0));
    CHECK(err.empty());
    auto got = split(out);
    REQUIRE(got.size() == 2);
    for (const auto& u : urls) {
        REQUIRE(got.count(u) == 1);
        CHECK(got.find(u)->second.body == "hello, world\n");
    }
}

TEST_CASE("http_client: an unknown name is a clear error and exit status 1", "[http_client]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dnsmasq_server dns("127.0.0.1 web.test\n");
    auto [status, out, err] = run_client({"--dns-server", dns.server(), "http://nosuch.test/"},
                                         std::string(coronet::to_string(kind)));
    INFO(describe(status) << "\nstdout: " << out);
    CHECK(exited_with(status, 1));
    CHECK(out.empty());
    CHECK(err ==
          "http_client: http://nosuch.test/: resolve 'nosuch.test': no such host name (or it "
          "has no address)\n");
}

TEST_CASE("http_client: while one name takes 2 s to resolve, the other URLs are fetched",
          "[http_client]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir dir("http_client_test");
    dir.write("a.txt", "fast\n");
    python_server server(dir.path());
    slow_dns_server dns(2.0);  // slow.test is 127.0.0.1, after 2 s
    const std::string port = std::to_string(server.port);
    const std::string slow = "http://slow.test:" + port + "/a.txt";
    const std::string fast = "http://127.0.0.1:" + port + "/a.txt";
    auto start = steady::now();
    child client({runfile("examples/http_client"), "--dns-server", dns.server(), slow, fast, fast},
                 {.env = {"CORONET_BACKEND=" + std::string(coronet::to_string(kind))}});
    std::string first = client.first_line(20s);
    auto first_ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    int status = client.wait_exit(30s);
    auto all_ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    INFO(describe(status) << "\nstdout: " << client.out() << "\nstderr: " << client.err());
    std::fprintf(stderr,
                 "http_client (%s): first response after %lld ms, the slow name's after %lld ms\n",
                 std::string(coronet::to_string(kind)).c_str(),
                 static_cast<long long>(first_ms.count()), static_cast<long long>(all_ms.count()));
    CHECK(exited_with(status, 0));
    CHECK(first.starts_with("==> " + fast + " (200"));  // not stuck behind the slow name
    CHECK(first_ms < 1500ms);
    CHECK(all_ms >= 1500ms);  // and the slow one did wait for its answer
    auto got = split(client.out());
    CHECK(got.size() == 3);
    CHECK(got.count(slow) == 1);
}
