// tests/fuzz/http_request_fuzz.cpp: libFuzzer target for proto/http.hpp's parsers (and
// examples/http.hpp's path resolution under a root).
//
// The input is a request head, read line by line as examples/http_server.cpp reads it
// (CRLF-terminated lines of at most http::max_line bytes, empty lines before the request line
// skipped): parse_request_line, parse_header for each line up to the blank one, finish_head,
// then, as the server does for a GET, decode_path on the target and resolve_under on the
// result, in a small tree made at start-up (a file, a directory, symlinks that stay inside,
// point outside, at a sibling whose name starts with the root's, and nowhere). The whole input
// also goes to decode_path, parse_http_date, parse_response_head and parse_url as is. What must
// hold:
//   - an accepted request line has a token method and a target starting with '/' (or "*"),
//     without spaces or control bytes; accepted headers stay within the header limits; an
//     accepted head has a Host (HTTP/1.1), no Transfer-Encoding and a body within max_body;
//   - a path decode_path accepts is relative, has no NUL or other control byte and no empty,
//     "." or ".." segment (only a trailing '/' is kept), and percent-encoding its segments again
//     decodes to the same path;
//   - a path resolve_under accepts is the root or lies inside it, component-wise;
//   - a date parse_http_date accepts formats back to a string that parses to the same time;
//   - a response head parse_response_head accepts has a status of 100-999 (and a length only if
//     every Content-Length agreed); a URL parse_url accepts has a host, a port of 1-65535 and a
//     target starting with '/', with no space or control byte anywhere.
// Any violation aborts. Run it with tools/fuzz.sh.
#include <coronet/examples/http.hpp>
#include <coronet/proto/http.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace {

namespace fs = std::filesystem;

fs::path root;     // canonical, made by LLVMFuzzerInitialize
fs::path sibling;  // root's name + "-private": outside root, though its name starts the same

[[noreturn]] void fail(const char* what, std::string_view input) {
    std::fprintf(stderr, "http_request_fuzz: %s: \"%.*s\"\n", what, int(input.size()),
                 input.data());
    std::abort();
}

void check(bool ok, const char* what, std::string_view input) {
    if (!ok) fail(what, input);
}

void remove_tree() {
    std::error_code ec;
    fs::remove_all(root, ec);
    fs::remove_all(sibling, ec);
}

// root/index.html, root/a/b.txt, root/a/up -> .., root/a/out -> /, root/a/next -> the sibling,
// root/dangling -> nowhere, and the sibling root-private/secret.txt.
void make_tree() {
    std::string dir = (fs::temp_directory_path() / "coronet-http-fuzz.XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) {
        std::perror("http_request_fuzz: mkdtemp");
        std::exit(1);
    }
    root = fs::canonical(dir);
    sibling = root.string() + "-private";
    fs::create_directories(root / "a");
    fs::create_directories(sibling);
    for (const fs::path& file : {root / "index.html", root / "a" / "b.txt", sibling / "secret.txt"})
        std::fclose(std::fopen(file.c_str(), "w"));
    fs::create_directory_symlink("..", root / "a" / "up");
    fs::create_directory_symlink("/", root / "a" / "out");
    fs::create_directory_symlink(sibling, root / "a" / "next");
    fs::create_symlink("nowhere", root / "dangling");
    std::atexit(remove_tree);
}

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// The checks on a path decode_path accepted (see the header comment).
void check_decoded(const std::string& path, std::string_view input) {
    check(path.empty() || path.front() != '/', "decoded path is absolute", input);
    for (unsigned char c : path)
        check(!is_ctl(c), "decoded path has a control byte", input);
    std::string again = "/";
    std::string_view rest = path;
    while (!rest.empty()) {
        std::string_view segment = rest.substr(0, rest.find('/'));
        rest.remove_prefix(segment.size());
        bool last = rest.empty();
        if (!rest.empty()) rest.remove_prefix(1);  // the '/'
        check(!segment.empty() || last, "decoded path has an empty segment", input);
        check(segment != "." && segment != "..", "decoded path has a dot segment", input);
        if (segment.empty()) break;
        again += http::url_escape(segment);
        if (!last) again += '/';
    }
    std::string round;
    check(http::decode_path(again, round) == 0 && round == path,
          "re-encoded path decodes differently", input);
}

