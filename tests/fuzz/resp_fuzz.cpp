// tests/fuzz/resp_fuzz.cpp: libFuzzer target for examples/resp.hpp, the kv_server's RESP side.
//
// The input (after one configuration byte) is what a client sends. It is read request by
// request as examples/kv_server.cpp's serve_requests reads a channel: a line up to "\n"; "*N"
// announces N bulk strings, each a "$L" line up to "\r\n" and L bytes plus "\r\n", checked with
// multibulk_count, bulk_length and bulk_body; any other line is an inline command
// (split_inline). Each request runs on one store (store::execute) until QUIT, a protocol error or
// the end of the input. What must hold:
//   - nothing crashes, and no count or length beyond the limits is ever returned: the reader
//     allocates only for bytes that are really there, whatever a request announces;
//   - to_integer accepts only canonical decimal ("-12", not "+12", "012", "-0" or " 1");
//   - every reply, the protocol error's included, is exactly one well-formed RESP2 value.
// Any violation aborts. Run it with tools/fuzz.sh.
//
// Configuration byte: bits 0-2 pick limits::max_bulk, bits 3-5 limits::max_args (0: the
// defaults, 512 MiB and 1 Mi, as kv_server runs), bit 6 a store shared by many threads.
#include <coronet/examples/resp.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_line = 64 * 1024;  // kv_server's channel: max_line's default

constexpr std::size_t bulk_limits[] = {512 * 1024 * 1024, 0, 1, 3, 16, 100, 1000, 64 * 1024};
constexpr std::size_t arg_limits[] = {1024 * 1024, 0, 1, 2, 3, 5, 100, 10000};

[[noreturn]] void fail(const char* what, std::string_view detail) {
    std::fprintf(stderr, "resp_fuzz: %s: \"%.*s\"\n", what, int(detail.size()), detail.data());
    std::abort();
}

void check(bool ok, const char* what, std::string_view detail) {
    if (!ok) fail(what, detail);
}

// The channel's reads over an in-memory stream: nullopt at its end.
struct reader {
    std::string_view rest;
    bool line_too_long = false;

    std::optional<std::string_view> read_until(std::string_view term) {
        std::size_t at = rest.find(term);
        if (at == std::string_view::npos ? rest.size() > max_line + term.size() - 1
                                         : at > max_line) {
            line_too_long = true;
            return std::nullopt;
        }
        if (at == std::string_view::npos) return std::nullopt;
        std::string_view line = rest.substr(0, at);
        rest.remove_prefix(at + term.size());
        return line;
    }
    std::optional<std::string_view> read_exactly(std::size_t n) {
        if (rest.size() < n) return std::nullopt;
        std::string_view bytes = rest.substr(0, n);
        rest.remove_prefix(n);
        return bytes;
    }
};

// The canonical decimal text of a long long, for the to_integer check.
void check_integer(std::string_view text) {
    std::optional<long long> n = kv::to_integer(text);
    if (n) check(std::to_string(*n) == text, "to_integer accepted a non-canonical number", text);
}

// Skips one RESP2 value at the start of s; false when s does not start with a whole one.
bool skip_value(std::string_view& s, int depth = 0) {
    if (s.empty() || depth > 8) return false;
    std::size_t end = s.find("\r\n");
    if (end == std::string_view::npos) return false;
    char type = s[0];
    std::string_view body = s.substr(1, end - 1);
    s.remove_prefix(end + 2);
    if (body.find('\n') != std::string_view::npos || body.find('\r') != std::string_view::npos)
        return false;
    switch (type) {
    case '+':
    case '-': return true;
    case ':': return kv::to_integer(body).has_value();
    case '$': {
        auto n = kv::to_integer(body);
        if (!n || *n < -1) return false;
        if (*n == -1) return true;
        if (s.size() < std::size_t(*n) + 2 || s.substr(std::size_t(*n), 2) != "\r\n") return false;
        s.remove_prefix(std::size_t(*n) + 2);
        return true;
    }
    case '*': {
        auto n = kv::to_integer(body);
        if (!n || *n < 0) return false;
        for (long long i = 0; i < *n; ++i)
            if (!skip_value(s, depth + 1)) return false;
        return true;
    }
    default: return false;
    }
}

void check_reply(std::string_view reply) {
    std::string_view s = reply;
    check(skip_value(s) && s.empty(), "reply is not one RESP2 value", reply);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::uint8_t config = data[0];
    kv::limits lim{.max_bulk = bulk_limits[config & 7], .max_args = arg_limits[(config >> 3) & 7]};
    kv::store db(config & 64 ? kv::sharing::many_threads : kv::sharing::one_thread);
    reader in{std::string_view(reinterpret_cast<const char*>(data + 1), size - 1)};

    std::vector<std::string> args;
    std::string reply;
    for (;;) {
        std::size_t argc = 0;
        std::string error;
        auto line = in.read_until("\n");
        if (in.line_too_long) {
            error = "too big inline request";
        } else if (!line) {
            break;
        } else {
            std::string_view first = *line;
            if (first.ends_with('\r')) first.remove_suffix(1);
            try {
                if (!first.starts_with('*')) {
                    argc = kv::split_inline(first, args);
                    check(argc <= args.size(), "split_inline: count beyond the words", first);
                    for (std::size_t i = 0; i < argc; ++i)
                        check(!args[i].empty() && args[i].find_first_of(" \t") == std::string::npos,
                              "split_inline: a word with a separator", first);
                } else {
                    check_integer(first.substr(1));
                    std::size_t n = kv::multibulk_count(first, lim);
                    check(n <= lim.max_args, "multibulk_count beyond max_args", first);
                    bool ended = false;
                    for (; argc < n; ++argc) {
                        auto head = in.read_until("\r\n");
                        if (!head) {
                            ended = true;
                            break;
                        }
                        if (head->starts_with('$')) check_integer(head->substr(1));
                        std::size_t len = kv::bulk_length(*head, lim);
                        check(len <= lim.max_bulk, "bulk_length beyond max_bulk", *head);
                        auto bulk = in.read_exactly(len + 2);
                        if (!bulk) {
                            ended = true;
                            break;
                        }
                        if (argc == args.size()) args.emplace_back();
                        args[argc].assign(kv::bulk_body(*bulk));
                        check(args[argc].size() == len, "bulk_body: wrong length", *bulk);
                    }
                    if (ended || in.line_too_long) {
                        if (!in.line_too_long) break;  // the peer closed mid-request
                        error = "too big inline request";
                    }
                }
            } catch (const kv::protocol_error& e) {
                error = e.what();
            }
        }
        reply.clear();
        if (!error.empty()) {
            kv::reply_error(reply, "ERR Protocol error: " + error);
            check_reply(reply);
            break;
        }
        if (argc == 0) continue;
        kv::after_reply next = db.execute(std::span(args.data(), argc), reply);
        check_reply(reply);
        check(db.volatile_count() <= db.size(), "more deadlines than keys", reply);
        if (next == kv::after_reply::close) break;
    }
    db.sweep(1000);
    return 0;
}
