#include <coronet/examples/http.hpp>

#include <algorithm>
#include <utility>

#include <sys/stat.h>

namespace http {

std::string_view mime_type(std::string_view filename) {
    static constexpr std::pair<std::string_view, std::string_view> types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/plain; charset=utf-8"},  // text/markdown: Firefox downloads it
        {"csv", "text/csv; charset=utf-8"},
        {"xml", "application/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"avif", "image/avif"},
        {"pdf", "application/pdf"},
        {"wasm", "application/wasm"},
        {"zip", "application/zip"},
        {"gz", "application/gzip"},
        {"tar", "application/x-tar"},
        {"mp3", "audio/mpeg"},
        {"ogg", "audio/ogg"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
    };
    auto slash = filename.rfind('/');
    if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
    auto dot = filename.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
    std::string_view ext = filename.substr(dot + 1);
    for (const auto& [e, type] : types)
        if (iequals(e, ext)) return type;
    return "application/octet-stream";
}

// --- pages -----------------------------------------------------------------------

std::string error_page(int status) {
    std::string title = std::to_string(status) + " " + std::string(reason_phrase(status));
    return "<!DOCTYPE html>\n<html><head><title>" + title + "</title></head><body><h1>" + title +
           "</h1></body></html>\n";
}

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string url_escape(std::string_view segment) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : segment) {
        bool unreserved = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                          c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            out += char(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// --- directory listings ----------------------------------------------------------

listing_producer::listing_producer(const std::filesystem::path& dir, std::string url_path)
    : dir_(dir), url_path_(std::move(url_path)) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
        names_.push_back(it->path().filename().string());
    std::sort(names_.begin(), names_.end());
}

std::string listing_producer::more() {
    if (done_) return {};
    std::string out;
    if (!started_) {
        started_ = true;
        std::string title = "Index of /" + html_escape(url_path_);
        out += "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title +
               "</title></head>\n<body><h1>" + title +
               "</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Last modified</th></tr>\n";
        if (!url_path_.empty())
            out += "<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n";
    }
    for (std::size_t end = std::min(names_.size(), next_ + batch); next_ < end; ++next_) {
        const std::string& name = names_[next_];
        struct ::stat st {};
        bool known = ::stat((dir_ / name).c_str(), &st) == 0;  // follows symlinks, as a GET would
        bool dir = known && S_ISDIR(st.st_mode);
        std::string shown = html_escape(name) + (dir ? "/" : "");
        out += "<tr><td><a href=\"" + html_escape(url_escape(name)) + (dir ? "/" : "") + "\">" +
               shown + "</a></td><td>" + (known && !dir ? std::to_string(st.st_size) : "-") +
               "</td><td>" + (known ? format_http_date(st.st_mtime) : "") + "</td></tr>\n";
    }
    if (next_ == names_.size()) {
        out += "</table>\n</body></html>\n";
        done_ = true;
    }
    return out;
}

}  // namespace http
