#pragma once
// examples/http.hpp: the file-serving pieces examples/http_server.cpp needs, apart from any socket
// so that tests/examples/http_test.cpp can try them one by one: path resolution under the root
// (coronet's resolve_under, taken in), Content-Type by extension, error pages, escaping and the
// HTML directory listing (a producer).
// The protocol itself (request heads, response heads, dates, chunked framing) is coronet's
// proto/http.hpp, whose names this namespace takes in: http::parse_request_line is
// coronet::http::parse_request_line. Not part of coronet: examples only.
// Medusa ancestor: medusa/mime_type_table.py, default_handler.py and filesys.py's listings.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <coronet/coro/open_file_cache.hpp>
#include <coronet/proto/http.hpp>

namespace http {

using namespace coronet::http;

// Where a decoded path leads under root: {status, path}, 0 or 404 when nothing is there (a
// dangling symlink too) or 403 outside root. coronet's (coro/open_file_cache.hpp): the
// server's open_file_cache checks every path through a symlink with it.
using resolved = coronet::resolved_path;
// Resolves rel (from decode_path) under root, which must be canonical (std::filesystem::canonical).
using coronet::resolve_under;

// The Content-Type for a file name's extension; "application/octet-stream" when unknown.
std::string_view mime_type(std::string_view filename);

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