// resolve_under on an accepted path: inside root or refused.
void check_resolved(const std::string& path, std::string_view input) {
    http::resolved r = http::resolve_under(root, path);
    if (r.status != 0) {
        check(r.status == 403 || r.status == 404, "resolve_under: unexpected status", input);
        return;
    }
    const std::string& p = r.path.native();
    const std::string& base = root.native();
    bool inside = p == base || (p.starts_with(base) && p[base.size()] == '/');
    check(inside, "resolve_under accepted a path outside the root", input);
    check(p.find('\0') == std::string::npos, "resolved path has a NUL", input);
}

void check_date(std::string_view text, std::string_view input) {
    std::optional<std::time_t> t = http::parse_http_date(text);
    if (!t) return;
    // Years 0-9999 have four digits, all format_http_date writes.
    constexpr std::time_t first = -62167219200, last = 253402300799;
    if (*t < first || *t > last) return;
    std::string formatted = http::format_http_date(*t);
    std::optional<std::time_t> again = http::parse_http_date(formatted);
    check(again && *again == *t, "a formatted date parses to another time", input);
}

// The head, line by line, as http_server's read_request; returns its status (0: accepted).
int parse_head(std::string_view input, http::request& req) {
    std::string_view rest = input;
    auto next_line = [&](std::string_view& line) {
        std::size_t end = rest.find("\r\n");
        if (end == std::string_view::npos) return false;  // end of stream mid-line
        line = rest.substr(0, end);
        rest.remove_prefix(end + 2);
        return true;
    };
    std::string_view line;
    do {
        if (!next_line(line)) return -1;
        if (line.size() > http::max_line) return 414;
    } while (line.empty());
    if (int status = http::parse_request_line(line, req)) return status;
    check(!req.method.empty(), "accepted an empty method", input);
    check(req.target == "*" || req.target.starts_with('/'), "accepted a bad target", input);
    for (unsigned char c : req.target)
        check(!is_ctl(c) && c != ' ' && c < 0x80, "accepted a target byte", input);
    check(req.minor == 0 || req.minor == 1, "accepted a minor version", input);
    for (;;) {
        if (!next_line(line)) return -1;
        if (line.size() > http::max_line) return 431;
        if (line.empty()) break;
        if (int status = http::parse_header(line, req)) return status;
        check(req.header_count <= http::max_headers, "accepted too many headers", input);
        check(req.header_bytes <= http::max_header_bytes, "accepted too many header bytes", input);
    }
    int status = http::finish_head(req);
    if (status == 0) {
        check(req.minor == 0 || req.has_host, "accepted HTTP/1.1 without Host", input);
        check(!req.transfer_encoding, "accepted a Transfer-Encoding", input);
        check(req.content_length.value_or(0) <= http::max_body, "accepted a big body", input);
    }
    if (req.connection_close) check(!req.keep_alive(), "keeps a closed connection", input);
    return status;
}

void check_response_and_url(std::string_view input) {
    http::response_info info;
    if (http::parse_response_head(input, info))
        check(info.status >= 100 && info.status <= 999, "accepted a status out of range", input);
    try {
        http::url u = http::parse_url(input);
        check(!u.host.empty() && u.port >= 1 && u.port <= 65535 && u.target.starts_with('/'),
              "accepted a URL without host, port or target", input);
        for (const std::string* part : {&u.host, &u.authority, &u.target})
            for (char c : *part)
                check(static_cast<unsigned char>(c) > 0x20 && c != 0x7f,
                      "accepted a URL with a space or control byte", input);
    } catch (const std::invalid_argument&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    make_tree();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string path;

    // The whole input as a request target, and as a date.
    if (http::decode_path(input, path) == 0) {
        check_decoded(path, input);
        check_resolved(path, input);
    }
    check_date(input, input);
    check_response_and_url(input);

    // The whole input as a request head.
    http::request req;
    if (parse_head(input, req) != 0) return 0;
    check_date(req.if_modified_since, input);
    if (req.target == "*") return 0;
    if (http::decode_path(req.target, path) != 0) return 0;
    check_decoded(path, input);
    check_resolved(path, input);
    (void)http::mime_type(path);
    return 0;
}
