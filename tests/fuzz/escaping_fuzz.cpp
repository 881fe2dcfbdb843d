// tests/fuzz/escaping_fuzz.cpp: libFuzzer target for coro/producer.hpp's escaping_producer.
//
// An inner producer returns the input's bytes in pieces whose sizes come from the input;
// escaping_producer escapes them piece by piece, and the concatenated output must equal
// escaping the whole stream at once with std::string find-and-replace (left to right, matches
// not overlapping). With escape_start::as_line_start the stream is matched as if it followed
// esc_from minus its last byte, which the reference does by prepending that prefix and removing
// it from the result: for SMTP's default ("\r\n." -> "\r\n..") a leading "." is doubled. Also:
// more() returns nothing empty before the end and only empty strings after it, and the
// constructor refuses exactly the arguments it documents. Any difference aborts. Run it with
// tools/fuzz.sh.
//
// Input layout (seeds: tests/fuzz/seeds.py):
//   byte 0      bit 0: escape_start::verbatim (else as_line_start); bit 1: custom esc_from and
//               esc_to (else SMTP's); custom: a length byte (% 5) and the esc_from bytes, a
//               length byte (% 7) and the esc_to bytes
//   next byte   piece-size count (% 17; 0 = the whole stream in one piece), then the sizes (0: 1)
//   the rest    the stream
#include <coronet/coro/producer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, std::string_view a, std::string_view b) {
    std::fprintf(stderr, "escaping_fuzz: %s\n  got:      \"%.*s\"\n  expected: \"%.*s\"\n", what,
                 int(a.size()), a.data(), int(b.size()), b.data());
    std::abort();
}

struct cursor {
    const std::uint8_t* p;
    std::size_t left;
    std::uint8_t byte() {
        if (left == 0) return 0;
        --left;
        return *p++;
    }
    std::string_view bytes(std::size_t n) {
        n = std::min(n, left);
        std::string_view s(reinterpret_cast<const char*>(p), n);
        p += n;
        left -= n;
        return s;
    }
};

// Returns the given pieces, one per more() (none of them empty), then empty.
class pieces {
public:
    explicit pieces(std::vector<std::string> p) : pieces_(std::move(p)) {}
    std::string more() { return next_ < pieces_.size() ? pieces_[next_++] : std::string{}; }

private:
    std::vector<std::string> pieces_;
    std::size_t next_ = 0;
};

// The reference: every esc_from, left to right, replaced by esc_to.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = s.find(from, pos)) != std::string_view::npos;
         pos = hit + from.size())
        out.append(s.substr(pos, hit - pos)).append(to);
    out.append(s.substr(pos));
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    cursor in{data, size};
    std::uint8_t mode = in.byte();
    auto start = mode & 1 ? coronet::escape_start::verbatim : coronet::escape_start::as_line_start;
    std::string from = "\r\n.", to = "\r\n..";
    if (mode & 2) {
        from = in.bytes(in.byte() % 5);
        to = in.bytes(in.byte() % 7);
    }
    std::vector<std::size_t> sizes;
    for (std::size_t n = in.byte() % 17; n > 0; --n) {
        std::size_t c = in.byte();
        sizes.push_back(c == 0 ? 1 : c);
    }
    std::string_view stream = in.bytes(in.left);
    std::vector<std::string> chunks;
    for (std::string_view rest = stream; !rest.empty();) {
        std::size_t n = sizes.empty() ? rest.size()
                                      : std::min(sizes[chunks.size() % sizes.size()], rest.size());
        chunks.emplace_back(rest.substr(0, n));
        rest.remove_prefix(n);
    }

    // What the constructor must refuse.
    std::string lead = from.empty() ? std::string() : from.substr(0, from.size() - 1);
    bool refused = from.empty() || (start == coronet::escape_start::as_line_start &&
                                    from.size() > 1 && !std::string_view(to).starts_with(lead));
    std::optional<coronet::escaping_producer> p;
    try {
        p.emplace(coronet::producer(pieces(chunks)), from, to, start);
    } catch (const std::invalid_argument&) {
        if (!refused) fail("refused valid arguments", from, to);
        return 0;
    }
    if (refused) fail("accepted invalid arguments", from, to);

    std::string out;
    for (;;) {
        std::string piece = p->more();
        if (piece.empty()) break;
        out += piece;
    }
    if (!p->more().empty() || !p->more().empty()) fail("more() after the end", out, "");

    std::string expected;
    if (start == coronet::escape_start::as_line_start && from.size() > 1)
        expected = replace_all(lead + std::string(stream), from, to).substr(lead.size());
    else
        expected = replace_all(stream, from, to);
    if (out != expected) fail("differs from escaping the whole stream", out, expected);
    return 0;
}
