// tests/examples/http_server_test.cpp: runs examples/http_server the way a user does.
//
// Each test serves a fresh temporary directory with the real binary (a data dependency, found
// in the runfiles) on port 0, reads the port from its start line, and talks to it with curl,
// wrk and raw sockets over loopback, on every backend; it stops the server with SIGTERM and
// expects exit status 0. curl and wrk are required (tools/install-deps.sh test installs them):
// a missing one fails the test and says so. Every wait is bounded, and the only processes
// signalled are the children started here (tests/support/process.hpp).

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "tests/examples/http_server_fixture.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace std::chrono_literals;
using namespace coronet::testing;
using connection = http_connection;

std::string tool(const std::string& name) {
    return coronet::testing::tool(
        name, "http_server_test needs curl and wrk (tools/install-deps.sh test installs them)");
}

// curl -s -i (--path-as-is keeps "/../"): the status code, headers and body as curl saw them.
result curl(std::vector<std::string> args) {
    std::vector<std::string> argv{tool("curl"), "-s", "--max-time", "10", "--noproxy", "*"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

// Checks a response exactly: its status line, its header lines in order ("Server", "Date" of the
// IMF-fixdate form, then `more`) and its body.
void check_exact(const std::optional<http_response>& r, const std::string& status_line,
                 const std::vector<std::string>& more, const std::string& body) {
    REQUIRE(r);
    CHECK(r->status_line == status_line);
    REQUIRE(r->lines.size() == 2 + more.size());
    CHECK(r->lines[0] == "Server: coronet");
    CHECK(std::regex_match(
        r->lines[1],
        std::regex(R"(Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT)")));
    for (std::size_t i = 0; i < more.size(); ++i)
        CHECK(r->lines[2 + i] == more[i]);
    CHECK(r->body == body);
}

// The head lines of /hello after its Date, with a Connection line when one is given.
std::vector<std::string> hello_lines(const std::string& connection = "") {
    std::vector<std::string> lines{"Content-Type: text/plain", "Content-Length: 13"};
    if (!connection.empty()) lines.push_back("Connection: " + connection);
    return lines;
}

const std::string hello = "Hello, world!";
}  // namespace

TEST_CASE("http_server: --help prints the usage and exits 0", "[http_server]") {
    auto r = run({runfile("examples/http_server"), "--help"});
    INFO(describe(r.status) << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.starts_with(
        "usage: http_server [--host 127.0.0.1] [--port 8080] [--root .] [--threads 1] "
        "[--backend auto|io_uring|epoll|select] [--idle-timeout 30] [--max-connections 10000] "
        "[--tls-cert FILE] [--tls-key FILE]\n"));
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

// The server keeps files open between requests (coronet::open_file_cache); what the file
// system does to them in between must show in the very next response on the same connection.
TEST_CASE(
    "http_server: the next request sees a file replaced, rewritten or deleted, and a "
    "directory swapped for a symlink out of the root",
    "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root, outside;
    root.write("f.txt", "first\n");
    root.write("big.bin",
               pattern(100'000));  // over 16 KiB: sent by sendfile from the kept descriptor
    root.write("dir/page.txt", "inside\n");
    root.write("other/page.txt", "other\n");
    outside.write("elsewhere/page.txt", "OUTSIDE\n");
    http_server s(root.path(), kind);
    connection c(s.port());
    auto fetch = [&](const std::string& path) {
        c.send(get(s.port(), path));
        auto r = c.read_response();
        REQUIRE(r);
        return *r;
    };
    auto head = [&](const std::string& path) {  // a listing is chunked: its head alone
        c.send("HEAD " + path + " HTTP/1.1\r\nHost: h\r\n\r\n");
        auto r = c.read_response(true);
        REQUIRE(r);
        return r->status_line;
    };
    auto ok = [](const http_response& r, const std::string& body) {
        INFO(r.status_line);
        CHECK(r.status_line == "HTTP/1.1 200 OK");
        CHECK(r.headers.at("content-length") == std::to_string(body.size()));
        CHECK(r.body == body);
    };
    for (int i = 0; i < 2; ++i) {  // the second time from the cache
        ok(fetch("/f.txt"), "first\n");
        ok(fetch("/big.bin"), pattern(100'000));
        ok(fetch("/dir/page.txt"), "inside\n");
        ok(fetch("/other/page.txt"), "other\n");
        CHECK(head("/dir/") == "HTTP/1.1 200 OK");  // a listing
    }

    // Replaced: a new file renamed over the old name.
    root.write("f.tmp", "second version\n");
    std::filesystem::rename(root.path() / "f.tmp", root.path() / "f.txt");
    ok(fetch("/f.txt"), "second version\n");

    // Rewritten in place (the same inode) with a new size, small and large.
    std::ofstream(root.path() / "f.txt", std::ios::binary | std::ios::trunc)
        << "third, and longer than before\n";
    ok(fetch("/f.txt"), "third, and longer than before\n");
    const std::string bigger = pattern(150'000).substr(7);
    std::ofstream(root.path() / "big.bin", std::ios::binary | std::ios::trunc) << bigger;
    ok(fetch("/big.bin"), bigger);

    // Deleted.
    std::filesystem::remove(root.path() / "f.txt");
    CHECK(fetch("/f.txt").status_line == "HTTP/1.1 404 Not Found");

    // A directory moved out of the root and linked back in: the file keeps its inode, and the
    // path now leads outside the root.
    std::filesystem::rename(root.path() / "dir", outside.path() / "dir");
    std::filesystem::create_directory_symlink(outside.path() / "dir", root.path() / "dir");
    auto r = fetch("/dir/page.txt");
    CHECK(r.status_line == "HTTP/1.1 403 Forbidden");
    CHECK(r.body.find("inside") == std::string::npos);
    CHECK(head("/dir/") == "HTTP/1.1 403 Forbidden");
    // ... and one swapped for a symlink to another directory outside.
    std::filesystem::remove_all(root.path() / "other");
    std::filesystem::create_directory_symlink(outside.path() / "elsewhere", root.path() / "other");
    r = fetch("/other/page.txt");
    CHECK(r.status_line == "HTTP/1.1 403 Forbidden");
    CHECK(r.body.find("OUTSIDE") == std::string::npos);

    int status = s.stop();
    INFO(describe(status) << "\nstderr: " << s.process().err());
    CHECK(status == 0);
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

    SECTION("/hello: its full head, HEAD, Connection: close and other spellings of the path") {
        connection c(s.port());
        c.send(get(s.port(), "/hello") + get(s.port(), "/hello") +
               "HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\n" + get(s.port(), "/./hello?q=1") +
               get(s.port(), "//hello"));
        for (int i = 0; i < 2; ++i) {  // the second may be the same bytes as the first
            INFO("GET " << i);
            auto r = c.read_response();
            REQUIRE(r);
            CHECK(r->status_line == "HTTP/1.1 200 OK");
            CHECK(r->headers["server"] == "coronet");
            CHECK(std::regex_match(
                r->headers["date"],
                std::regex(R"([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT)")));
            CHECK(r->headers["content-type"] == "text/plain");
            CHECK(r->headers["content-length"] == "13");
            CHECK(r->headers.count("connection") == 0);
            CHECK(r->body == "Hello, world!");
        }
        auto head = c.read_response(true);
        REQUIRE(head);
        CHECK(head->status_line == "HTTP/1.1 200 OK");
        CHECK(head->headers["content-length"] == "13");
        CHECK(head->body.empty());
        for (int i = 0; i < 2; ++i) {
            auto r = c.read_response();
            REQUIRE(r);
            CHECK(r->body == "Hello, world!");
        }
        c.send("GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        auto r = c.read_response();
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

TEST_CASE("http_server: /hello and error pages, exactly, for HEAD, HTTP/1.0 and Connection: close",
          "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind);

    SECTION("HTTP/1.1 keep-alive: GET, HEAD, GET of /hello and its decoded spellings") {
        connection c(s.port());
        c.send(get(s.port(), "/hello") + "HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\n" +
               "HEAD /./hello?q=1 HTTP/1.1\r\nHost: h\r\n\r\n" + get(s.port(), "//hello"));
        check_exact(c.read_response(), "HTTP/1.1 200 OK", hello_lines(), hello);
        // HEAD: the same head, Content-Length 13, and no body (the next response follows it).
        check_exact(c.read_response(true), "HTTP/1.1 200 OK", hello_lines(), "");
        check_exact(c.read_response(true), "HTTP/1.1 200 OK", hello_lines(), "");
        check_exact(c.read_response(), "HTTP/1.1 200 OK", hello_lines(), hello);
        CHECK(c.buffered().empty());
    }

    SECTION("HTTP/1.0 with keep-alive: GET and HEAD keep the connection, then one without closes") {
        connection c(s.port());
        c.send(
            "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            "HEAD /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            "GET /./hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        check_exact(c.read_response(), "HTTP/1.1 200 OK", hello_lines("keep-alive"), hello);
        check_exact(c.read_response(true), "HTTP/1.1 200 OK", hello_lines("keep-alive"), "");
        check_exact(c.read_response(), "HTTP/1.1 200 OK", hello_lines("keep-alive"), hello);
        c.send("GET /hello HTTP/1.0\r\n\r\n");
        check_exact(c.read_response(), "HTTP/1.1 200 OK", hello_lines("close"), hello);
        CHECK(c.closed_by_peer(5s));  // and nothing after the body
    }

    SECTION("HTTP/1.0 HEAD without keep-alive: the head, Connection: close, no body") {
        connection c(s.port());
        c.send("HEAD /hello HTTP/1.0\r\n\r\n");
        check_exact(c.read_response(true), "HTTP/1.1 200 OK", hello_lines("close"), "");
        CHECK(c.closed_by_peer(5s));  // no body came before the close
    }

    SECTION("HTTP/1.1 Connection: close, GET and HEAD") {
        connection c(s.port());
        c.send("GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        check_exact(c.read_response(), "HTTP/1.1 200 OK", hello_lines("close"), hello);
        CHECK(c.closed_by_peer(5s));
        connection d(s.port());
        d.send("HEAD /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        check_exact(d.read_response(true), "HTTP/1.1 200 OK", hello_lines("close"), "");
        CHECK(d.closed_by_peer(5s));
    }

    SECTION("an error page: GET and HEAD on HTTP/1.1, HTTP/1.0 and Connection: close") {
        const std::string page =
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>"
            "<h1>404 Not Found</h1></body></html>\n";
        std::vector<std::string> lines{"Content-Type: text/html; charset=utf-8",
                                       "Content-Length: " + std::to_string(page.size())};
        auto with = [&lines](const std::string& connection) {
            auto more = lines;
            more.push_back("Connection: " + connection);
            return more;
        };
        connection c(s.port());
        c.send(get(s.port(), "/missing") + "HEAD /missing HTTP/1.1\r\nHost: h\r\n\r\n" +
               "GET /missing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
               "HEAD /missing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
               "HEAD /missing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        check_exact(c.read_response(), "HTTP/1.1 404 Not Found", lines, page);
        check_exact(c.read_response(true), "HTTP/1.1 404 Not Found", lines, "");
        check_exact(c.read_response(), "HTTP/1.1 404 Not Found", with("keep-alive"), page);
        check_exact(c.read_response(true), "HTTP/1.1 404 Not Found", with("keep-alive"), "");
        check_exact(c.read_response(true), "HTTP/1.1 404 Not Found", with("close"), "");
        CHECK(c.closed_by_peer(5s));
        connection d(s.port());
        d.send("GET /missing HTTP/1.0\r\n\r\n");
        check_exact(d.read_response(), "HTTP/1.1 404 Not Found", with("close"), page);
        CHECK(d.closed_by_peer(5s));
        connection e(s.port());  // 405 says which methods are allowed
        e.send("DELETE /hello HTTP/1.1\r\nHost: h\r\n\r\n");
        const std::string not_allowed =
            "<!DOCTYPE html>\n<html><head><title>405 Method Not Allowed</title></head><body>"
            "<h1>405 Method Not Allowed</h1></body></html>\n";
        check_exact(e.read_response(), "HTTP/1.1 405 Method Not Allowed",
                    {"Content-Type: text/html; charset=utf-8",
                     "Content-Length: " + std::to_string(not_allowed.size()), "Allow: GET, HEAD"},
                    not_allowed);
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

namespace {

// "127.0.0.1:PORT" of a client's own end.
std::string local_of(const connection& c) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&a), &len);
    return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

// The peers listed in /status.json, asked on `asker` (whose own row is left out).
std::vector<std::string> listed_peers(unsigned port, connection& asker) {
    asker.send(get(port, "/status.json"));
    auto r = asker.read_response();
    REQUIRE(r);
    CHECK(r->headers["content-type"] == "application/json");
    std::vector<std::string> peers;
    std::regex row("\"peer\":\"([^\"]+)\"");
    for (std::sregex_iterator it(r->body.begin(), r->body.end(), row), end; it != end; ++it)
        if ((*it)[1] != local_of(asker)) peers.push_back((*it)[1]);
    std::sort(peers.begin(), peers.end());
    return peers;
}

}  // namespace

TEST_CASE("http_server: /status.json lists exactly the open connections; /status is HTML",
          "[http_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const unsigned threads = GENERATE(1u, 2u);  // with 2, every thread's connections are listed
    INFO("threads: " << threads);
    temp_dir root, outside;
    fill_root(root, outside);
    http_server s(root.path(), kind, {"--threads", std::to_string(threads)});
    std::vector<connection> open;
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i) {
        open.emplace_back(s.port());
        open.back().send(get(s.port(), "/hello"));
        REQUIRE(open.back().read_response());  // accepted and listed by now
        expected.push_back(local_of(open.back()));
    }
    std::sort(expected.begin(), expected.end());
    connection asker(s.port());
    CHECK(listed_peers(s.port(), asker) == expected);

    open.erase(open.begin(), open.begin() + 5);  // 5 close
    expected.clear();
    for (auto& c : open)
        expected.push_back(local_of(c));
    std::sort(expected.begin(), expected.end());
    std::vector<std::string> now;
    for (int i = 0; i < 100; ++i) {  // the server sees the closes within a few turns
        now = listed_peers(s.port(), asker);
        if (now == expected) break;
        std::this_thread::sleep_for(20ms);
    }
    CHECK(now == expected);

    asker.send(get(s.port(), "/status.json"));
    auto json = asker.read_response();
    REQUIRE(json);
    for (const char* field : {"\"backend\":\"", "\"uptime_seconds\":", "\"connections_open\":6",
                              "\"connections_total\":11", "\"requests_served\":", "\"bytes_sent\":",
                              "\"provided_buffers_in_use\":", "\"state\":\"idle\""})
        CHECK(json->body.find(field) != std::string::npos);
    asker.send(get(s.port(), "/status"));
    auto html = asker.read_response();
    REQUIRE(html);
    CHECK(html->headers["content-type"] == "text/html; charset=utf-8");
    CHECK(html->body.find("<h1>coronet http_server status</h1>") != std::string::npos);
    CHECK(json->body.find("\"threads\":" + std::to_string(threads)) != std::string::npos);
    CHECK(count(html->body, "<tr><td>") == 6);
    CHECK(s.stop() == 0);
}
