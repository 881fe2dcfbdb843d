#include <coronet/proto/http.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace coronet::http {
namespace {

// RFC 9110 5.6.2: tchar.
// One table lookup per byte: header names are checked byte by byte on every request.
constexpr std::array<bool, 256> token_chars = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c)
        t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c)
        t[c] = t[c - 'a' + 'A'] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~"))
        t[static_cast<unsigned char>(c)] = true;
    return t;
}();

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!token_chars[static_cast<unsigned char>(c)]) return false;
    return true;
}

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c + ('a' - 'A')) : c; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool is_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// Calls f(token) for each element of a comma-separated header list ("close, Upgrade").
template <class F>
void for_each_token(std::string_view list, F f) {
    while (!list.empty()) {
        auto comma = list.find(',');
        f(trim(list.substr(0, comma)));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

// Folds a Content-Length value into length: false when it is not a decimal number, or
// disagrees with an earlier one (two lengths are how requests get smuggled).
bool fold_content_length(std::string_view value, std::optional<std::uint64_t>& length) {
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (!is_digits(value) || ec != std::errc() || end != value.data() + value.size()) return false;
    if (length && *length != n) return false;
    length = n;
    return true;
}

// "HTTP/1.1" -> minor 1; 505 for another major version; 400 when it is no version at all.
int parse_version(std::string_view v, int& minor) {
    if (!v.starts_with("HTTP/")) return 400;
    v.remove_prefix(5);
    auto dot = v.find('.');
    std::string_view major = v.substr(0, dot);
    std::string_view rest = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
    if (!is_digits(major) || (dot != std::string_view::npos && !is_digits(rest))) return 400;
    if (major != "1") return 505;  // HTTP/2.0, HTTP/0.9, HTTP/3 ...
    if (rest.size() != 1) return 400;
    minor = rest == "0" ? 0 : 1;  // HTTP/1.2 and later minors are answered as 1.1
    return 0;
}

constexpr std::array<std::string_view, 7> short_days = {"Sun", "Mon", "Tue", "Wed",
                                                        "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> long_days = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// A cursor over a date string: each step consumes what it expects or fails.
struct date_reader {
    std::string_view s;
    bool ok = true;

    void literal(std::string_view lit) {
        if (ok && s.starts_with(lit))
            s.remove_prefix(lit.size());
        else
            ok = false;
    }
    int number(std::size_t digits) {
        if (!ok || s.size() < digits || !is_digits(s.substr(0, digits))) return ok = false, 0;
        int n = 0;
        for (std::size_t i = 0; i < digits; ++i)
            n = n * 10 + (s[i] - '0');
        s.remove_prefix(digits);
        return n;
    }
    template <std::size_t N>
    int name(const std::array<std::string_view, N>& names) {
        for (std::size_t i = 0; ok && i < N; ++i)
            if (s.starts_with(names[i])) {
                s.remove_prefix(names[i].size());
                return int(i);
            }
        ok = false;
        return 0;
    }
    void clock(std::tm& tm) {
        tm.tm_hour = number(2);
        literal(":");
        tm.tm_min = number(2);
        literal(":");
        tm.tm_sec = number(2);
    }
};

void append_number(std::string& out, std::uint64_t n) {
    char buf[24];
    auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
    out.append(buf, end);
}

void append_hex(std::string& out, std::size_t n) {
    char buf[2 * sizeof(std::size_t)];
    auto end = std::to_chars(buf, buf + sizeof buf, n, 16).ptr;
    out.append(buf, end);
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

// --- request head ----------------------------------------------------------------

void request::clear() {
    method.clear();
    target.clear();
    minor = 1;
    has_host = connection_close = connection_keep_alive = false;
    expect_continue = transfer_encoding = false;
    content_length.reset();
    if_modified_since.clear();
    header_count = header_bytes = 0;
}

bool request::keep_alive() const noexcept {
    if (connection_close) return false;
    return minor >= 1 || connection_keep_alive;
}

int parse_request_line(std::string_view line, request& req) {
    // method SP request-target SP HTTP-version, one space each (RFC 9112 3).
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return 400;
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (!is_token(method) || target.empty()) return 400;
    if (std::any_of(target.begin(), target.end(),
                    [](char c) { return is_ctl(c) || c == ' ' || (c & 0x80); }))
        return 400;
    if (int status = parse_version(line.substr(sp2 + 1), req.minor)) return status;

    // absolute-form (a proxy's "GET http://host/path"): keep the path only.
    for (std::string_view scheme : {"http://", "https://"}) {
        if (target.size() > scheme.size() && iequals(target.substr(0, scheme.size()), scheme)) {
            auto slash = target.find('/', scheme.size());
            target = slash == std::string_view::npos ? "/" : target.substr(slash);
            break;
        }
    }
    if (target.front() != '/' && target != "*") return 400;
    req.method = method;
    req.target = target;
    return 0;
}

int parse_header(std::string_view line, request& req) {
    if (++req.header_count > max_headers) return 431;
    if ((req.header_bytes += line.size()) > max_header_bytes) return 431;
    // A continuation line (obs-fold) or a space before the colon is refused (RFC 9112 5).
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return 400;
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (!is_token(name)) return 400;
    if (std::any_of(value.begin(), value.end(), [](char c) { return is_ctl(c) && c != '\t'; }))
        return 400;

    if (iequals(name, "Host")) {
        if (req.has_host) return 400;  // two Hosts: which one?
        req.has_host = true;
    } else if (iequals(name, "Connection")) {
        for_each_token(value, [&](std::string_view token) {
            if (iequals(token, "close")) req.connection_close = true;
            if (iequals(token, "keep-alive")) req.connection_keep_alive = true;
        });
    } else if (iequals(name, "Content-Length")) {
        if (!fold_content_length(value, req.content_length)) return 400;
    } else if (iequals(name, "Transfer-Encoding")) {
        req.transfer_encoding = true;
    } else if (iequals(name, "Expect")) {
        if (iequals(value, "100-continue")) req.expect_continue = true;
    } else if (iequals(name, "If-Modified-Since")) {
        req.if_modified_since = value;
    }
    return 0;
}

int finish_head(const request& req) {
    if (req.minor >= 1 && !req.has_host) return 400;
    if (req.transfer_encoding) return req.content_length ? 400 : 501;
    if (req.content_length.value_or(0) > max_body) return 413;
    return 0;
}

// --- paths -----------------------------------------------------------------------

int decode_path(std::string_view target, std::string& out) {
    out.clear();
    target = target.substr(0, target.find_first_of("?#"));
    if (target.empty() || target.front() != '/') return 400;
    bool trailing_slash = false;
    while (!target.empty()) {
        target.remove_prefix(1);  // the '/'
        std::string_view raw = target.substr(0, target.find('/'));
        target.remove_prefix(raw.size());
        const std::size_t start = out.size();  // the segment is decoded in place, at out's end
        for (std::size_t i = 0; i < raw.size(); ++i) {
            char c = raw[i];
            if (c == '%') {
                int hi = i + 2 < raw.size() ? hex_value(raw[i + 1]) : -1;
                int lo = hi >= 0 ? hex_value(raw[i + 2]) : -1;
                if (lo < 0) return 400;
                c = char(hi * 16 + lo);
                i += 2;
                if (c == '/') return 400;  // "%2F" would smuggle a separator past the checks
            }
            if (is_ctl(static_cast<unsigned char>(c))) return 400;  // NUL and friends
            out += c;
        }
        std::string_view segment(out.data() + start, out.size() - start);
        trailing_slash = segment.empty() || segment == ".";
        if (trailing_slash) {
            out.resize(start);
            continue;
        }
        if (segment == "..") return 403;  // also "%2e%2e": decoded above
        out += '/';
    }
    if (!out.empty() && !trailing_slash) out.pop_back();
    return 0;
}

// --- dates -----------------------------------------------------------------------

void format_http_date(std::time_t t, char (&out)[date_size]) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    auto two = [](char* p, int n) {
        p[0] = char('0' + n / 10 % 10);
        p[1] = char('0' + n % 10);
    };
    std::string_view day = short_days[std::size_t(tm.tm_wday)],
                     month = months[std::size_t(tm.tm_mon)];
    int year = tm.tm_year + 1900;
    std::memcpy(out, "Www, DD Mmm YYYY HH:MM:SS GMT", date_size);
    std::memcpy(out, day.data(), 3);
    two(out + 5, tm.tm_mday);
    std::memcpy(out + 8, month.data(), 3);
    two(out + 12, year / 100);
    two(out + 14, year % 100);
    two(out + 17, tm.tm_hour);
    two(out + 20, tm.tm_min);
    two(out + 23, tm.tm_sec);
}

std::string format_http_date(std::time_t t) {
    char buf[date_size];
    format_http_date(t, buf);
    return std::string(buf, date_size);
}

std::optional<std::time_t> parse_http_date(std::string_view text) {
    std::tm tm{};
    date_reader d{text};
    if (text.size() > 3 && text[3] == ',') {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        d.name(short_days);
        d.literal(", ");
        tm.tm_mday = d.number(2);
        d.literal(" ");
        tm.tm_mon = d.name(months);
        d.literal(" ");
        tm.tm_year = d.number(4) - 1900;
        d.literal(" ");
        d.clock(tm);
        d.literal(" GMT");
    } else if (text.size() > 3 && text[3] == ' ') {  // asctime: Sun Nov  6 08:49:37 1994
        d.name(short_days);
        d.literal(" ");
        tm.tm_mon = d.name(months);
        d.literal(" ");
        if (d.s.starts_with(' ')) {
            d.literal(" ");
            tm.tm_mday = d.number(1);
        } else {
            tm.tm_mday = d.number(2);
        }
        d.literal(" ");
        d.clock(tm);
        d.literal(" ");
        tm.tm_year = d.number(4) - 1900;
    } else {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        d.name(long_days);
        d.literal(", ");
        tm.tm_mday = d.number(2);
        d.literal("-");
        tm.tm_mon = d.name(months);
        d.literal("-");
        int yy = d.number(2);
        tm.tm_year = yy < 70 ? yy + 100 : yy;  // RFC 9110 5.6.7: the nearest century
        d.literal(" ");
        d.clock(tm);
        d.literal(" GMT");
    }
    if (!d.ok || !d.s.empty()) return std::nullopt;
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return std::nullopt;
    return ::timegm(&tm);
}

std::string_view date_cache::now() noexcept {
    std::time_t t = std::time(nullptr);
    if (t != at_) {
        format_http_date(t, text_);
        at_ = t;
    }
    return {text_, date_size};
}

// --- responses -------------------------------------------------------------------

std::string_view reason_phrase(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void append_head(std::string& out, const response_head& head, std::string_view date) {
    out += "HTTP/1.1 ";
    append_number(out, std::uint64_t(head.status));
    out += ' ';
    out += reason_phrase(head.status);
    out += "\r\nServer: coronet\r\nDate: ";
    out += date;
    out += "\r\n";
    if (!head.content_type.empty()) {
        out += "Content-Type: ";
        out += head.content_type;
        out += "\r\n";
    }
    if (head.content_length) {
        out += "Content-Length: ";
        append_number(out, *head.content_length);
        out += "\r\n";
    }
    if (head.chunked) out += "Transfer-Encoding: chunked\r\n";
    if (head.last_modified >= 0) {
        char buf[date_size];
        format_http_date(head.last_modified, buf);
        out += "Last-Modified: ";
        out.append(buf, date_size);
        out += "\r\n";
    }
    if (head.connection == connection_header::close) out += "Connection: close\r\n";
    if (head.connection == connection_header::keep_alive) out += "Connection: keep-alive\r\n";
    out += head.extra;
    out += "\r\n";
}

fixed_response::fixed_response(int status, std::string_view content_type, std::string_view body,
                               std::string_view extra)
    : status_(status), content_type_(content_type), body_(body), extra_(extra) {}

void fixed_response::build(std::string_view date, connection_header connection) {
    if (!same_date(date)) {  // a new second: every variant is stale
        for (built& b : variants_)
            b.bytes.clear();
        date.copy(date_, date_size);
    }
    built& b = variants_[static_cast<std::size_t>(connection)];
    append_head(b.bytes,
                {.status = status_,
                 .content_type = content_type_,
                 .content_length = body_.size(),
                 .connection = connection,
                 .extra = extra_},
                date);
    b.head_size = b.bytes.size();
    b.bytes += body_;
}

bool parse_status_line(std::string_view line, response_info& info) {
    // HTTP-version SP 3DIGIT SP [reason-phrase] (RFC 9112 4); a missing space before an empty
    // reason is tolerated, as clients do.
    if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ') return false;
    if (line[7] < '0' || line[7] > '9') return false;
    std::string_view code = line.substr(9, 3);
    if (!is_digits(code) || code[0] == '0') return false;
    if (line.size() > 12 && line[12] != ' ') return false;
    info.minor = line[7] - '0';
    info.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    info.reason = line.size() > 13 ? line.substr(13) : std::string_view();
    return !std::any_of(info.reason.begin(), info.reason.end(),
                        [](char c) { return is_ctl(static_cast<unsigned char>(c)) && c != '\t'; });
}

bool parse_response_head(std::string_view head, response_info& info) {
    info = response_info{};
    auto next_line = [&head]() -> std::optional<std::string_view> {
        auto end = head.find("\r\n");
        if (end == std::string_view::npos) {
            if (head.empty()) return std::nullopt;
            std::string_view last = head;  // a final line without its CRLF
            head = {};
            return last;
        }
        std::string_view line = head.substr(0, end);
        head.remove_prefix(end + 2);
        return line;
    };
    auto status_line = next_line();
    if (!status_line || !parse_status_line(*status_line, info)) return false;
    while (auto line = next_line()) {
        if (line->empty()) break;  // the blank line ends the head
        auto colon = line->find(':');
        if (colon == std::string_view::npos || !is_token(line->substr(0, colon))) return false;
        std::string_view name = line->substr(0, colon);
        std::string_view value = trim(line->substr(colon + 1));
        if (iequals(name, "Content-Length")) {
            if (!fold_content_length(value, info.content_length)) return false;
        } else if (iequals(name, "Transfer-Encoding")) {
            for_each_token(value, [&](std::string_view token) {
                info.chunked = iequals(token, "chunked");  // chunked must come last
            });
        } else if (iequals(name, "Connection")) {
            for_each_token(value, [&](std::string_view token) {
                if (iequals(token, "close")) info.connection_close = true;
            });
        }
    }
    return true;
}

// --- chunked transfer coding -------------------------------------------------------

void append_chunk(std::string& out, std::string_view data) {
    if (data.empty()) return;
    append_hex(out, data.size());
    out += "\r\n";
    out += data;
    out += "\r\n";
}

bool valid_trailers(std::string_view trailers) {
    while (!trailers.empty()) {
        std::size_t end = trailers.find_first_of("\r\n");
        if (end == 0 || end == std::string_view::npos || trailers.substr(end, 2) != "\r\n")
            return false;
        trailers.remove_prefix(end + 2);
    }
    return true;
}

void append_last_chunk(std::string& out, std::string_view trailers) {
    out += "0\r\n";
    out += trailers;
    out += "\r\n";
}

// --- URLs --------------------------------------------------------------------------

url parse_url(std::string_view text) {
    url u;
    if (text.size() >= 8 && iequals(text.substr(0, 8), "https://")) {
        u.https = true;
        u.port = 443;
        text.remove_prefix(8);
    } else if (text.size() >= 7 && iequals(text.substr(0, 7), "http://")) {
        text.remove_prefix(7);
    } else {
        throw std::invalid_argument("http:// and https:// URLs only, please");
    }
    if (std::any_of(text.begin(), text.end(),
                    [](char c) { return is_ctl(static_cast<unsigned char>(c)) || c == ' '; }))
        throw std::invalid_argument("spaces and control bytes are not allowed in a URL");
    text = text.substr(0, text.find('#'));  // a fragment is never sent
    auto path_at = text.find_first_of("/?");
    std::string_view authority = text.substr(0, path_at);
    if (path_at != std::string_view::npos) {
        u.target = text.substr(path_at);
        if (u.target.front() == '?') u.target.insert(0, "/");
    }
    if (authority.find('@') != std::string_view::npos)
        throw std::invalid_argument("user names in URLs are not supported");
    u.authority = authority;
    std::string_view host = authority;
    if (auto colon = host.rfind(':');
        colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
        std::string_view port = host.substr(colon + 1);
        unsigned n = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
        if (port.empty() || ec != std::errc() || end != port.data() + port.size() || n == 0 ||
            n > 65535)
            throw std::invalid_argument("bad port '" + std::string(port) + "'");
        u.port = n;
        host = host.substr(0, colon);
    }
    if (host.starts_with('[')) {
        if (!host.ends_with(']')) throw std::invalid_argument("unclosed '[' in the host");
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty()) throw std::invalid_argument("no host");
    u.host = host;
    return u;
}

}  // namespace coronet::http
