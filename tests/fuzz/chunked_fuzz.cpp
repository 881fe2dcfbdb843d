// tests/fuzz/chunked_fuzz.cpp: libFuzzer target for coro/producer.hpp's chunked_producer.
//
// An inner producer returns the input's bytes in pieces whose sizes come from the input;
// chunked_producer frames them, and a small reference decoder (HTTP/1.1 chunked coding, RFC 9112
// 7.1, no chunk extensions) reads the output back. What must hold: each inner piece is one chunk,
// in order, with its size in lowercase hex; the last-chunk carries exactly the footers the
// producer accepted; nothing follows the final CRLF; more() returns nothing empty before the end
// and only empty strings after it. Footers the constructor refuses (std::invalid_argument) are
// skipped: the check is that whatever it accepts keeps the framing. Any violation aborts. Run it
// with tools/fuzz.sh.
//
// Input layout (seeds: tests/fuzz/seeds.py):
//   byte 0      footer line count (% 4), then per line a length byte (% 32) and that many bytes,
//               each line sent with "\r\n" appended (so a line may be empty or hold CR/LF)
//   next byte   piece-size count (% 17; 0 = the whole data in one piece), then the sizes (0: 1)
//   the rest    the data
#include <coronet/coro/producer.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, std::string_view out) {
    std::fprintf(stderr, "chunked_fuzz: %s; output: \"%.*s\"\n", what, int(out.size()), out.data());
    std::abort();
}

void check(bool ok, const char* what, std::string_view out) {
    if (!ok) fail(what, out);
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

// Decodes out, checking the framing: the chunks and the trailer section.
void decode(std::string_view out, const std::vector<std::string>& chunks,
            std::string_view footers) {
    std::string_view s = out;
    auto line = [&](std::string_view& l) {
        std::size_t end = s.find("\r\n");
        check(end != std::string_view::npos, "a line without CRLF", out);
        l = s.substr(0, end);
        s.remove_prefix(end + 2);
    };
    std::size_t i = 0;
    for (;;) {
        std::string_view size_line;
        line(size_line);
        std::size_t n = 0;
        auto [end, ec] =
            std::from_chars(size_line.data(), size_line.data() + size_line.size(), n, 16);
        check(ec == std::errc() && end == size_line.data() + size_line.size() && !size_line.empty(),
              "a bad chunk-size line", out);
        check(size_line.find_first_of("ABCDEF") == std::string_view::npos &&
                  (size_line.size() == 1 || size_line[0] != '0'),
              "chunk size not in shortest lowercase hex", out);
        if (n == 0) break;
        check(i < chunks.size(), "more chunks than inner pieces", out);
        check(s.size() >= n + 2 && s.substr(0, n) == chunks[i] && s.substr(n, 2) == "\r\n",
              "a chunk differs from its inner piece", out);
        s.remove_prefix(n + 2);
        ++i;
    }
    check(i == chunks.size(), "fewer chunks than inner pieces", out);
    std::string trailer;
    for (;;) {
        std::string_view l;
        line(l);
        if (l.empty()) break;
        trailer.append(l).append("\r\n");
    }
    check(trailer == footers, "the trailer section differs from the footers", out);
    check(s.empty(), "bytes after the end of the chunked body", out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    cursor in{data, size};
    std::string footers;
    for (std::size_t lines = in.byte() % 4; lines > 0; --lines)
        footers.append(in.bytes(in.byte() % 32)).append("\r\n");
    std::vector<std::size_t> sizes;
    for (std::size_t n = in.byte() % 17; n > 0; --n) {
        std::size_t c = in.byte();
        sizes.push_back(c == 0 ? 1 : c);
    }
    std::string_view rest = in.bytes(in.left);
    std::vector<std::string> chunks;
    for (std::size_t i = 0; !rest.empty(); ++i) {
        std::size_t n =
            sizes.empty() ? rest.size() : std::min(sizes[i % sizes.size()], rest.size());
        chunks.emplace_back(rest.substr(0, n));
        rest.remove_prefix(n);
    }

    std::optional<coronet::chunked_producer> p;
    try {
        p.emplace(coronet::producer(pieces(chunks)), footers);
    } catch (const std::invalid_argument&) {
        return 0;  // refused footers: nothing is sent
    }
    std::string out;
    for (;;) {
        std::string piece = p->more();
        if (piece.empty()) break;
        out += piece;
    }
    check(p->more().empty() && p->more().empty(), "more() after the end is not empty", out);
    decode(out, chunks, footers);
    return 0;
}
