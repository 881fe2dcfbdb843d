#pragma once
// proto/http.hpp: HTTP/1.1 as bytes, apart from any socket: the request head parser, request-target
// decoding, the response head writer and status-line parser, fixed (in-memory) responses, HTTP
// dates, chunked framing and http[s] URLs. Nothing here does I/O or allocates per call once its
// strings have grown, so a server or client reads lines with channel::read_until("\r\n") and hands
// them here; tests and fuzzers (tests/proto/http_test.cpp, tests/fuzz/http_request_fuzz.cpp) drive
// it directly. Medusa ancestor: medusa/http_server.py (request parsing, the response head),
// http_date.py.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace coronet::http {

// Limits on what a client may send.
inline constexpr std::size_t max_line = 8 * 1024;           // request line and each header line
inline constexpr std::size_t max_headers = 100;             // header lines per request
inline constexpr std::size_t max_header_bytes = 64 * 1024;  // all header lines together
inline constexpr std::uint64_t max_body = 1024 * 1024;      // request bodies are read and dropped

// True when a and b are equal ignoring ASCII case, as header names, tokens and schemes compare.
bool iequals(std::string_view a, std::string_view b);

// --- requests ----------------------------------------------------------------------------------

// A request head. One per connection, cleared for each request: its strings keep their capacity.
struct request {
    std::string method;
    std::string target;  // as sent: "/a%20b/?q=1"
    int minor = 1;       // HTTP/1.<minor>
    bool has_host = false;
    bool connection_close = false;       // "Connection: close"
    bool connection_keep_alive = false;  // "Connection: keep-alive" (HTTP/1.0)
    bool expect_continue = false;        // "Expect: 100-continue"
    bool transfer_encoding = false;      // any Transfer-Encoding (not supported on requests)
    std::optional<std::uint64_t> content_length;
    std::string if_modified_since;
    std::size_t header_count = 0;
    std::size_t header_bytes = 0;

    // Forgets the previous request, keeping the strings' capacity.
    void clear();
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked.
    bool keep_alive() const noexcept;
};

// Parses "GET /path HTTP/1.1" into req: 0, or the status to answer (400; 505 for HTTP/2.0).
int parse_request_line(std::string_view line, request& req);

// Folds one header line ("Name: value", no CRLF) into req: 0, or the status to answer (400, 431).
int parse_header(std::string_view line, request& req);

// Checks the head as a whole once the blank line has come: 0, or 400 (no Host on HTTP/1.1,
// both Content-Length and Transfer-Encoding), 501 (a Transfer-Encoding) or 413 (body too big).
int finish_head(const request& req);

// Decodes the path of a request target ("/a/%7Eb/?q" -> "a/~b/"): segments joined by '/',
// empty and "." segments dropped, a trailing '/' kept; "" is the root. Returns 0, or 400 for
// a bad %-escape, an encoded '/', a NUL or another control byte, and 403 for a ".." segment.
int decode_path(std::string_view target, std::string& out);

// --- dates -------------------------------------------------------------------------------------

// Length of an HTTP date: "Sun, 06 Nov 1994 08:49:37 GMT".
inline constexpr std::size_t date_size = 29;

// Formats t as an IMF-fixdate (always date_size bytes).
std::string format_http_date(std::time_t t);
void format_http_date(std::time_t t, char (&out)[date_size]);

// Parses an IMF-fixdate, an RFC 850 date or an asctime() date; nullopt when malformed.
std::optional<std::time_t> parse_http_date(std::string_view text);

// The current HTTP date, formatted again only when the second changes.
class date_cache {
public:
    std::string_view now() noexcept;

private:
    std::time_t at_ = -1;
    char text_[date_size] = {};
};

// --- responses ---------------------------------------------------------------------------------

// "OK", "Not Found", ...; "Unknown" for a status not listed.
std::string_view reason_phrase(int status);

// What a response says about its connection.
enum class connection_header { none, close, keep_alive };

// The head of a response.
struct response_head {
    int status = 200;
    std::string_view content_type{};                // "" sends none
    std::optional<std::uint64_t> content_length{};  // nullopt sends none
    bool chunked = false;                           // "Transfer-Encoding: chunked"
    std::time_t last_modified = -1;                 // -1 sends none
    connection_header connection = connection_header::none;
    std::string_view extra{};  // more header lines, each ending in "\r\n"
};

