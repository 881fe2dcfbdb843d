#include <coronet/proto/resp.hpp>

#include <charconv>

namespace coronet::resp {

// --- requests and replies ------------------------------------------------------------------------

std::optional<long long> to_integer(std::string_view text) {
    std::size_t first_digit = text.starts_with('-') ? 1 : 0;
    if (text.size() <= first_digit || text.size() > 20) return std::nullopt;
    if (text[first_digit] == '0' && text.size() > 1) return std::nullopt;  // "007", "-0"
    long long n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return n;
}

std::size_t multibulk_count(std::string_view line, const limits& lim) {
    auto n = to_integer(line.substr(1));
    if (!n || *n > static_cast<long long>(lim.max_args))
        throw protocol_error("invalid multibulk length");
    return *n > 0 ? static_cast<std::size_t>(*n) : 0;
}

std::size_t bulk_length(std::string_view line, const limits& lim) {
    if (!line.starts_with('$'))
        throw protocol_error("expected '$', got '" + std::string(line.substr(0, 1)) + "'");
    auto n = to_integer(line.substr(1));
    if (!n || *n < 0 || static_cast<unsigned long long>(*n) > lim.max_bulk)
        throw protocol_error("invalid bulk length");
    return static_cast<std::size_t>(*n);
}

std::string_view bulk_body(std::string_view bulk) {
    if (!bulk.ends_with("\r\n")) throw protocol_error("bulk string not followed by CRLF");
    return bulk.substr(0, bulk.size() - 2);
}

std::size_t split_inline(std::string_view line, std::vector<std::string>& args) {
    std::size_t argc = 0;
    for (;;) {
        auto start = line.find_first_not_of(" \t");
        if (start == line.npos) return argc;
        line.remove_prefix(start);
        std::string_view word = line.substr(0, line.find_first_of(" \t"));
        if (argc < args.size())
            args[argc].assign(word);  // reuse the string's capacity
        else
            args.emplace_back(word);
        ++argc;
        line.remove_prefix(word.size());
    }
}

void append_decimal(std::string& out, long long n) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, end);
}

void reply_simple(std::string& out, std::string_view text) { (out += '+').append(text) += "\r\n"; }

void reply_error(std::string& out, std::string_view text) {
    std::size_t at = (out += '-').size();
    out.append(text);
    for (std::size_t i = at; i < out.size(); ++i)  // user text must not break the framing
        if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
    out += "\r\n";
}

void reply_integer(std::string& out, long long n) {
    out += ':';
    append_decimal(out, n);
    out += "\r\n";
}

void reply_bulk(std::string& out, std::string_view data) {
    out += '$';
    append_decimal(out, static_cast<long long>(data.size()));
    ((out += "\r\n").append(data)) += "\r\n";
}

void reply_null(std::string& out) { out += "$-1\r\n"; }

void reply_array(std::string& out, std::size_t n) {
    out += '*';
    append_decimal(out, static_cast<long long>(n));
    out += "\r\n";
}

}  // namespace coronet::resp
