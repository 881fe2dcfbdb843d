// tests/proto/http_test.cpp: proto/http.hpp: the request head parser, target decoding
// (traversal and smuggling attempts), HTTP dates, response heads and status lines, chunked
// framing, fixed responses and URLs.
#include <coronet/proto/http.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace http = coronet::http;

namespace {

int request_line(std::string_view line, http::request& req) {
    req.clear();
    return http::parse_request_line(line, req);
}

// Parses a request line and header lines (the blank line implied): 0 or the first error status.
int head(std::initializer_list<std::string_view> lines, http::request& req) {
    auto it = lines.begin();
    if (int status = request_line(*it++, req)) return status;
    for (; it != lines.end(); ++it)
        if (int status = http::parse_header(*it, req)) return status;
    return http::finish_head(req);
}

int decode(std::string_view target, std::string& out) { return http::decode_path(target, out); }

}  // namespace

TEST_CASE("http: a request line is split into method, target and version", "[http]") {
    http::request req;
    REQUIRE(request_line("GET /a/b?c=d HTTP/1.1", req) == 0);
    CHECK(req.method == "GET");
    CHECK(req.target == "/a/b?c=d");
    CHECK(req.minor == 1);
    REQUIRE(request_line("HEAD / HTTP/1.0", req) == 0);
    CHECK(req.method == "HEAD");
    CHECK(req.minor == 0);
    REQUIRE(request_line("GET / HTTP/1.9", req) == 0);  // a later 1.x is answered as 1.1
    CHECK(req.minor == 1);
    REQUIRE(request_line("OPTIONS * HTTP/1.1", req) == 0);
    CHECK(req.target == "*");
}

TEST_CASE("http: an absolute-form target keeps its path only", "[http]") {
    http::request req;
    REQUIRE(request_line("GET http://example.com:8080/x/y?z HTTP/1.1", req) == 0);
    CHECK(req.target == "/x/y?z");
    REQUIRE(request_line("GET HTTPS://example.com HTTP/1.1", req) == 0);
    CHECK(req.target == "/");
}

TEST_CASE("http: malformed request lines are 400, other major versions 505", "[http]") {
    http::request req;
    using case_t = std::pair<std::string_view, int>;
    auto [line, status] = GENERATE(
        case_t{"GET / HTTP/2.0", 505}, case_t{"PRI * HTTP/2.0", 505}, case_t{"GET / HTTP/3", 505},
        case_t{"GET / HTTP/0.9", 505}, case_t{"GET /", 400},  // HTTP/0.9 style
        case_t{"GET  / HTTP/1.1", 400},                       // two spaces
        case_t{"GET / HTTP/1.1 ", 400},                       // trailing space
        case_t{"GET / http/1.1", 400},                        // case matters
        case_t{"GET / HTTP/1.x", 400}, case_t{"GET / HTTP/1.10", 400}, case_t{"GET / HTTP/", 400},
        case_t{"G(T / HTTP/1.1", 400}, case_t{" / HTTP/1.1", 400}, case_t{"GET a HTTP/1.1", 400},
        case_t{"GET /\x01 HTTP/1.1", 400}, case_t{std::string_view("GET /\0 HTTP/1.1", 15), 400},
        case_t{"GET /\xff HTTP/1.1", 400}, case_t{"", 400});
    INFO("line: " << line);
    CHECK(request_line(line, req) == status);
}

