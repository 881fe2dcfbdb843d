#pragma once
// tests/examples/http_server_fixture.hpp: examples/http_server as a child process for tests.
//
// `http_server` starts the real binary (a data dependency, found in the runfiles) on port 0
// over a root directory with --backend, and reads the port from its start line; `http_connection`
// is a loopback client that reads responses one at a time (the head, then Content-Length bytes);
// `fill_root` writes the files the tests serve, with symlinks that lead outside the root.

#include <catch2/catch.hpp>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <coronet/lib/reactor.hpp>

#include "tests/support/process.hpp"

namespace coronet::testing {

// The http_server child, serving root on a free port of 127.0.0.1.
class http_server {
public:
    http_server(const std::filesystem::path& root, coronet::backend_kind kind,
                std::vector<std::string> more = {}, const child_options& options = {})
        : proc_(args(root, kind, std::move(more)), options) {
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
        return proc_.wait_exit(std::chrono::seconds(10));
    }

private:
    static std::vector<std::string> args(const std::filesystem::path& root,
                                         coronet::backend_kind kind,
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

// A response as it came over the wire.
struct http_response {
    std::string status_line;
    std::vector<std::string> lines;              // the header lines, as sent
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
};

// A raw connection to an HTTP server on 127.0.0.1:port.
class http_connection : public tcp_client {
public:
    // receive_buffer: SO_RCVBUF in bytes (0: the default), so that a response can stay in flight.
    explicit http_connection(unsigned port, int receive_buffer = 0)
        : tcp_client(port, {.receive_buffer = receive_buffer}) {}

    // The next response: the head, then Content-Length bytes of body (none for HEAD or 304).
    std::optional<http_response> read_response(
        bool head_only = false, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = steady::now() + timeout;
        auto& in = buffered();
        std::size_t end;
        while ((end = in.find("\r\n\r\n")) == std::string::npos)
            if (!fill(in.size() + 1, std::chrono::milliseconds(ms_until(deadline))))
                return std::nullopt;
        http_response r;
        std::string head = in.substr(0, end + 2);
        in.erase(0, end + 4);
        std::size_t at = head.find("\r\n");
        r.status_line = head.substr(0, at);
        for (at += 2; at < head.size();) {
            std::size_t eol = head.find("\r\n", at);
            std::string line = head.substr(at, eol - at);
            r.lines.push_back(line);
            std::string name = line.substr(0, line.find(':'));
            for (auto& ch : name)
                ch = char(std::tolower(static_cast<unsigned char>(ch)));
            r.headers[name] =
                line.find(':') == std::string::npos ? "" : line.substr(line.find(':') + 2);
            at = eol + 2;
        }
        std::size_t length =
            r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
        if (head_only || r.status_line.find(" 304 ") != std::string::npos) length = 0;
        if (!fill(length, std::chrono::milliseconds(ms_until(deadline)))) return std::nullopt;
        r.body = in.substr(0, length);
        in.erase(0, length);
        return r;
    }
};

// "GET path HTTP/1.1" with a Host and more header lines (each ending in "\r\n").
inline std::string get(unsigned port, const std::string& path, const std::string& headers = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n" +
           headers + "\r\n";
}

// size bytes that are not all alike, so a misplaced chunk shows.
inline std::string pattern(std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = char('a' + (i * 7 + i / 4096) % 26);
    return s;
}

// The files the tests serve, big.bin is 8 MiB of pattern(); escape.txt and escape_dir are
// symlinks into outside (which holds secret.txt).
inline void fill_root(const temp_dir& root, const temp_dir& outside) {
    root.write("hello.txt", "Hello from a file\n");
    root.write("page.html", "<p>page</p>\n");
    root.write("docs/index.html", "<h1>docs</h1>\n");
    root.write("list/b.bin", std::string(1000, 'b'));
    root.write("list/a <&> \"x\".txt", "x");
    for (int i = 0; i < 20; ++i)
        root.write("pipe/" + std::to_string(i), "file " + std::to_string(i));
    root.write("big.bin", pattern(8 << 20));
    outside.write("secret.txt", "SECRET\n");
    std::filesystem::create_symlink(outside.path() / "secret.txt", root.path() / "escape.txt");
    std::filesystem::create_symlink(outside.path(), root.path() / "escape_dir");
}

}  // namespace coronet::testing