// Appends the status line, the headers and the blank line to out (no allocation once out has
// grown to fit).
void append_head(std::string& out, const response_head& head, std::string_view date);

// A response that never changes but for its Date (a fixed page: "Hello, world!", an error page),
// handed out as the complete bytes to send. Each variant, GET or HEAD times the three
// Connection headers, is built the first time it is asked for and kept until the Date's second
// changes; the HEAD variant is the head of the GET one, so a variant is one string. Asking costs
// one comparison of the date: no variant is ever built per request.
class fixed_response {
public:
    // What varies with the request.
    struct variant {
        bool head_only = false;  // a HEAD request: the head (Content-Length included), no body
        connection_header connection = connection_header::none;
    };

    // A response of this status, Content-Type (none when empty), body (its Content-Length is
    // sent) and extra header lines (each ending in "\r\n").
    fixed_response(int status, std::string_view content_type, std::string_view body,
                   std::string_view extra = {});

    // The bytes to send for this variant with this Date (an IMF-fixdate, as date_cache gives):
    // valid until the next call with another date. Inline: this is a server's hot path.
    std::string_view bytes(std::string_view date, variant v) {
        const built& b = variants_[static_cast<std::size_t>(v.connection)];
        if (!same_date(date) || b.bytes.empty()) [[unlikely]]
            build(date, v.connection);
        return {b.bytes.data(), v.head_only ? b.head_size : b.bytes.size()};
    }

    int status() const noexcept { return status_; }
    std::string_view body() const noexcept { return body_; }

private:
    // One fixed-size comparison, which the compiler does without a call.
    bool same_date(std::string_view date) const noexcept {
        return date.size() == date_size && std::memcmp(date.data(), date_, date_size) == 0;
    }
    // Builds the variant for this Connection header, and forgets the others on a new date.
    void build(std::string_view date, connection_header connection);

    int status_;
    std::string content_type_, body_, extra_;
    char date_[date_size] = {};  // the Date of the variants built
    struct built {
        std::string bytes{};        // head and body; empty: not built for date_
        std::size_t head_size = 0;  // the head's length, up to and including the blank line
    };
    built variants_[3] = {};  // by connection_header
};

// What a client needs of a response head.
struct response_info {
    int minor = 1;   // HTTP/1.<minor>
    int status = 0;  // 100-999
    std::string_view reason{};
    std::optional<std::uint64_t> content_length{};
    bool chunked = false;           // "Transfer-Encoding: chunked"
    bool connection_close = false;  // "Connection: close"
};

// Parses a status line ("HTTP/1.1 200 OK", no CRLF) into info: false when it is not one.
bool parse_status_line(std::string_view line, response_info& info);

// Parses a whole response head (the status line and header lines, each ending in "\r\n", the
// blank line optional) into info: false when malformed (no status line, a line without a colon,
// a bad or conflicting Content-Length).
bool parse_response_head(std::string_view head, response_info& info);

// --- chunked transfer coding (RFC 9112 7.1) ----------------------------------------------------

// Appends one chunk: "<hex size>\r\n<data>\r\n". Empty data appends nothing (an empty chunk
// would be the last-chunk).
void append_chunk(std::string& out, std::string_view data);

// True when trailers is a valid trailer section for append_last_chunk: zero or more non-empty
// lines, each ending in "\r\n", with no other CR or LF.
bool valid_trailers(std::string_view trailers);

// Appends the last-chunk, the trailers (valid_trailers) and the final "\r\n".
void append_last_chunk(std::string& out, std::string_view trailers = {});

// --- URLs --------------------------------------------------------------------------------------

// An http[s]://host[:port][/path] URL, taken apart.
struct url {
    bool https = false;
    std::string authority{};   // host[:port], for the Host header
    std::string host{};        // without the [] of an IPv6 literal
    unsigned port = 80;        // 443 for https unless given
    std::string target = "/";  // path and query, "/" when none was given
};

// Takes an http:// or https:// URL apart; throws std::invalid_argument saying what is wrong
// (another scheme, no host, a bad port, spaces or control bytes).
url parse_url(std::string_view text);

}  // namespace coronet::http
