// tests/examples/http_close_test.cpp: how examples/http_server ends a connection the client
// asked to close, over plain TCP and TLS, on every backend.
//
// A request that asks to close (Connection: close, or HTTP/1.0 without keep-alive) and has
// nothing after it gets its whole response, then the server closes at once: it does not wait
// for the client's end (the client here never closes), so a byte the client sends afterwards is
// answered by a reset. Bytes after such a request (pipelined requests the client should not have
// sent) keep the lingering close: the server reads and drops them, and no reset can destroy the
// response. The server is the real binary (a data dependency) on port 0.

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/tls.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/examples/http_server_fixture.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/process.hpp"
#include "tests/support/tls_certs.hpp"

namespace {

using namespace std::chrono_literals;
using namespace coronet::testing;

// The kernel's TCP state of fd: TCP_CLOSE once a reset has come back.
int tcp_state(int fd) {
    ::tcp_info info{};
    ::socklen_t size = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return -1;
    return info.tcpi_state;
}

// After the server's end of stream on fd: "closed" if the server's socket is gone (a byte sent
// now is answered by a reset within 2 s), "open" if the server still reads and drops what comes
// (it lingers; ours stays in CLOSE_WAIT for 300 ms).
std::string server_side(int fd) {
    if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) return "send failed";
    for (int i = 0; i < 200; ++i) {
        if (tcp_state(fd) == TCP_CLOSE) return "closed";
        if (i == 30 && tcp_state(fd) == TCP_CLOSE_WAIT) return "open";
        std::this_thread::sleep_for(10ms);
    }
    return "state " + std::to_string(tcp_state(fd));
}

// --- plain HTTP ---

// Sends request (and more after it), reads one response, then the end of stream: the status
// line, the body, and what the server's side does then.
std::string plain(unsigned port, const std::string& request, const std::string& more = "") {
    http_connection c(port);
    c.send(request + more);
    auto r = c.read_response();
    if (!r) return "no response";
    std::string out = r->status_line + " " + r->body;
    out += c.closed_by_peer(5s) ? " <eof>" : " <open>";
    return out + " " + server_side(c.fd());
}

// --- HTTPS: the http_server child with a certificate, and coronet's TLS client ---

class https_server {
public:
    https_server(const std::filesystem::path& root, coronet::backend_kind kind)
        : proc_({runfile("examples/http_server"), "--port", "0", "--root", root.string(),
                 "--backend", std::string(coronet::to_string(kind)), "--tls-cert", certs().cert,
                 "--tls-key", certs().key}) {
        std::string line = proc_.first_line();
        INFO("start line: " << line << "\nstderr: " << proc_.err());
        std::smatch m;
        REQUIRE(std::regex_search(line, m, std::regex("https://127\\.0\\.0\\.1:(\\d+)/")));
        port_ = unsigned(std::stoul(m[1]));
    }
    unsigned port() const { return port_; }
    int stop() {
        proc_.signal(SIGTERM);
        return proc_.wait_exit(std::chrono::seconds(10));
    }

private:
    child proc_;
    unsigned port_ = 0;
};

// Over TLS: sends request + more, reads until the end of stream (5 s at most): what came, then
// "<eof>" for a clean end (the server's close_notify) or the error, then the server's side.
coronet::task<std::string> tls_exchange(coronet::reactor& r, unsigned port, std::string request,
                                        std::string more) {
    auto ctx = coronet::tls_context::client({.ca_file = certs().ca});
    auto at = coronet::address::parse("127.0.0.1:" + std::to_string(port));
    auto s = co_await coronet::socket::connect(r, at);
    coronet::channel ch(co_await coronet::tls_connect(std::move(s), ctx, "localhost"));
    ch.push(request + more);
    std::string got, end;
    try {
        ch.set_read_deadline(coronet::reactor::clock::now() + 5s);
        for (;;) {
            auto bytes = co_await ch.read_some();
            if (!bytes) break;
            got += *bytes;
        }
        end = "<eof>";
    } catch (const std::system_error& e) {
        end = "<" + e.code().message() + ">";
    }
    std::string out = got.substr(0, got.find("\r\n")) + " " + got.substr(got.find("\r\n\r\n") + 4);
    out += " " + end;
    if (end == "<eof>" && more.empty()) out += " " + server_side(ch.sock().native_handle());
    ch.close();
    co_return out;
}

std::string https(coronet::backend_kind kind, unsigned port, const std::string& request,
                  const std::string& more = "") {
    coronet::reactor r{{.backend = kind}};
    return r.run(tls_exchange(r, port, request, more));
}

const std::string close_request = "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
const std::string http10_request = "GET /hello HTTP/1.0\r\n\r\n";
const std::string next_request = "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n";

}  // namespace

TEST_CASE("http_server: a request that asks to close: its response, then the server closes at once",
          "[http_close]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root;
    http_server s(root.path(), kind);

    SECTION("Connection: close") {
        CHECK(plain(s.port(), close_request) == "HTTP/1.1 200 OK Hello, world! <eof> closed");
    }
    SECTION("HTTP/1.0 without keep-alive") {
        CHECK(plain(s.port(), http10_request) == "HTTP/1.1 200 OK Hello, world! <eof> closed");
    }
    SECTION("a file") {
        root.write("page.html", "<p>page</p>\n");
        CHECK(plain(s.port(), "GET /page.html HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") ==
              "HTTP/1.1 200 OK <p>page</p>\n <eof> closed");
    }
    CHECK(s.stop() == 0);
}

TEST_CASE("http_server: bytes after a request that asks to close keep the lingering close",
          "[http_close]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root;
    http_server s(root.path(), kind);

    SECTION("a pipelined request") {
        CHECK(plain(s.port(), close_request, next_request) ==
              "HTTP/1.1 200 OK Hello, world! <eof> open");
    }
    SECTION("64 KiB after it: the response whole, no reset") {
        CHECK(plain(s.port(), close_request, next_request + std::string(64 * 1024, 'x')) ==
              "HTTP/1.1 200 OK Hello, world! <eof> open");
    }
    SECTION("an error response lingers too") {
        std::string got = plain(s.port(), "GET /hello HTTP/2.0\r\nConnection: close\r\n\r\n");
        CHECK(got.starts_with("HTTP/1.1 505 HTTP Version Not Supported <!DOCTYPE html>"));
        CHECK(got.ends_with("</html>\n <eof> open"));
    }
    CHECK(s.stop() == 0);
}

TEST_CASE(
    "http_server over TLS: close_notify and a close at once after a request that asks to "
    "close; bytes after it keep the linger",
    "[http_close][tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    temp_dir root;
    https_server s(root.path(), kind);

    SECTION("Connection: close") {
        CHECK(https(kind, s.port(), close_request) == "HTTP/1.1 200 OK Hello, world! <eof> closed");
    }
    SECTION("HTTP/1.0 without keep-alive") {
        CHECK(https(kind, s.port(), http10_request) ==
              "HTTP/1.1 200 OK Hello, world! <eof> closed");
    }
    SECTION("a pipelined request and 64 KiB after it: the response whole, a clean end") {
        CHECK(https(kind, s.port(), close_request, next_request + std::string(64 * 1024, 'x')) ==
              "HTTP/1.1 200 OK Hello, world! <eof>");
    }
    CHECK(s.stop() == 0);
}
