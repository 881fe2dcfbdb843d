// tests/fuzz/channel_input_fuzz.cpp: libFuzzer target for coro/channel.hpp's input side.
//
// A writer sends a stream (at most 4 KiB) over a socket pair in chunks, one chunk per loop turn,
// then shuts its side down; a reader on the same reactor runs a sequence of read_until /
// read_exactly / read_some over a channel, and every result is compared with a reference that
// splits the whole stream with std::string_view::find. The chunking, the channel's recv_size,
// max_line and max_buffer and the backend (io_uring, epoll, select) come from the input, so the
// terminator search, the buffer sliding and growth, the limits and end of stream are all tried
// against arbitrary receive boundaries. Any difference aborts. Run it with tools/fuzz.sh.
//
// Input layout (seeds: tests/fuzz/seeds.py):
//   byte 0      backend (% 3: io_uring, epoll, select; an unavailable one falls back to epoll)
//   byte 1      recv_size (% 8 into recv_sizes)
//   byte 2      max_line (low nibble % 8) and max_buffer (high nibble % 4)
//   byte 3      op count (% 48), then 3 bytes per op:
//               kind (% 3: until, exactly, some; until takes terminators[(kind / 3) % 10])
//               and a 16-bit little-endian count for exactly / some (% 5000)
//   next byte   chunk-size count (% 17; 0 = one send), then that many sizes (0 means 1)
//   the rest    the stream, cut at 4 KiB
#include <coronet/coro/channel.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <coronet/coro/net.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

namespace {

using namespace coronet;

constexpr std::size_t max_stream = 4096;

// 1, 2, 3, 4, 5 and 16 bytes; several overlap themselves, which the channel's
// "where can the terminator still start" bookkeeping must get right.
constexpr std::string_view terminators[] = {
    "\n",
    "\r\n",
    "aa",
    "aab",
    "aba",
    "\r\n\r\n",
    "\r\n.\r\n",
    "<<terminator16>>",
    "aaaaaaaaaaaaaaab",
    "a",
};
constexpr std::size_t recv_sizes[] = {1, 2, 3, 7, 16, 64, 1000, 16 * 1024};
constexpr std::size_t max_lines[] = {64 * 1024, 0, 1, 2, 5, 16, 100, 1000};
constexpr std::size_t max_buffers[] = {16 * 1024 * 1024, 0, 10, 1000};
constexpr backend_kind backends[] = {backend_kind::io_uring, backend_kind::epoll,
                                     backend_kind::select};

enum class kind { until, exactly, some };

struct op {
    kind k;
    std::string_view term;  // until
    std::size_t n = 0;      // exactly, some
};

struct plan {
    backend_kind backend = backend_kind::epoll;
    channel_options options;
    std::vector<op> ops;
    std::vector<std::size_t> chunks;  // sizes, used in turn; empty: one send
    std::string_view stream;
};

// Reads the input: a missing byte reads as 0, so every input is a valid plan.
struct cursor {
    const std::uint8_t* p;
    std::size_t left;
    std::uint8_t byte() {
        if (left == 0) return 0;
        --left;
        return *p++;
    }
};

plan parse(const std::uint8_t* data, std::size_t size) {
    cursor in{data, size};
    plan pl;
    pl.backend = backends[in.byte() % 3];
    pl.options.recv_size = recv_sizes[in.byte() % 8];
    std::uint8_t limits = in.byte();
    pl.options.max_line = max_lines[(limits & 15) % 8];
    pl.options.max_buffer = max_buffers[(limits >> 4) % 4];
    std::size_t n_ops = in.byte() % 48;
    for (std::size_t i = 0; i < n_ops; ++i) {
        std::uint8_t k = in.byte();
        std::size_t lo = in.byte(), hi = in.byte();
        std::size_t count = (lo | hi << 8) % 5000;
        switch (k % 3) {
        case 0: pl.ops.push_back({kind::until, terminators[(k / 3) % 10]}); break;
        case 1: pl.ops.push_back({kind::exactly, {}, count}); break;
        default: pl.ops.push_back({kind::some, {}, count}); break;
        }
    }
    std::size_t n_chunks = in.byte() % 17;
    for (std::size_t i = 0; i < n_chunks; ++i) {
        std::size_t c = in.byte();
        pl.chunks.push_back(c == 0 ? 1 : c);
    }
    pl.stream =
        std::string_view(reinterpret_cast<const char*>(in.p), std::min(in.left, max_stream));
    return pl;
}

[[noreturn]] void fail(const char* what, std::size_t op_index) {
    std::fprintf(stderr, "channel_input_fuzz: op %zu: %s\n", op_index, what);
    std::abort();
}

void check(bool ok, const char* what, std::size_t op_index) {
    if (!ok) fail(what, op_index);
}

// Resumes the awaiting coroutine on the reactor's next turn.
struct next_turn {
    reactor* r;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) { r->post(h); }
    void await_resume() const noexcept {}
};

