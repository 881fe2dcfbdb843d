#pragma once
// examples/http.hpp: the HTTP/1.1 pieces examples/http_server.cpp needs, apart from any socket
// so that tests/examples/http_test.cpp can try them one by one: the request head parser,
// request-target decoding and path sanitising, Content-Type by extension, HTTP dates, response
// heads and the HTML directory listing (a producer). Not part of coronet: examples only.
// Medusa ancestor: medusa/http_server.py (request parsing, the response head), http_date.py,
// mime_type_table.py, default_handler.py and filesys.py's listings.

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace http {

// Limits on what a client may send.
inline constexpr std::size_t max_line = 8 * 1024;           // request line and each header line
inline constexpr std::size_t max_headers = 100;             // header lines per request
inline constexpr std::size_t max_header_bytes = 64 * 1024;  // all header lines together
inline constexpr std::uint64_t max_body = 1024 * 1024;      // request bodies are read and dropped

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

// Where a decoded path leads under root.
struct resolved {
    int status = 0;  // 0; 404 when nothing is there (a dangling symlink too); 403 outside root
    std::filesystem::path path;  // root/rel with every symlink resolved
};

// Resolves rel (from decode_path) under root, which must be canonical (std::filesystem::canonical).
resolved resolve_under(const std::filesystem::path& root, std::string_view rel);

// The Content-Type for a file name's extension; "application/octet-stream" when unknown.
std::string_view mime_type(std::string_view filename);

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

// "OK", "Not Found", ...; "Unknown" for a status not used here.
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

// A small HTML page for an error status: "<h1>404 Not Found</h1>".
std::string error_page(int status);

// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(std::string_view text);

// Percent-encodes everything but unreserved bytes, for one path segment of a URL.
std::string url_escape(std::string_view segment);

// An HTML listing of a directory, made a few entries per more(): its length is not known
// up front, so send it through chunked_producer. The names are read (and sorted) at
// construction; each entry is stat'ed when its row is made.
class listing_producer {
public:
    // Entries per more().
    static constexpr std::size_t batch = 64;
    // dir: the directory; url_path: the decoded path it was asked for ("" or "a/b/").
    listing_producer(const std::filesystem::path& dir, std::string url_path);
    // The page's start, then batches of rows, then its end, then empty.
    std::string more();

private:
    std::filesystem::path dir_;
    std::string url_path_;
    std::vector<std::string> names_;
    std::size_t next_ = 0;
    bool started_ = false, done_ = false;
};

}  // namespace http