TEST_CASE("http: headers set what the server needs", "[http]") {
    http::request req;
    REQUIRE(head({"GET / HTTP/1.1", "Host: example.com", "connection: Upgrade, Close",
                  "Content-Length: 12", "If-Modified-Since:  Sun, 06 Nov 1994 08:49:37 GMT  ",
                  "X-Other: whatever"},
                 req) == 0);
    CHECK(req.has_host);
    CHECK(req.connection_close);
    CHECK_FALSE(req.keep_alive());
    CHECK(req.content_length == 12u);
    CHECK(req.if_modified_since == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(req.header_count == 5);
}

TEST_CASE("http: keep-alive is the default on 1.1 and asked for on 1.0", "[http]") {
    http::request req;
    REQUIRE(head({"GET / HTTP/1.1", "Host: h"}, req) == 0);
    CHECK(req.keep_alive());
    REQUIRE(head({"GET / HTTP/1.0"}, req) == 0);  // no Host needed on 1.0
    CHECK_FALSE(req.keep_alive());
    REQUIRE(head({"GET / HTTP/1.0", "Connection: Keep-Alive"}, req) == 0);
    CHECK(req.keep_alive());
}

TEST_CASE("http: clear() forgets the previous request", "[http]") {
    http::request req;
    REQUIRE(head({"GET / HTTP/1.0", "Connection: keep-alive", "Content-Length: 3",
                  "If-Modified-Since: x", "Expect: 100-continue"},
                 req) == 0);
    req.clear();
    CHECK(req.method.empty());
    CHECK_FALSE(req.connection_keep_alive);
    CHECK_FALSE(req.content_length);
    CHECK(req.if_modified_since.empty());
    CHECK_FALSE(req.expect_continue);
    CHECK(req.header_count == 0);
}

TEST_CASE("http: malformed or dangerous headers are refused", "[http]") {
    http::request req;
    using case_t = std::pair<std::string_view, int>;
    auto [line, status] = GENERATE(
        case_t{"NoColon", 400}, case_t{"Host : h", 400},  // space before ':'
        case_t{" folded", 400}, case_t{"\tfolded: x", 400}, case_t{": empty name", 400},
        case_t{"Bad\x01Name: x", 400}, case_t{"X: a\x01b", 400},
        case_t{std::string_view("X: a\0b", 6), 400}, case_t{"Content-Length: -1", 400},
        case_t{"Content-Length: 1x", 400}, case_t{"Content-Length: ", 400},
        case_t{"Content-Length: 5, 5", 400}, case_t{"Content-Length: 99999999999999999999999", 400},
        case_t{"Content-Length: 7", 400},  // differs from the first
        case_t{"Host: second", 400});
    INFO("header: " << line);
    REQUIRE(head({"GET / HTTP/1.1", "Host: h", "Content-Length: 5"}, req) == 0);
    CHECK(http::parse_header(line, req) == status);
}

TEST_CASE("http: the head as a whole is checked at the blank line", "[http]") {
    http::request req;
    CHECK(head({"GET / HTTP/1.1"}, req) == 400);  // 1.1 without Host
    CHECK(head({"GET / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"}, req) == 501);
    CHECK(head({"GET / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked", "Content-Length: 3"},
               req) == 400);
    CHECK(head({"GET / HTTP/1.1", "Host: h", "Content-Length: 1048576"}, req) == 0);
    CHECK(head({"GET / HTTP/1.1", "Host: h", "Content-Length: 1048577"}, req) == 413);
    CHECK(head({"GET / HTTP/1.1", "Host: h", "Content-Length: 5", "Content-Length: 5"}, req) == 0);
}

TEST_CASE("http: too many headers, or too many header bytes, are 431", "[http]") {
    http::request req;
    REQUIRE(request_line("GET / HTTP/1.1", req) == 0);
    for (std::size_t i = 0; i < http::max_headers; ++i)
        REQUIRE(http::parse_header("X: y", req) == 0);
    CHECK(http::parse_header("X: y", req) == 431);

    REQUIRE(request_line("GET / HTTP/1.1", req) == 0);
    std::string big = "X: " + std::string(8000, 'a');
    int status = 0;
    for (int i = 0; i < 20 && status == 0; ++i)
        status = http::parse_header(big, req);
    CHECK(status == 431);
    CHECK(req.header_bytes > http::max_header_bytes);
}

TEST_CASE("http: a target's path is decoded into relative segments", "[http]") {
    std::string out;
    using case_t = std::pair<std::string_view, std::string_view>;
    auto [target, expected] =
        GENERATE(case_t{"/", ""}, case_t{"/a", "a"}, case_t{"/a/b/", "a/b/"},
                 case_t{"/a//b", "a/b"}, case_t{"//", ""}, case_t{"/./a/./", "a/"},
                 case_t{"/a/.", "a/"}, case_t{"/%7Euser/x%20y", "~user/x y"}, case_t{"/a+b", "a+b"},
                 case_t{"/a?x=/../..", "a"}, case_t{"/a#frag", "a"}, case_t{"/%2E%2Ex", "..x"},
                 case_t{"/...", "..."}, case_t{"/a%3Fb", "a?b"}, case_t{"/%C3%A9", "\xC3\xA9"});
    INFO("target: " << target);
    REQUIRE(decode(target, out) == 0);
    CHECK(out == expected);
}

TEST_CASE("http: traversal and smuggling attempts are refused when decoding", "[http]") {
    std::string out;
    using case_t = std::pair<std::string_view, int>;
    auto [target, status] = GENERATE(
        case_t{"/../etc/passwd", 403}, case_t{"/a/../../etc/passwd", 403}, case_t{"/a/..", 403},
        case_t{"/%2e%2e/etc/passwd", 403}, case_t{"/%2E%2e/", 403}, case_t{"/.%2e/x", 403},
        case_t{"/..%2fetc/passwd", 400}, case_t{"/a%2Fb", 400}, case_t{"/a%00.txt", 400},
        case_t{"/a%0d%0aX: y", 400}, case_t{"/a%", 400}, case_t{"/a%2", 400}, case_t{"/a%zz", 400},
        case_t{"*", 400}, case_t{"", 400}, case_t{"a/b", 400});
    INFO("target: " << target);
    CHECK(decode(target, out) == status);
}

TEST_CASE("http: dates are formatted as IMF-fixdate", "[http]") {
    CHECK(http::format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(http::format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK(http::format_http_date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
    CHECK(http::format_http_date(4102444799) == "Thu, 31 Dec 2099 23:59:59 GMT");
    CHECK(http::format_http_date(1700000000).size() == http::date_size);
}

TEST_CASE("http: the three date formats parse, anything else does not", "[http]") {
    CHECK(http::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
    CHECK(http::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777);
    CHECK(http::parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777);
    CHECK(http::parse_http_date("Thu, 01 Jan 2037 00:00:00 GMT") == 2114380800);
    CHECK(http::parse_http_date("Thursday, 01-Jan-37 00:00:00 GMT") == 2114380800);  // 2037
    for (std::string_view bad :
         {"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
          "Sun, 06 Nov 1994 08:49:37 GMT ", "Sun, 06 Foo 1994 08:49:37 GMT",
          "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
          "Sun, 06 Nov 1994 08:49 GMT", "Sun Nov 6 08:49:37 1994"}) {
        INFO("date: '" << bad << "'");
        CHECK_FALSE(http::parse_http_date(bad));
    }
    for (std::time_t t : {std::time_t(0), std::time_t(784111777), std::time_t(1700000000)})
        CHECK(http::parse_http_date(http::format_http_date(t)) == t);
}

TEST_CASE("http: the date cache gives the current date", "[http]") {
    http::date_cache cache;
    std::time_t before = std::time(nullptr);
    auto now = http::parse_http_date(cache.now());
    REQUIRE(now);
    CHECK(*now >= before);
    CHECK(*now <= std::time(nullptr));
}

TEST_CASE("http: a response head has the status line, headers and a blank line", "[http]") {
    std::string out = "old";
    out.clear();
    http::append_head(out,
                      {.status = 200,
                       .content_type = "text/plain",
                       .content_length = 13,
                       .last_modified = 784111777,
                       .connection = http::connection_header::keep_alive,
                       .extra = "X-A: b\r\n"},
                      "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(
        out ==
        "HTTP/1.1 200 OK\r\nServer: coronet\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Content-Type: text/plain\r\nContent-Length: 13\r\n"
        "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: keep-alive\r\nX-A: b\r\n\r\n");
    out.clear();
    http::append_head(
        out, {.status = 404, .chunked = true, .connection = http::connection_header::close}, "D");
    CHECK(out ==
          "HTTP/1.1 404 Not Found\r\nServer: coronet\r\nDate: D\r\n"
          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    CHECK(http::reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(http::reason_phrase(505) == "HTTP Version Not Supported");
}

TEST_CASE("http: a fixed response gives every variant's exact bytes, HEAD without the body",
          "[http]") {
    http::fixed_response hello(200, "text/plain", "Hello, world!", "X-A: b\r\n");
    const std::string date = "Sun, 06 Nov 1994 08:49:37 GMT";
    const std::string head_start = "HTTP/1.1 200 OK\r\nServer: coronet\r\nDate: " + date +
                                   "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n";
    struct expected {
        http::connection_header connection;
        std::string line;  // the Connection header line, if any
        bool close;
    };
    for (const auto& e :
         {expected{http::connection_header::none, "", false},
          expected{http::connection_header::keep_alive, "Connection: keep-alive\r\n", false},
          expected{http::connection_header::close, "Connection: close\r\n", true}}) {
        INFO("connection header '" << e.line << "'");
        const std::string head = head_start + e.line + "X-A: b\r\n\r\n";
        // HEAD first, then GET: either may build the variant.
        std::string_view only_head =
            hello.bytes(date, {.head_only = true, .connection = e.connection});
        CHECK(only_head == head);
        std::string_view whole = hello.bytes(date, {.connection = e.connection});
        CHECK(whole == head + "Hello, world!");
        // Asked again with the same date: the same bytes, from the same place (not rebuilt).
        CHECK(hello.bytes(date, {.connection = e.connection}).data() == whole.data());
        CHECK(hello.bytes(date, {.head_only = true, .connection = e.connection}) == head);
        // The bytes parse back as the response they are.
        http::response_info info;
        REQUIRE(http::parse_response_head(only_head, info));
        CHECK(info.minor == 1);
        CHECK(info.status == 200);
        CHECK(info.reason == "OK");
        CHECK(info.content_length == 13u);
        CHECK_FALSE(info.chunked);
        CHECK(info.connection_close == e.close);
        CHECK(whole.substr(only_head.size()) == "Hello, world!");
    }
    CHECK(hello.status() == 200);
    CHECK(hello.body() == "Hello, world!");
}

TEST_CASE("http: a fixed response is built again for a new date, every variant", "[http]") {
    http::fixed_response page(404, "text/html", "<h1>404</h1>\n");
    const std::string first = "Sun, 06 Nov 1994 08:49:37 GMT";
    const std::string second = "Sun, 06 Nov 1994 08:49:38 GMT";
    auto expect = [](const std::string& date, const std::string& connection) {
        return "HTTP/1.1 404 Not Found\r\nServer: coronet\r\nDate: " + date +
               "\r\nContent-Type: text/html\r\nContent-Length: 13\r\n" + connection +
               "\r\n<h1>404</h1>\n";
    };
    CHECK(page.bytes(first, {}) == expect(first, ""));
    CHECK(page.bytes(first, {.connection = http::connection_header::close}) ==
          expect(first, "Connection: close\r\n"));
    // A date in a buffer of its own, as date_cache hands it out: compared, not its address.
    char text[http::date_size];
    second.copy(text, http::date_size);
    std::string_view next(text, http::date_size);
    CHECK(page.bytes(next, {}) == expect(second, ""));
    CHECK(page.bytes(next, {.connection = http::connection_header::close}) ==
          expect(second, "Connection: close\r\n"));
    std::string keep_alive = expect(second, "Connection: keep-alive\r\n");
    CHECK(
        page.bytes(next, {.head_only = true, .connection = http::connection_header::keep_alive}) ==
        keep_alive.substr(0, keep_alive.size() - page.body().size()));
    // And back: the first date is a change too.
    CHECK(page.bytes(first, {}) == expect(first, ""));
    // No Content-Type when none is given; an empty body still has its Content-Length.
    http::fixed_response empty(200, "", "");
    CHECK(empty.bytes(first, {}) ==
          "HTTP/1.1 200 OK\r\nServer: coronet\r\nDate: " + first + "\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("http: a status line gives the version, status and reason", "[http]") {
    http::response_info info;
    REQUIRE(http::parse_status_line("HTTP/1.1 404 Not Found", info));
    CHECK(info.minor == 1);
    CHECK(info.status == 404);
    CHECK(info.reason == "Not Found");
    REQUIRE(http::parse_status_line("HTTP/1.0 200", info));  // no reason, no space: tolerated
    CHECK(info.minor == 0);
    CHECK(info.status == 200);
    CHECK(info.reason.empty());
    for (const char* bad :
         {"", "HTTP/1.1", "HTTP/1.1 20", "HTTP/1.1 2000 OK", "HTTP/2 200 OK", "http/1.1 200 OK",
          "HTTP/1.1  200 OK", "HTTP/1.1 099 X", "HTTP/1.1 200 O\x01K", "ICY 200 OK"}) {
        INFO("line: '" << bad << "'");
        CHECK_FALSE(http::parse_status_line(bad, info));
    }
}

TEST_CASE("http: a response head gives the length, chunking and connection", "[http]") {
    http::response_info info;
    REQUIRE(
        http::parse_response_head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                  "content-length: 12\r\nConnection: keep-alive, close\r\n",
                                  info));
    CHECK(info.status == 200);
    CHECK(info.content_length == 12u);
    CHECK_FALSE(info.chunked);
    CHECK(info.connection_close);
    REQUIRE(http::parse_response_head(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nbody ignored", info));
    CHECK(info.chunked);
    CHECK_FALSE(info.content_length);
    CHECK_FALSE(info.connection_close);  // reset from the previous head
    // Malformed: no status line, a line without a colon, bad or conflicting lengths.
    for (const char* bad :
         {"200 OK\r\n", "HTTP/1.1 200 OK\r\nno colon here\r\n",
          "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n",
          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
          "HTTP/1.1 200 OK\r\nBad Name: x\r\n"}) {
        INFO("head: '" << bad << "'");
        CHECK_FALSE(http::parse_response_head(bad, info));
    }
    // The same length twice is one length.
    CHECK(http::parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n",
                                    info));
    CHECK(info.content_length == 3u);
}

TEST_CASE("http: chunks are framed with their size in hex, then the last-chunk", "[http]") {
    std::string out;
    http::append_chunk(out, "hello");
    http::append_chunk(out, "");  // nothing: an empty chunk would end the body
    http::append_chunk(out, std::string(300, 'x'));
    http::append_last_chunk(out, "Digest: abc\r\n");
    CHECK(out == "5\r\nhello\r\n12c\r\n" + std::string(300, 'x') + "\r\n0\r\nDigest: abc\r\n\r\n");
    std::string last;
    http::append_last_chunk(last);
    CHECK(last == "0\r\n\r\n");
    CHECK(http::valid_trailers(""));
    CHECK(http::valid_trailers("A: 1\r\nB: 2\r\n"));
    for (const char* bad : {"\r\n", "A: 1", "A: 1\n", "A: 1\r\r\n", "A\r: 1\r\n", "A: 1\r\n\r\n"}) {
        INFO("trailers: '" << bad << "'");
        CHECK_FALSE(http::valid_trailers(bad));
    }
}

TEST_CASE("http: URLs are taken apart into host, port and target", "[http]") {
    auto u = http::parse_url("http://example.test/a/b?q=1#frag");
    CHECK_FALSE(u.https);
    CHECK(u.authority == "example.test");
    CHECK(u.host == "example.test");
    CHECK(u.port == 80);
    CHECK(u.target == "/a/b?q=1");
    u = http::parse_url("HTTPS://[::1]:8443");
    CHECK(u.https);
    CHECK(u.authority == "[::1]:8443");
    CHECK(u.host == "::1");
    CHECK(u.port == 8443);
    CHECK(u.target == "/");
    u = http::parse_url("https://127.0.0.1?x");
    CHECK(u.port == 443);
    CHECK(u.target == "/?x");
    CHECK(http::parse_url("http://[::1]/").host == "::1");
    CHECK_THROWS_WITH(http::parse_url("ftp://host/"), "http:// and https:// URLs only, please");
    CHECK_THROWS_WITH(http::parse_url("http://host:0/"), "bad port '0'");
    CHECK_THROWS_WITH(http::parse_url("http://host:65536/"), "bad port '65536'");
    CHECK_THROWS_WITH(http::parse_url("http://host:/"), "bad port ''");
    CHECK_THROWS_WITH(http::parse_url("http:///path"), "no host");
    CHECK_THROWS_WITH(http::parse_url("http://:80/"), "no host");
    CHECK_THROWS_WITH(http::parse_url("http://[::1/"), "unclosed '[' in the host");
    CHECK_THROWS_WITH(http::parse_url("http://u:p@host/"), "user names in URLs are not supported");
    CHECK_THROWS_WITH(http::parse_url("http://host/a b"),
                      "spaces and control bytes are not allowed in a URL");
}

TEST_CASE("http: iequals ignores ASCII case only", "[http]") {
    CHECK(http::iequals("Content-Length", "content-LENGTH"));
    CHECK(http::iequals("", ""));
    CHECK_FALSE(http::iequals("Host", "Hosts"));
    CHECK_FALSE(http::iequals("\xc1", "\xe1"));  // Latin-1 Á and á: no folding beyond ASCII
    CHECK_FALSE(http::iequals("[", "{"));        // '[' is not an upper-case '{'
}