// Sends the stream chunk by chunk, one chunk per turn, then ends it.
task<void> write_stream(coronet::socket* s, const plan* pl) {
    std::string_view rest = pl->stream;
    std::size_t i = 0;
    while (!rest.empty()) {
        std::size_t n = pl->chunks.empty() ? rest.size() : pl->chunks[i++ % pl->chunks.size()];
        n = std::min(n, rest.size());
        co_await send_all(*s, rest.substr(0, n));
        rest.remove_prefix(n);
        co_await next_turn{&s->context()};
    }
    s->shutdown_send();
}

// Runs the plan's reads and checks each against the reference split of the whole stream.
task<void> read_stream(channel* ch, const plan* pl) {
    const std::string_view s = pl->stream;
    const channel_options& o = pl->options;
    std::size_t pos = 0;  // the reference's read position
    for (std::size_t i = 0; i < pl->ops.size(); ++i) {
        const op& x = pl->ops[i];
        std::optional<std::string_view> got;
        std::error_code error;
        try {
            switch (x.k) {
            case kind::until: got = co_await ch->read_until(x.term); break;
            case kind::exactly: got = co_await ch->read_exactly(x.n); break;
            case kind::some: got = co_await ch->read_some(x.n); break;
            }
        } catch (const std::system_error& e) {
            error = e.code();
        }
        std::string_view rest = s.substr(pos);
        switch (x.k) {
        case kind::until: {
            std::size_t at = rest.find(x.term);
            if (at != std::string_view::npos ? at > o.max_line
                                             : rest.size() > o.max_line + x.term.size() - 1) {
                check(error == errc::line_too_long, "read_until: expected line_too_long", i);
            } else if (at != std::string_view::npos) {
                check(!error, "read_until: unexpected error", i);
                check(got && *got == rest.substr(0, at), "read_until: wrong line", i);
                pos += at + x.term.size();
            } else {
                check(!error, "read_until: unexpected error at end of stream", i);
                check(!got, "read_until: expected end of stream", i);
            }
            break;
        }
        case kind::exactly:
            if (x.n > o.max_buffer) {
                check(error == errc::message_too_long, "read_exactly: expected message_too_long",
                      i);
            } else if (rest.size() >= x.n) {
                check(!error, "read_exactly: unexpected error", i);
                check(got && *got == rest.substr(0, x.n), "read_exactly: wrong bytes", i);
                pos += x.n;
            } else {
                check(!error, "read_exactly: unexpected error at end of stream", i);
                check(!got, "read_exactly: expected end of stream", i);
            }
            break;
        case kind::some:
            check(!error, "read_some: unexpected error", i);
            if (rest.empty()) {
                check(!got, "read_some: expected end of stream", i);
            } else {
                std::size_t max = x.n == 0 ? 1 : x.n;
                check(got && !got->empty() && got->size() <= max, "read_some: wrong size", i);
                check(*got == rest.substr(0, got->size()), "read_some: wrong bytes", i);
                pos += got->size();
            }
            break;
        }
    }
    // Whatever the reads left must still come out, in order, then end of stream.
    std::size_t n = pl->ops.size();
    for (;;) {
        auto got = co_await ch->read_some();
        if (!got) break;
        check(!got->empty() && s.substr(pos).starts_with(*got), "drain: wrong bytes", n);
        pos += got->size();
    }
    check(pos == s.size(), "drain: bytes lost", n);
    check(ch->at_eof() && ch->buffered() == 0, "drain: not at end of stream", n);
}

task<void> run_plan(coronet::socket* writer, channel* ch, const plan* pl) {
    co_await when_all(write_stream(writer, pl), read_stream(ch, pl));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    plan pl = parse(data, size);
    static const bool have[] = {backend_available(backend_kind::io_uring),
                                backend_available(backend_kind::epoll),
                                backend_available(backend_kind::select)};
    if (!have[static_cast<int>(pl.backend) - 1]) pl.backend = backend_kind::epoll;
    reactor r{{.backend = pl.backend}};
    auto [a, b] = coronet::socket::pair(r);
    channel ch(std::move(b), pl.options);
    r.run(run_plan(&a, &ch, &pl));
    return 0;
}
