// tests/coro/channel_test.cpp: coro/channel.hpp, the awaitable async_chat.
//
// Every test runs on every backend (io_uring, epoll, select) over a Unix
// socketpair unless TCP is the subject. Test names carry the item of the
// asynchat conformance checklist (CONFORMANCE.md) they check: B21-B26 (input),
// C27, C38, C39 and items 10, 11, 19, 20 (output and limits). The input cases
// run again over the in-memory transport, where splitting is exact, in
// channel_memory_test.cpp (same ids).
//
// Where a test needs data to arrive as separate receives, the writer sends one
// piece and then waits until the reader's socket has nothing left unread
// (FIONREAD) before it sends the next: each receive then holds exactly one
// piece, whatever the backend or the machine's speed. Every co_await is bound,
// never tested (the README's GCC 12 rule): `auto x = co_await ...; if (!x) break;`.
#include <coronet/coro/channel.hpp>

#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGIFICATION
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <coronet/coro/net.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/channel_data.hpp"
#include "tests/support/sigpipe_counter.hpp"

using namespace coronet;
using namespace std::chrono_literals;
using namespace coronet::testing;

namespace {

// --- helpers -------------------------------------------------------------------

// Bytes the kernel holds for fd that nobody has received yet; -1 once fd is gone.
int unread_bytes(int fd) {
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

void set_linger_zero(coronet::socket& s) {
    ::linger l{1, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Sends each piece as its own receive (see the header), then closes: end of stream.
task<void> send_pieces(coronet::socket s, std::vector<std::string> pieces, int reader_fd) {
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        co_await send_all(s, pieces[i]);
        if (i + 1 < pieces.size())
            while (unread_bytes(reader_fd) > 0)
                co_await sleep_for(s.context(), 0ms);
    }
    s.close();
}

// Sends data as fast as the peer takes it, then closes.
task<void> send_and_close(coronet::socket s, std::string data) {
    co_await send_all(s, data);
    s.close();
}

// Sends data; the peer may go away meanwhile (its error is returned, not thrown).
task<std::error_code> send_tolerating_close(coronet::socket s, std::string data) {
    try {
        co_await send_all(s, data);
    } catch (const std::system_error& e) {
        co_return e.code();
    }
    co_return std::error_code{};
}

struct lines_and_tail {
    std::vector<std::string> lines;
    std::string tail;  // what read_some() returned after read_until() saw the end of stream
};

task<lines_and_tail> read_lines(channel ch, std::string term) {
    lines_and_tail out;
    for (;;) {
        auto line = co_await ch.read_until(term);
        if (!line) break;
        out.lines.emplace_back(*line);
    }
    for (;;) {
        auto rest = co_await ch.read_some();
        if (!rest) break;
        out.tail += *rest;
    }
    co_return out;
}

// Runs read_lines() against send_pieces() over a fresh socket pair.
lines_and_tail lines_from_pieces(reactor& r, std::vector<std::string> pieces, std::string term,
                                 channel_options options = {}) {
    auto [a, b] = socket::pair(r);
    int fd = a.native_handle();
    auto [got, unused] = r.run(when_all(read_lines(channel(std::move(a), options), std::move(term)),
                                        send_pieces(std::move(b), std::move(pieces), fd)));
    return got;
}

// The first case whose lines differ from classic_lines, described; "" when all match.
std::string first_bad_case(const lines_and_tail& got, const std::vector<std::string>& case_names) {
    const std::size_t per = classic_lines.size();
    for (std::size_t k = 0; k < case_names.size(); ++k) {
        for (std::size_t j = 0; j < per; ++j) {
            std::size_t i = k * per + j;
            if (i >= got.lines.size())
                return case_names[k] + ": line " + std::to_string(j) + " missing";
            if (got.lines[i] != classic_lines[j])
                return case_names[k] + ": line " + std::to_string(j) + " is \"" +
                       printable(got.lines[i]) + "\", expected \"" + printable(classic_lines[j]) +
                       "\"";
        }
    }
    if (got.lines.size() != case_names.size() * per)
        return std::to_string(got.lines.size() - case_names.size() * per) + " extra lines";
    return "";
}

struct received {
    std::string bytes;
    std::size_t reads = 0;
};

// Receives until end of stream (the socket is closed when done).
task<received> receive_all(coronet::socket s) {
    received out;
    std::vector<std::byte> buf(64 * 1024);
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        ++out.reads;
        out.bytes.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    s.close();
    co_return out;
}

task<std::optional<std::string>> line_from(channel& ch, std::string term) {
    co_return own(co_await ch.read_until(term));
}

task<std::optional<std::string>> exactly_from(channel& ch, std::size_t n) {
    co_return own(co_await ch.read_exactly(n));
}

}  // namespace

// --- B21: read_until over any chunking ---------------------------------------------

TEST_CASE("channel: B21 read_until returns the lines for 1- 2- and 3-byte receives", "[channel]") {
    // asynchat items 1-3 and 9: "hello world", the empty line, "I'm not dead yet!".
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (const auto& term : terminators) {
        for (std::size_t chunk : {1, 2, 3}) {
            INFO("terminator \"" << printable(term) << "\", " << chunk << " byte(s) per receive");
            std::string stream = join_lines(classic_lines, term);
            std::vector<std::string> pieces;
            for (std::size_t i = 0; i < stream.size(); i += chunk)
                pieces.push_back(stream.substr(i, chunk));
            auto got = lines_from_pieces(r, std::move(pieces), term);
            CHECK(got.lines == classic_lines);
            CHECK(got.tail.empty());
        }
    }
}

TEST_CASE("channel: B21 read_until with a one-byte receive size finds every terminator",
          "[channel]") {
    // Everything is sent at once; the channel asks each receive for one byte.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (const auto& term : terminators) {
        INFO("terminator \"" << printable(term) << "\"");
        auto got = lines_from_pieces(r, {join_lines(classic_lines, term)}, term, {.recv_size = 1});
        CHECK(got.lines == classic_lines);
        CHECK(got.tail.empty());
    }
}

TEST_CASE(
    "channel: B21 read_until returns the lines for every split point including inside terminators",
    "[channel]") {
    // Every 2-piece split of the stream, and every 3-piece split of each
    // terminator occurrence (cuts at q+i and q+j, 0 < i < j < size): all cases
    // of one terminator share a socket pair, each case line-aligned.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (const auto& term : terminators) {
        INFO("terminator \"" << printable(term) << "\"");
        const std::string stream = join_lines(classic_lines, term);
        std::vector<std::string> pieces, names;
        auto add_case = [&](std::vector<std::size_t> cuts) {
            std::string name = "cuts at";
            std::size_t from = 0;
            for (std::size_t c : cuts) {
                pieces.push_back(stream.substr(from, c - from));
                from = c;
                name += " " + std::to_string(c);
            }
            pieces.push_back(stream.substr(from));
            names.push_back(name);
        };
        for (std::size_t p = 1; p < stream.size(); ++p)
            add_case({p});
        for (std::size_t q = stream.find(term); q != std::string::npos;
             q = stream.find(term, q + term.size()))
            for (std::size_t i = 1; i < term.size(); ++i)
                for (std::size_t j = i + 1; j < term.size(); ++j)
                    add_case({q + i, q + j});
        auto got = lines_from_pieces(r, std::move(pieces), term);
        CHECK(first_bad_case(got, names) == "");
        CHECK(got.tail.empty());
    }
}

TEST_CASE("channel: B21 read_until returns the lines for random chunkings", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::uint32_t seed = 2113;
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    for (const auto& term : terminators) {
        INFO("terminator \"" << printable(term) << "\"");
        const std::string stream = join_lines(classic_lines, term);
        std::vector<std::string> pieces, names;
        for (int k = 0; k < 150; ++k) {
            std::string name = "case " + std::to_string(k) + ", pieces of";
            std::size_t max_piece = 1 + rng() % (stream.size() / 2);
            for (std::size_t from = 0; from < stream.size();) {
                std::size_t n = 1 + rng() % max_piece;
                pieces.push_back(stream.substr(from, n));
                name += " " + std::to_string(pieces.back().size());
                from += n;
            }
            names.push_back(name);
        }
        auto got = lines_from_pieces(r, std::move(pieces), term);
        CHECK(first_bad_case(got, names) == "");
    }
}

// --- B22-B25: read_exactly, read_some, mixed reads, end of stream ------------------

namespace {

struct exactly_result {
    std::optional<std::string> head;
    std::size_t buffered_after_head = 0;
    std::optional<std::string> first;
    std::size_t buffered_after_first = 0;
    std::optional<std::string> big;
    std::optional<std::string> past_end;
};

task<exactly_result> read_exactly_sequence(channel ch, std::size_t big_n) {
    exactly_result out;
    out.head = own(co_await ch.read_until("\n"));
    out.buffered_after_head = ch.buffered();
    out.first = own(co_await ch.read_exactly(60));
    out.buffered_after_first = ch.buffered();
    out.big = own(co_await ch.read_exactly(big_n));
    out.past_end = own(co_await ch.read_exactly(1));
    co_return out;
}

}  // namespace

TEST_CASE("channel: B22 read_exactly uses buffered bytes first and returns a large count whole",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::size_t total = 3 * 1024 * 1024;
    const std::string payload = pattern(0, total);
    // One receive brings "hdr\n" and the first 100 payload bytes; the rest follows in pieces.
    std::vector<std::string> pieces{"hdr\n" + payload.substr(0, 100)};
    for (std::size_t from = 100; from < total; from += 200 * 1024)
        pieces.push_back(payload.substr(from, 200 * 1024));
    auto [a, b] = socket::pair(r);
    int fd = a.native_handle();
    auto [got, unused] = r.run(when_all(read_exactly_sequence(channel(std::move(a)), total - 60),
                                        send_pieces(std::move(b), std::move(pieces), fd)));
    CHECK(got.head == "hdr");
    CHECK(got.buffered_after_head == 100);
    CHECK(got.first == payload.substr(0, 60));
    CHECK(got.buffered_after_first == 40);  // taken from the buffer, in order
    REQUIRE(got.big.has_value());
    CHECK(got.big->size() == total - 60);
    CHECK((*got.big == payload.substr(60)));
    CHECK_FALSE(got.past_end.has_value());
}

namespace {

struct some_result {
    std::optional<std::string> first, second, third, fourth;
    std::size_t buffered_after_first = 0;
};

task<some_result> read_some_sequence(channel ch) {
    some_result out;
    out.first = own(co_await ch.read_some(3));
    out.buffered_after_first = ch.buffered();
    out.second = own(co_await ch.read_some());
    out.third = own(co_await ch.read_some());  // nothing buffered: waits for the next receive
    out.fourth = own(co_await ch.read_some());
    co_return out;
}

}  // namespace

TEST_CASE("channel: B23 read_some returns what is buffered or else the next receive", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    int fd = a.native_handle();
    auto [got, unused] = r.run(when_all(read_some_sequence(channel(std::move(a))),
                                        send_pieces(std::move(b), {"abcdef", "xyz"}, fd)));
    CHECK(got.first == "abc");
    CHECK(got.buffered_after_first == 3);
    CHECK(got.second == "def");
    CHECK(got.third == "xyz");
    CHECK_FALSE(got.fourth.has_value());
}

namespace {

task<std::vector<std::optional<std::string>>> read_mixed(channel ch) {
    std::vector<std::optional<std::string>> out;
    out.push_back(own(co_await ch.read_until("\r\n")));
    out.push_back(own(co_await ch.read_exactly(5)));
    out.push_back(own(co_await ch.read_until("\r\n")));
    out.push_back(own(co_await ch.read_until("\r\n")));
    out.push_back(own(co_await ch.read_until("\r\n")));
    co_return out;
}

}  // namespace

TEST_CASE("channel: B24 read_until read_exactly read_until over one receive of $5 hello +OK",
          "[channel]") {
    // "$5\r\nhello\r\n+OK\r\n" gives "$5", "hello", "" (the "\r\n" after
    // hello), "+OK", then the end of stream; also with one byte per receive.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::string stream = "$5\r\nhello\r\n+OK\r\n";
    const std::vector<std::optional<std::string>> expected = {"$5", "hello", "", "+OK",
                                                              std::nullopt};
    std::vector<std::vector<std::string>> chunkings{{stream}};
    std::vector<std::string> bytes;
    for (char c : stream)
        bytes.emplace_back(1, c);
    chunkings.push_back(bytes);
    for (auto& pieces : chunkings) {
        INFO(pieces.size() << " receive(s)");
        auto [a, b] = socket::pair(r);
        int fd = a.native_handle();
        auto [got, unused] = r.run(
            when_all(read_mixed(channel(std::move(a))), send_pieces(std::move(b), pieces, fd)));
        CHECK(got == expected);
    }
}

namespace {

struct eof_result {
    std::vector<std::optional<std::string>> lines;
    bool at_eof = false;
    std::error_code reason;
    std::optional<std::string> exactly_past_end;
    std::size_t buffered_at_end = 0;
    std::optional<std::string> rest, after_rest;
};

task<eof_result> read_to_end(channel ch, std::string term, int lines) {
    eof_result out;
    for (int i = 0; i < lines; ++i)
        out.lines.push_back(own(co_await ch.read_until(term)));
    out.at_eof = ch.at_eof();
    out.reason = ch.close_reason();
    out.exactly_past_end = own(co_await ch.read_exactly(100));
    out.buffered_at_end = ch.buffered();
    out.rest = own(co_await ch.read_some());
    out.after_rest = own(co_await ch.read_some());
    co_return out;
}

}  // namespace

TEST_CASE("channel: B25 at end of stream read_until returns nullopt and read_some the tail",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    int fd = a.native_handle();
    auto [got, unused] =
        r.run(when_all(read_to_end(channel(std::move(a)), "\r\n", 3),
                       send_pieces(std::move(b), {"line1\r\nline2\r\nta", "il"}, fd)));
    CHECK(got.lines == std::vector<std::optional<std::string>>{"line1", "line2", std::nullopt});
    CHECK(got.at_eof);
    CHECK(got.reason == std::error_code{});  // a clean end of stream
    CHECK_FALSE(got.exactly_past_end.has_value());
    CHECK(got.buffered_at_end == 4);  // the failed read_exactly took nothing
    CHECK(got.rest == "tail");
    CHECK_FALSE(got.after_rest.has_value());
}

TEST_CASE("channel: B25 EOF mid-line keeps the partial line for read_some (the documented choice)",
          "[channel]") {
    // asynchat (item 16) holds a partial line, or a partial terminator, back at
    // EOF and never delivers it; the channel keeps both for read_some().
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    struct variant {
        std::string term, stream, tail;
    };
    for (const auto& v :
         {variant{"\n", "complete\npartial", "partial"},
          variant{"\r\n", "complete\r\npartial\r", "partial\r"},
          variant{std::string(term16), "complete" + std::string(term16) + "partial<<termin",
                  "partial<<termin"}}) {
        INFO("terminator \"" << printable(v.term) << "\"");
        auto [a, b] = socket::pair(r);
        int fd = a.native_handle();
        auto [got, unused] = r.run(when_all(read_to_end(channel(std::move(a)), v.term, 2),
                                            send_pieces(std::move(b), {v.stream}, fd)));
        CHECK(got.lines == std::vector<std::optional<std::string>>{"complete", std::nullopt});
        CHECK(got.at_eof);
        CHECK(got.rest == v.tail);
        CHECK_FALSE(got.after_rest.has_value());
    }
}

// --- B26: a cancelled read keeps its bytes ------------------------------------------

namespace {

struct cancelled_read {
    std::error_code error;
    std::size_t kept = 0;  // buffered in the channel plus still in the kernel
    std::optional<std::string> next;
};

enum class cancel_case { line, count, nothing_received };

task<cancelled_read> cancel_then_read(coronet::socket mine, coronet::socket peer,
                                      cancel_case which) {
    channel ch(std::move(mine));
    reactor& r = ch.context();
    cancelled_read out;
    if (which == cancel_case::line) co_await send_all(peer, "partial");
    if (which == cancel_case::count) co_await send_all(peer, "12345");
    try {
        if (which == cancel_case::count)
            (void)co_await with_timeout(r, exactly_from(ch, 10), 50ms);
        else
            (void)co_await with_timeout(r, line_from(ch, "\n"), 50ms);
    } catch (const std::system_error& e) {
        out.error = e.code();
    }
    out.kept = ch.buffered() + static_cast<std::size_t>(unread_bytes(ch.sock().native_handle()));
    if (which == cancel_case::count) {
        co_await send_all(peer, "67890");
        out.next = co_await exactly_from(ch, 10);
    } else {
        co_await send_all(peer, which == cancel_case::line ? "line\n" : "abc\n");
        out.next = co_await line_from(ch, "\n");
    }
    co_return out;
}

}  // namespace

TEST_CASE(
    "channel: B26 a read cancelled by with_timeout leaves every received byte for the next read",
    "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("read_until") {
        auto [a, b] = socket::pair(r);
        auto got = r.run(cancel_then_read(std::move(a), std::move(b), cancel_case::line));
        CHECK(got.error == make_error_code(errc::timed_out));
        CHECK(got.kept == 7);
        CHECK(got.next == "partialline");
    }
    SECTION("read_exactly") {
        auto [a, b] = socket::pair(r);
        auto got = r.run(cancel_then_read(std::move(a), std::move(b), cancel_case::count));
        CHECK(got.error == make_error_code(errc::timed_out));
        CHECK(got.kept == 5);
        CHECK(got.next == "1234567890");
    }
    SECTION("nothing received before the timeout") {
        auto [a, b] = socket::pair(r);
        auto got =
            r.run(cancel_then_read(std::move(a), std::move(b), cancel_case::nothing_received));
        CHECK(got.error == make_error_code(errc::timed_out));
        CHECK(got.kept == 0);
        CHECK(got.next == "abc");
    }
    CHECK(r.pending_count() == 0);
}

// --- limits (item 19) -------------------------------------------------------------

namespace {

struct limit_result {
    std::error_code error;
    std::size_t buffered = 0;
    std::optional<std::string> line;
    bool closed = false;
};

// The channel is a local so that it (and its fd) is gone before the task ends.
task<limit_result> read_limited_line(coronet::socket s, channel_options options, std::string term) {
    limit_result out;
    channel ch(std::move(s), options);
    try {
        out.line = own(co_await ch.read_until(term));
    } catch (const std::system_error& e) {
        out.error = e.code();
    }
    out.buffered = ch.buffered();
    ch.close();
    out.closed = ch.closed();
    co_return out;
}

}  // namespace

TEST_CASE("channel: item 19 a line longer than max_line is line_too_long and memory stays bounded",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const channel_options options{.max_line = 8192, .recv_size = 1024};
    for (const std::string term : {"\n", "\r\n", "qqq"}) {
        INFO("terminator \"" << printable(term) << "\"");
        auto [a, b] = socket::pair(r);
        // 256 KiB without a terminator, sent as fast as the kernel takes it.
        auto [got, send_error] =
            r.run(when_all(read_limited_line(std::move(a), options, term),
                           send_tolerating_close(std::move(b), std::string(256 * 1024, 'x'))));
        CHECK(got.error == make_error_code(errc::line_too_long));
        CHECK(got.buffered > options.max_line);
        CHECK(got.buffered <= options.max_line + term.size() - 1 + options.recv_size);
        CHECK(got.closed);
        INFO("sender saw " << send_error);  // the peer went away mid-send (or not at all)
        CHECK((send_error == std::error_code{} || send_error == std::errc::broken_pipe ||
               send_error == std::errc::connection_reset));
    }
    CHECK(r.channel_count() == 0);
    CHECK(r.pending_count() == 0);
}

TEST_CASE("channel: item 19 a line of exactly max_line is accepted and one byte more is not",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const channel_options options{.max_line = 1000, .recv_size = 64};
    for (const std::string& term : {std::string("\n"), std::string("\r\n"), std::string(term16)}) {
        INFO("terminator \"" << printable(term) << "\"");
        {
            auto [a, b] = socket::pair(r);
            std::string line(options.max_line, 'x');
            auto [got, unused] = r.run(when_all(read_limited_line(std::move(a), options, term),
                                                send_tolerating_close(std::move(b), line + term)));
            CHECK(got.error == std::error_code{});
            CHECK(got.line == line);
        }
        {
            auto [a, b] = socket::pair(r);
            std::string line(options.max_line + 1, 'x');
            auto [got, unused] = r.run(when_all(read_limited_line(std::move(a), options, term),
                                                send_tolerating_close(std::move(b), line + term)));
            CHECK(got.error == make_error_code(errc::line_too_long));
        }
    }
}

namespace {

struct too_big_result {
    std::error_code error;
    std::optional<std::string> allowed;
};

task<too_big_result> read_over_max_buffer(channel ch) {
    too_big_result out;
    try {
        (void)co_await ch.read_exactly(1001);
    } catch (const std::system_error& e) {
        out.error = e.code();
    }
    out.allowed = own(co_await ch.read_exactly(1000));
    co_return out;
}

}  // namespace

TEST_CASE("channel: read_exactly above max_buffer is message_too_long and consumes nothing",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto [got, unused] =
        r.run(when_all(read_over_max_buffer(channel(std::move(a), {.max_buffer = 1000})),
                       send_and_close(std::move(b), pattern(0, 1000))));
    CHECK(got.error == make_error_code(errc::message_too_long));
    CHECK(got.allowed == pattern(0, 1000));
}

namespace {

struct chunked_result {
    std::size_t total = 0;
    std::size_t first_bad = SIZE_MAX;
    std::size_t max_buffered = 0;
};

task<chunked_result> read_in_chunks(channel ch, std::size_t max) {
    chunked_result out;
    for (;;) {
        auto piece = co_await ch.read_some(max);
        if (!piece) break;
        for (std::size_t i = 0; i < piece->size() && out.first_bad == SIZE_MAX; ++i)
            if ((*piece)[i] != pattern_at(out.total + i)) out.first_bad = out.total + i;
        out.total += piece->size();
        out.max_buffered = std::max(out.max_buffered, ch.buffered());
    }
    co_return out;
}

}  // namespace

TEST_CASE("channel: a large count consumed with read_some is never buffered whole", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::size_t total = 8 * 1024 * 1024;
    const channel_options options{.recv_size = 16 * 1024};
    auto [a, b] = socket::pair(r);
    auto [got, unused] = r.run(when_all(read_in_chunks(channel(std::move(a), options), 5000),
                                        send_and_close(std::move(b), pattern(0, total))));
    CHECK(got.total == total);
    CHECK(got.first_bad == SIZE_MAX);
    CHECK(got.max_buffered <= options.recv_size);
}

// --- B21-B24 randomized: the channel against a reference splitter --------------------

namespace {

enum class step_kind { until, exactly, some };

struct read_step {
    step_kind kind;
    std::string term;   // until
    std::size_t n = 0;  // exactly: the count; some: the most wanted
    std::size_t case_index = 0;
};

// A stream, the reads to make over it, and the pieces it arrives in.
struct random_plan {
    std::string stream;
    std::vector<read_step> steps;
    std::vector<std::string> pieces;
};

constexpr std::array<std::string_view, 5> random_terms = {"\n", "\r\n", "qqq", "\r\n\r\n", term16};

// Random bytes rich in terminator fragments (proper prefixes of each terminator).
std::string random_filler(std::mt19937& rng, std::size_t n) {
    static constexpr std::string_view alphabet = "ab q\r\n<>";
    std::string s;
    while (s.size() < n) {
        if (rng() % 6 == 0) {
            auto t = random_terms[rng() % random_terms.size()];
            s += t.substr(0, rng() % t.size());
        } else {
            s += alphabet[rng() % alphabet.size()];
        }
    }
    s.resize(n);
    return s;
}

// The reads of each case are generated with a cursor that assumes read_some
// takes its maximum; the reader's real cursor is never ahead of it, so every
// read generated here can be answered whatever read_some actually returns.
random_plan make_plan(std::uint32_t seed, std::size_t cases) {
    std::mt19937 rng(seed);
    random_plan plan;
    std::string& s = plan.stream;
    std::size_t cursor = 0, sent = 0;
    for (std::size_t c = 0; c < cases; ++c) {
        for (std::size_t k = 1 + rng() % 6; k > 0; --k) {
            read_step st{.kind = step_kind::until, .term = {}, .n = 0, .case_index = c};
            unsigned pick = rng() % 10;
            if (pick < 5) {
                st.term = std::string(random_terms[rng() % random_terms.size()]);
                s += random_filler(rng, rng() % 25);
                s += st.term;
                cursor = s.find(st.term, cursor) + st.term.size();
            } else {
                st.kind = pick < 8 ? step_kind::exactly : step_kind::some;
                st.n = st.kind == step_kind::exactly ? rng() % 40 : 1 + rng() % 24;
                if (s.size() < cursor + st.n) s += random_filler(rng, cursor + st.n - s.size());
                cursor += st.n;
            }
            plan.steps.push_back(std::move(st));
        }
        // This case's new bytes: one piece, one byte per piece, or random small or larger pieces.
        unsigned style = rng() % 4;
        std::size_t max_piece = style == 2 ? 7 : 64;
        while (sent < s.size()) {
            std::size_t n = style == 0 ? s.size() - sent : style == 1 ? 1 : 1 + rng() % max_piece;
            plan.pieces.push_back(s.substr(sent, n));
            sent += plan.pieces.back().size();
        }
    }
    return plan;
}

std::string describe(const read_step& st, std::size_t i, std::size_t cursor) {
    std::ostringstream o;
    o << "step " << i << " (case " << st.case_index << ") at stream offset " << cursor << ": ";
    switch (st.kind) {
    case step_kind::until: o << "read_until(\"" << printable(st.term) << "\")"; break;
    case step_kind::exactly: o << "read_exactly(" << st.n << ")"; break;
    case step_kind::some: o << "read_some(" << st.n << ")"; break;
    }
    return o.str();
}

// Makes the plan's reads; "" when every result matches the reference, else the first mismatch.
task<std::string> run_plan(channel ch, const random_plan* plan) {
    const std::string& s = plan->stream;
    std::size_t cursor = 0;
    for (std::size_t i = 0; i < plan->steps.size(); ++i) {
        const read_step& st = plan->steps[i];
        std::optional<std::string> got, expected;
        if (st.kind == step_kind::until) {
            got = own(co_await ch.read_until(st.term));
            std::size_t p =
                s.find(st.term, cursor);  // the reference: a plain search of the whole stream
            expected = s.substr(cursor, p - cursor);
            if (got == expected) cursor = p + st.term.size();
        } else if (st.kind == step_kind::exactly) {
            got = own(co_await ch.read_exactly(st.n));
            expected = s.substr(cursor, st.n);
            if (got == expected) cursor += st.n;
        } else {
            got = own(co_await ch.read_some(st.n));
            // Any non-empty prefix of what is left, at most n bytes.
            if (got && !got->empty() && got->size() <= st.n &&
                s.compare(cursor, got->size(), *got) == 0) {
                cursor += got->size();
                continue;
            }
            expected = "(a prefix of) " + s.substr(cursor, st.n);
        }
        if (got != expected)
            co_return describe(st, i, cursor) + ": expected \"" +
                printable(expected.value_or("<nullopt>")) + "\", got \"" +
                printable(got.value_or("<nullopt>")) + "\"";
    }
    std::string rest;
    for (;;) {
        auto more = co_await ch.read_some();
        if (!more) break;
        rest += *more;
    }
    if (rest != s.substr(cursor))
        co_return "after the last step: expected the tail \"" + printable(s.substr(cursor)) +
            "\", got \"" + printable(rest) + "\"";
    co_return "";
}

}  // namespace

TEST_CASE("channel: B21-B24 random reads match a reference splitter for random chunkings",
          "[channel]") {
    // Thousands of cases (a few reads each: read_until with a random
    // terminator, read_exactly, read_some) over one socket pair per channel
    // configuration; the seed, case and step are printed on failure.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::size_t cases = 2500;
    for (const auto& [seed, recv_size] : {std::pair<std::uint32_t, std::size_t>{424242, 16 * 1024},
                                          std::pair<std::uint32_t, std::size_t>{171717, 3}}) {
        INFO("seed " << seed << ", recv_size " << recv_size << ", " << cases << " cases");
        const random_plan plan = make_plan(seed, cases);
        auto [a, b] = socket::pair(r);
        int fd = a.native_handle();
        auto [mismatch, unused] =
            r.run(when_all(run_plan(channel(std::move(a), {.recv_size = recv_size}), &plan),
                           send_pieces(std::move(b), plan.pieces, fd)));
        CHECK(mismatch == "");
    }
}

// --- output: fifo order, producers, close_when_done (C27, item 10) -------------------

namespace {

std::string big_producer_data() { return pattern(0, 200 * 1024); }

// Bytes, producers (one larger than the sender pulls at once) and the close marker.
task<void> push_mixed_then_close(coronet::socket s, bool small_send_buffer) {
    channel ch(std::move(s));
    if (small_send_buffer) ch.sock().set_send_buffer(4096);
    ch.push("bytes 1|");
    ch.push(simple_producer(std::string(100, 's'), 7));
    ch.push(std::string_view("bytes 2|"));
    ch.push(lines_producer({"a", "b", "c"}));
    ch.push(simple_producer(big_producer_data(), 4096));
    ch.push(std::string("bytes 3|"));
    ch.push(lines_producer(std::vector<std::string>(65, "a")));
    ch.push("bytes 4|");
    co_await ch.close_when_done();
    ch.push("never sent");
}

std::string mixed_expected() {
    std::string lines65;
    for (int i = 0; i < 65; ++i)
        lines65 += "a\r\n";
    return "bytes 1|" + std::string(100, 's') + "bytes 2|" + "a\r\nb\r\nc\r\n" +
           big_producer_data() + "bytes 3|" + lines65 + "bytes 4|";
}

// Reads slowly, a little at a time, so the sender meets a full socket often.
task<received> receive_slowly(coronet::socket s) {
    received out;
    std::vector<std::byte> buf(1500);
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        ++out.reads;
        out.bytes.append(reinterpret_cast<const char*>(buf.data()), n);
        if (out.reads % 4 == 0) co_await sleep_for(s.context(), 0ms);
    }
    s.close();
    co_return out;
}

}  // namespace

TEST_CASE("channel: C27 fifo order holds across bytes and producers up to the close marker",
          "[channel]") {
    // Regression: a producer with more than the sender pulls at once (64 KiB)
    // was gathered into one send with the plain bytes queued after it, which
    // then left before the producer's later chunks (and the bookkeeping after
    // that send never terminated).
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("a fast reader") {
        auto [a, b] = socket::pair(r);
        auto [unused, got] =
            r.run(when_all(push_mixed_then_close(std::move(a), false), receive_all(std::move(b))));
        CHECK(got.bytes.size() == mixed_expected().size());
        CHECK((got.bytes == mixed_expected()));
    }
    SECTION("a slow reader and a small send buffer") {
        auto [a, b] = socket::pair(r);
        auto [unused, got] = r.run(
            when_all(push_mixed_then_close(std::move(a), true), receive_slowly(std::move(b))));
        CHECK(got.bytes.size() == mixed_expected().size());
        CHECK((got.bytes == mixed_expected()));
    }
}

namespace {

// Counts more() calls and bytes handed out: n chunks of `size` bytes.
struct counting_producer {
    std::size_t* calls;
    std::size_t* produced;
    std::size_t chunks;
    std::size_t size;
    std::string more() {
        ++*calls;
        if (chunks == 0) return {};
        --chunks;
        *produced += size;
        return pattern(*produced - size, size);
    }
};

struct drain_result {
    std::size_t calls_after_push = 0;
    std::size_t calls_after_flush = 0;
    std::size_t max_ahead = 0;  // produced minus received, at its largest
    received got;
};

task<void> push_counting(channel& ch, drain_result& out, std::size_t* calls,
                         std::size_t* produced) {
    ch.push(counting_producer{calls, produced, 200, 16 * 1024});
    out.calls_after_push = *calls;
    co_await ch.flush();
    out.calls_after_flush = *calls;
    co_await ch.close_when_done();
}

task<void> receive_watching(coronet::socket s, drain_result& out, const std::size_t* produced) {
    std::vector<std::byte> buf(8 * 1024);
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        out.got.bytes.append(reinterpret_cast<const char*>(buf.data()), n);
        out.max_ahead = std::max(out.max_ahead, *produced - out.got.bytes.size());
        co_await sleep_for(s.context(), 0ms);
    }
    s.close();
}

task<drain_result> drain_producer(coronet::socket mine, coronet::socket peer) {
    drain_result out;
    std::size_t calls = 0, produced = 0;
    channel ch(std::move(mine));
    ch.sock().set_send_buffer(4096);
    co_await when_all(push_counting(ch, out, &calls, &produced),
                      receive_watching(std::move(peer), out, &produced));
    co_return out;
}

}  // namespace

TEST_CASE("channel: C27 a producer is drained chunk by chunk as the sender reaches it",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto got = r.run(drain_producer(std::move(a), std::move(b)));
    const std::size_t total = 200 * 16 * 1024;
    CHECK(got.calls_after_push == 0);     // push() pulls nothing
    CHECK(got.calls_after_flush == 201);  // 200 chunks, then the empty one; never called again
    CHECK(got.got.bytes.size() == total);
    CHECK((got.got.bytes == pattern(0, total)));
    CHECK(got.max_ahead < 1024 * 1024);  // never far ahead of the peer (3.2 MiB in all)
}

namespace {

struct close_when_done_result {
    std::size_t queued_after_late_push = 1;
    bool closed = false;
};

task<close_when_done_result> close_when_done_then_push(coronet::socket s) {
    close_when_done_result out;
    channel ch(std::move(s));
    ch.sock().set_send_buffer(4096);
    ch.push(pattern(0, 100000));
    ch.push(simple_producer("|producer|", 3));
    ch.push("|last");
    auto done = ch.close_when_done();
    ch.push("|pushed after close_when_done");  // before the close completes: still dropped
    co_await std::move(done);
    ch.push("|pushed after the close");
    out.queued_after_late_push = ch.queued();
    out.closed = ch.closed();
    co_return out;
}

}  // namespace

TEST_CASE(
    "channel: item 10 close_when_done sends everything queued then EOF and drops later pushes",
    "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto [closing, got] =
        r.run(when_all(close_when_done_then_push(std::move(a)), receive_slowly(std::move(b))));
    CHECK((got.bytes == pattern(0, 100000) + "|producer||last"));
    CHECK(closing.closed);
    CHECK(closing.queued_after_late_push == 0);
}

// --- C38: gathered sends ------------------------------------------------------------

namespace {

// Returns the channel's own count of what it sent.
task<channel::send_counters> push_many_small(coronet::socket s, std::size_t count) {
    channel ch(std::move(s));
    for (std::size_t i = 0; i < count; ++i)
        ch.push(std::string_view(pattern(i * 10, 10)));
    co_await ch.flush();
    auto sent = ch.sent();
    co_await ch.close_when_done();
    co_return sent;
}

}  // namespace

TEST_CASE("channel: C38 many small pushes leave in few sends", "[channel]") {
    // The reader is already waiting when 1,000 pushes of 10 bytes are made in
    // one go: one send per push would reach it as many receives.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto [got, sent] =
        r.run(when_all(receive_all(std::move(b)), push_many_small(std::move(a), 1000)));
    CHECK((got.bytes == pattern(0, 10000)));
    // The sender's own count: the reader's receives could merge separate
    // sends, so only this one shows that the pushes were gathered.
    CHECK(sent.bytes == 10000);
    CHECK(sent.sends >= 1);
    CHECK(sent.sends <= 10);
    CHECK(got.reads <= 10);
}

namespace {

// Pushes pieces of the given sizes in every accepted form, now and then
// through write() so the sender runs between pushes.
task<void> push_varied(coronet::socket s, std::vector<std::size_t> sizes) {
    channel ch(std::move(s));
    ch.sock().set_send_buffer(4096);
    std::size_t offset = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        std::string piece = pattern(offset, sizes[i]);
        offset += sizes[i];
        switch (i % 6) {
        case 0: ch.push(std::string_view(piece)); break;
        case 1: ch.push(std::move(piece)); break;
        case 2: ch.push(piece.c_str()); break;  // the pattern has no NUL
        case 3: {
            std::vector<std::byte> bytes(sizes[i]);
            std::memcpy(bytes.data(), piece.data(), piece.size());
            ch.push(std::span<const std::byte>(bytes));
            break;
        }
        case 4: ch.push(simple_producer(std::move(piece), 1 + i % 5000)); break;
        case 5: co_await ch.write(std::move(piece)); break;
        }
    }
    co_await ch.flush();
    co_await ch.close_when_done();
}

struct check_result {
    std::size_t total = 0;
    std::size_t first_bad = SIZE_MAX;
};

// Receives in random sizes, yielding now and then, checking every byte.
task<check_result> receive_checking(coronet::socket s, std::uint32_t seed) {
    check_result out;
    std::mt19937 rng(seed);
    std::vector<std::byte> buf(70000);
    for (;;) {
        std::size_t want = 1 + rng() % buf.size();
        std::size_t n = co_await s.recv(std::span(buf).first(want));
        if (n == 0) break;
        const char* p = reinterpret_cast<const char*>(buf.data());
        for (std::size_t i = 0; i < n && out.first_bad == SIZE_MAX; ++i)
            if (p[i] != pattern_at(out.total + i)) out.first_bad = out.total + i;
        out.total += n;
        if (rng() % 8 == 0) co_await sleep_for(s.context(), 0ms);
    }
    s.close();
    co_return out;
}

}  // namespace

TEST_CASE("channel: C38 short vectored sends resume exactly across iovec boundaries", "[channel]") {
    // 2,000 pieces of varied sizes (several MiB in all) through a 4 KiB send
    // buffer: nearly every gathered send is cut short somewhere in its iovecs.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::uint32_t seed = 3838;
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    std::vector<std::size_t> sizes;
    std::size_t total = 0;
    for (int i = 0; i < 2000; ++i) {
        unsigned pick = rng() % 10;
        std::size_t n = pick < 6   ? 1 + rng() % 200
                        : pick < 9 ? 200 + rng() % 8000
                                   : 16 * 1024 + rng() % 24000;
        sizes.push_back(n);
        total += n;
    }
    REQUIRE(total > 3 * 1024 * 1024);
    auto [a, b] = socket::pair(r);
    auto [unused, got] =
        r.run(when_all(push_varied(std::move(a), sizes), receive_checking(std::move(b), seed)));
    CHECK(got.total == total);
    CHECK(got.first_bad == SIZE_MAX);
}

// --- write() backpressure and flush() (item 20) -------------------------------------

namespace {

struct backpressure_state {
    bool small_write_returned = false;
    bool write_returned = false;
    bool returned_before_drain = true;
    std::size_t queued_before_drain = 0;
    std::size_t queued_after_write = SIZE_MAX;
    bool flushed = false;
    std::size_t queued_after_flush = SIZE_MAX;
    std::size_t received = 0;
};

constexpr std::size_t high_water = 64 * 1024, low_water = 16 * 1024;

task<void> write_big(channel& ch, backpressure_state& st) {
    co_await ch.write(std::string(64, 'w'));  // below the mark: returns at once
    st.small_write_returned = true;
    co_await ch.write(std::string(1024 * 1024 - 64, 'w'));
    st.write_returned = true;
    st.queued_after_write = ch.queued();
    co_await ch.flush();
    st.flushed = true;
    st.queued_after_flush = ch.queued();
    co_await ch.close_when_done();
}

// Reads nothing for a while (plenty of loop turns), then everything.
task<void> drain_later(coronet::socket peer, channel& ch, backpressure_state& st) {
    for (int i = 0; i < 20; ++i)
        co_await sleep_for(peer.context(), 1ms);
    st.returned_before_drain = st.write_returned;
    st.queued_before_drain = ch.queued();
    auto got = co_await receive_all(std::move(peer));
    st.received = got.bytes.size();
}

task<backpressure_state> backpressure(coronet::socket mine, coronet::socket peer) {
    backpressure_state st;
    channel ch(std::move(mine));
    ch.sock().set_send_buffer(4096);
    ch.set_high_water(high_water, low_water);
    co_await when_all(write_big(ch, st), drain_later(std::move(peer), ch, st));
    co_return st;
}

}  // namespace

TEST_CASE(
    "channel: item 20 write() waits above the high-water mark and resumes once the peer drains",
    "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto st = r.run(backpressure(std::move(a), std::move(b)));
    CHECK(st.small_write_returned);
    CHECK_FALSE(st.returned_before_drain);
    CHECK(st.queued_before_drain > high_water);
    CHECK(st.write_returned);
    CHECK(st.queued_after_write <= low_water);
    CHECK(st.flushed);
    CHECK(st.queued_after_flush == 0);
    CHECK(st.received == 1024 * 1024);
}

namespace {

struct flush_state {
    bool flushed = false;
    bool flushed_before_drain = true;
    std::size_t queued_after_flush = SIZE_MAX;
    std::size_t received = 0;
};

task<void> push_then_flush(channel& ch, flush_state& st) {
    ch.push(pattern(0, 512 * 1024));
    ch.push(simple_producer(pattern(512 * 1024, 512 * 1024), 10000));
    co_await ch.flush();
    st.flushed = true;
    st.queued_after_flush = ch.queued();
    co_await ch.close_when_done();
}

task<void> drain_flush_later(coronet::socket peer, flush_state& st) {
    for (int i = 0; i < 20; ++i)
        co_await sleep_for(peer.context(), 1ms);
    st.flushed_before_drain = st.flushed;
    auto got = co_await receive_all(std::move(peer));
    st.received = got.bytes == pattern(0, 1024 * 1024) ? got.bytes.size() : 0;
}

task<flush_state> flush_waits(coronet::socket mine, coronet::socket peer) {
    flush_state st;
    channel ch(std::move(mine));
    ch.sock().set_send_buffer(4096);
    co_await when_all(push_then_flush(ch, st), drain_flush_later(std::move(peer), st));
    co_return st;
}

}  // namespace

TEST_CASE("channel: flush() waits until everything queued is sent", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto st = r.run(flush_waits(std::move(a), std::move(b)));
    CHECK_FALSE(st.flushed_before_drain);
    CHECK(st.flushed);
    CHECK(st.queued_after_flush == 0);
    CHECK(st.received == 1024 * 1024);
}

// --- C39: no SIGPIPE; a peer going away is an error ----------------------------------

namespace {

task<std::error_code> write_until_failure(channel& ch, std::size_t total) {
    try {
        co_await ch.write(pattern(0, total));
        co_await ch.flush();
    } catch (const std::system_error& e) {
        co_return e.code();
    }
    co_return std::error_code{};
}

task<void> close_soon(coronet::socket peer, bool reset) {
    for (int i = 0; i < 5; ++i)
        co_await sleep_for(peer.context(), 1ms);
    if (reset) set_linger_zero(peer);
    peer.close();
}

struct write_failure {
    std::error_code error;        // what write()/flush() threw
    std::error_code later_flush;  // what a flush() after that throws
    bool closed = false;          // after close_when_done()
};

task<write_failure> write_while_peer_closes(coronet::socket mine, coronet::socket peer,
                                            bool reset) {
    write_failure out;
    channel ch(std::move(mine));
    ch.sock().set_send_buffer(4096);
    auto [ec, unused] = co_await when_all(write_until_failure(ch, 16 * 1024 * 1024),
                                          close_soon(std::move(peer), reset));
    out.error = ec;
    try {
        co_await ch.flush();
    } catch (const std::system_error& e) {
        out.later_flush = e.code();
    }
    // Regression: after a failed send, close_when_done() returned without
    // closing (the sender had stopped, so nothing would ever close it).
    co_await ch.close_when_done();
    out.closed = ch.closed();
    co_return out;
}

task<std::pair<coronet::socket, coronet::socket>> tcp_pair(reactor& r) {
    coronet::socket listener = socket::listen(r, address::parse("127.0.0.1:0"));
    coronet::socket client = co_await socket::connect(r, listener.local_address());
    coronet::socket server = co_await listener.accept();
    server.set_receive_buffer(4096);
    co_return std::pair<coronet::socket, coronet::socket>(std::move(client), std::move(server));
}

}  // namespace

TEST_CASE("channel: C39 a peer closing during a large write is an error and not SIGPIPE",
          "[channel]") {
    // A counting handler, not the default action: a SIGPIPE is counted and
    // reported, whatever the test runner does with signals.
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::testing::sigpipe_counter sigpipes;
    reactor r{{.backend = kind}};
    SECTION("socketpair, peer closes") {
        auto [a, b] = socket::pair(r);
        auto got = r.run(write_while_peer_closes(std::move(a), std::move(b), false));
        INFO("error: " << got.error);
        CHECK((got.error == std::errc::broken_pipe || got.error == std::errc::connection_reset));
        CHECK(got.later_flush == got.error);
        CHECK(got.closed);
    }
    SECTION("TCP, peer resets (SO_LINGER 0)") {
        auto [client, server] = r.run(tcp_pair(r));
        auto got = r.run(write_while_peer_closes(std::move(client), std::move(server), true));
        INFO("error: " << got.error);
        CHECK((got.error == std::errc::broken_pipe || got.error == std::errc::connection_reset));
        CHECK(got.later_flush == got.error);
        CHECK(got.closed);
    }
    CHECK(coronet::testing::sigpipe_count == 0);
    CHECK(r.pending_count() == 0);
}

namespace {

struct reset_read {
    std::optional<std::string> line;
    std::error_code reason;
    bool at_eof = false;
};

task<reset_read> read_until_reset(coronet::socket mine, coronet::socket peer) {
    reset_read out;
    channel ch(std::move(mine));
    co_await send_all(peer, "half a li");
    auto [line, unused] = co_await when_all(line_from(ch, "\n"), close_soon(std::move(peer), true));
    out.line = line;
    out.reason = ch.close_reason();
    out.at_eof = ch.at_eof();
    co_return out;
}

}  // namespace

TEST_CASE("channel: a TCP reset during a read is end of stream with the reason in close_reason()",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [client, server] = r.run(tcp_pair(r));
    auto got = r.run(read_until_reset(std::move(client), std::move(server)));
    CHECK_FALSE(got.line.has_value());
    CHECK(got.at_eof);
    CHECK(got.reason == std::errc::connection_reset);
}

// --- item 11: what push() accepts ------------------------------------------------------

namespace {

template <class T>
concept pushable = requires(channel& ch, T&& v) {
    ch.push(std::forward<T>(v));
};

static_assert(pushable<std::string>);
static_assert(pushable<const std::string&>);
static_assert(pushable<std::string_view>);
static_assert(pushable<const char*>);
static_assert(pushable<const char (&)[6]>);
static_assert(pushable<std::vector<std::byte>&>);
static_assert(pushable<std::span<const std::byte>>);
static_assert(pushable<std::span<std::byte>>);
static_assert(pushable<simple_producer>);
static_assert(pushable<producer>);
static_assert(!pushable<int>);  // push(42) does not compile
static_assert(!pushable<double>);
static_assert(!pushable<std::vector<int>>);
static_assert(!pushable<std::span<const int>>);

task<void> push_every_kind(coronet::socket s) {
    channel ch(std::move(s));
    std::string owned = "string|";
    ch.push(owned);
    ch.push(std::string("moved string|"));
    ch.push(std::string_view("string_view|"));
    const char* c_string = "const char*|";
    ch.push(c_string);
    ch.push("literal|");
    std::vector<std::byte> bytes;
    for (char c : std::string_view("vector<byte>|"))
        bytes.push_back(static_cast<std::byte>(c));
    ch.push(bytes);
    ch.push(std::span<const std::byte>(bytes).first(6));
    ch.push(std::string(20000, 'L'));  // large: queued as its own piece
    co_await ch.write(std::string("|write"));
    co_await ch.write(producer(simple_producer("|producer", 2)));
    ch.push_with_producer(lines_producer({"|lines"}));
    co_await ch.close_when_done();
}

}  // namespace

TEST_CASE("channel: item 11 push accepts string and string_view and const char* and bytes",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto [unused, got] = r.run(when_all(push_every_kind(std::move(a)), receive_all(std::move(b))));
    CHECK((got.bytes == "string|moved string|string_view|const char*|literal|vector<byte>|vector" +
                            std::string(20000, 'L') + "|write|producer|lines\r\n"));
}

// --- input and output at once --------------------------------------------------------

namespace {

task<void> echo_lines(coronet::socket s) {
    channel ch(std::move(s));
    ch.sock().set_send_buffer(4096);
    ch.set_high_water(8192, 2048);
    for (;;) {
        auto line = co_await ch.read_until("\n");
        if (!line || *line == "QUIT") break;
        co_await ch.write(std::string(*line) + "\n");
    }
    co_await ch.close_when_done();
}

task<void> write_lines(channel& ch, const std::vector<std::string>* lines) {
    for (const auto& l : *lines)
        co_await ch.write(l + "\n");
    co_await ch.write("QUIT\n");
}

task<std::vector<std::string>> read_all_lines(channel& ch) {
    std::vector<std::string> out;
    for (;;) {
        auto line = co_await ch.read_until("\n");
        if (!line) break;
        out.emplace_back(*line);
    }
    co_return out;
}

task<std::vector<std::string>> echo_client(coronet::socket s,
                                           const std::vector<std::string>* lines) {
    channel ch(std::move(s), {.recv_size = 1000});
    ch.sock().set_send_buffer(4096);
    ch.set_high_water(8192, 2048);
    auto [unused, got] = co_await when_all(write_lines(ch, lines), read_all_lines(ch));
    co_return got;
}

}  // namespace

TEST_CASE("channel: reads and writes run at once on one channel (a line echo)", "[channel]") {
    // Both ends read and write concurrently through small buffers with
    // backpressure on: 20,000 lines go out and come back intact and in order.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::mt19937 rng(2027);
    std::vector<std::string> lines;
    std::size_t offset = 0;
    for (int i = 0; i < 20000; ++i) {
        std::size_t n = rng() % 200;
        lines.push_back(pattern(offset, n));
        offset += n;
    }
    auto [a, b] = socket::pair(r);
    auto [got, unused] =
        r.run(when_all(echo_client(std::move(a), &lines), echo_lines(std::move(b))));
    CHECK(got.size() == lines.size());
    CHECK((got == lines));
}

// --- closing and destroying with operations pending ----------------------------------

namespace {

struct close_during_read {
    std::optional<std::string> line;
    bool closed = false;
    std::optional<std::string> rest, after_rest;
};

task<void> close_after_turns(channel& ch) {
    for (int i = 0; i < 5; ++i)
        co_await sleep_for(ch.context(), 1ms);
    ch.close();
}

task<close_during_read> close_while_reading(coronet::socket mine, coronet::socket peer,
                                            bool partial) {
    close_during_read out;
    channel ch(std::move(mine));
    if (partial) co_await send_all(peer, "abc");
    auto [line, unused] = co_await when_all(line_from(ch, "\n"), close_after_turns(ch));
    out.line = line;
    out.closed = ch.closed();
    out.rest = own(co_await ch.read_some());
    out.after_rest = own(co_await ch.read_some());
    co_return out;  // peer stayed open all along: the end of stream came from close()
}

}  // namespace

TEST_CASE("channel: close() ends a read pending in another coroutine with end of stream",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("nothing received") {
        auto [a, b] = socket::pair(r);
        auto got = r.run(close_while_reading(std::move(a), std::move(b), false));
        CHECK_FALSE(got.line.has_value());
        CHECK(got.closed);
        CHECK_FALSE(got.rest.has_value());
    }
    SECTION("a partial line received") {
        auto [a, b] = socket::pair(r);
        auto got = r.run(close_while_reading(std::move(a), std::move(b), true));
        CHECK_FALSE(got.line.has_value());
        CHECK(got.closed);
        CHECK(got.rest == "abc");
        CHECK_FALSE(got.after_rest.has_value());
    }
    CHECK(r.pending_count() == 0);
    CHECK(r.channel_count() == 0);
}

namespace {

// The channel dies with its background send parked on a full socket.
task<std::size_t> abandon_pending_send(coronet::socket s, channel_options options) {
    channel ch(std::move(s), options);
    ch.sock().set_send_buffer(4096);
    ch.push(std::string(4 * 1024 * 1024, 'd'));
    ch.push(simple_producer(std::string(100000, 'd'), 1000));
    for (int i = 0; i < 5; ++i)
        co_await sleep_for(ch.context(), 1ms);
    co_return ch.queued();
}

// Reads nothing for a while, then everything until end of stream.
task<received> receive_after(reactor& r, coronet::socket s, std::chrono::milliseconds pause) {
    co_await sleep_for(r, pause);
    co_return co_await receive_all(std::move(s));
}

}  // namespace

TEST_CASE("channel: a channel destroyed with output queued sends it all, then closes", "[channel]") {
    // The handler returned with 4 MiB still queued behind a full socket: the
    // channel lingers in the background, so the peer still gets every byte.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    std::size_t queued = r.run(abandon_pending_send(std::move(a), {}));
    CHECK(queued > 0);
    CHECK(r.task_count() == 1);  // the lingering channel
    auto got = r.run(receive_all(std::move(b)));
    CHECK(got.bytes.size() == 4 * 1024 * 1024 + 100000);
    CHECK(got.bytes.find_first_not_of('d') == std::string::npos);
    r.run();  // the linger task ends once the channel has closed
    CHECK(r.task_count() == 0);
    CHECK(r.pending_count() == 0);
    CHECK(r.channel_count() == 0);
}

TEST_CASE("channel: destroying a channel while its send is pending is clean", "[channel]") {
    // Run under --config=asan: when the linger time runs out, the send the
    // kernel (or io_uring) still holds must be finished before the queued
    // pieces are freed.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    std::size_t queued = r.run(abandon_pending_send(std::move(a), {.linger = 20ms}));
    CHECK(queued > 0);
    // The peer does not read until the linger time is over: it gets what got
    // through, then end of stream; the loop works on.
    auto got = r.run(receive_after(r, std::move(b), 200ms));
    CHECK(got.bytes.size() < 4 * 1024 * 1024);
    CHECK(got.bytes.find_first_not_of('d') == std::string::npos);
    CHECK(r.task_count() == 0);
    CHECK(r.pending_count() == 0);
    CHECK(r.channel_count() == 0);
}

namespace {

// Writes far more than a silent peer's buffers take, under a deadline.
task<std::error_code> write_to_silent_peer(channel ch, int which) {
    ch.set_high_water(64 * 1024, 16 * 1024);
    ch.sock().set_send_buffer(4096);
    std::error_code ec;
    try {
        if (which == 0) {
            co_await with_timeout(ch.context(), ch.write(std::string(1024 * 1024, 'w')), 50ms);
        } else {
            ch.push(std::string(1024 * 1024, 'f'));
            co_await with_timeout(ch.context(), ch.flush(), 50ms);
        }
    } catch (const std::system_error& e) {
        ec = e.code();
    }
    ch.close();  // a slow client is dropped
    co_return ec;
}

}  // namespace

TEST_CASE("channel: with_timeout cuts short a write() or flush() blocked by a silent peer",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (int which : {0, 1}) {
        INFO((which == 0 ? "write()" : "flush()"));
        auto [a, b] = socket::pair(r);
        auto ec = r.run(write_to_silent_peer(channel(std::move(a)), which));
        CHECK(ec == coronet::errc::timed_out);
        r.run();
        CHECK(r.pending_count() == 0);
        CHECK(r.task_count() == 0);
    }
}

namespace {

task<std::size_t> push_after_failure(coronet::socket s, coronet::socket peer) {
    channel ch(std::move(s));
    peer.close();  // the peer is gone: the next send fails
    ch.push("first");
    std::error_code ec;
    try {
        co_await ch.flush();
    } catch (const std::system_error& e) {
        ec = e.code();
    }
    CHECK(is_disconnect(ec));
    ch.push(std::string(1024 * 1024, 'x'));  // dropped: the output side has failed
    co_return ch.queued();
}

}  // namespace

TEST_CASE("channel: after a failed send, pushes are dropped, not piled up", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    CHECK(r.run(push_after_failure(std::move(a), std::move(b))) == 0);
}

namespace {

// A peer that sends half a line, then nothing: the read gives up at the deadline.
task<std::string> read_with_deadline(channel ch, coronet::socket peer) {
    co_await send_all(peer, std::string_view("GET / HT"));
    ch.set_read_deadline(reactor::clock::now() + 50ms);
    std::string out;
    try {
        auto line = co_await ch.read_until("\r\n");
        out = line ? "line" : "eof";
    } catch (const std::system_error& e) {
        out = e.code() == coronet::errc::timed_out ? "timed_out" : e.what();
    }
    // Every byte stays: the rest of the line arrives, and with no deadline it completes.
    ch.clear_read_deadline();
    co_await send_all(peer, std::string_view("TP/1.1\r\n"));
    auto line = co_await ch.read_until("\r\n");
    out += line ? " then " + std::string(*line) : " then eof";
    co_return out;
}

}  // namespace

TEST_CASE("channel: a read deadline gives up with timed_out and keeps every byte", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto start = reactor::clock::now();
    CHECK(r.run(read_with_deadline(channel(std::move(a)), std::move(b))) ==
          "timed_out then GET / HTTP/1.1");
    CHECK(reactor::clock::now() - start >= 50ms);
    CHECK(r.pending_count() == 0);
}

namespace {

// Reads lines under a long deadline until the stream ends; `waiting` counts reads begun.
task<void> read_forever(channel& ch, int* waiting) {
    for (;;) {
        ch.set_read_deadline(reactor::clock::now() + 30s);
        ++*waiting;
        auto line = co_await ch.read_until("\n");
        if (!line) co_return;
    }
}

task<void> own_and_read_forever(coronet::socket s, int* waiting) {
    channel ch(std::move(s));
    co_await read_forever(ch, waiting);
}

}  // namespace

TEST_CASE("channel: a reader destroyed while its read waits abandons the receive and the deadline",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    SECTION("the channel lives in the reader's frame") {
        int waiting = 0;
        {
            reactor r{{.backend = kind}};
            auto [a, b] = socket::pair(r);
            spawn(r, own_and_read_forever(std::move(a), &waiting), "reader");
            r.run_for(20ms);
            REQUIRE(waiting == 1);
            CHECK(r.pending_count() == 2);  // the receive and the deadline
            // the reactor dies with the reader suspended: its frame, then the channel, go
        }
        CHECK(waiting == 1);
    }
    SECTION("the channel dies first, then the reader") {
        int waiting = 0;
        reactor r{{.backend = kind}};
        auto [a, b] = socket::pair(r);
        {
            channel ch(std::move(a));
            spawn(r, read_forever(ch, &waiting), "reader");
            r.run_for(20ms);
            REQUIRE(waiting == 1);
            CHECK(r.pending_count() == 2);
        }
        // The channel took its receive and its timer with it; the reader is never resumed.
        CHECK(r.pending_count() == 0);
        CHECK(r.buffers_in_use() == 0);
        CHECK(r.task_count() == 1);
    }
}

namespace {

// Three reads under deadlines: answered at once, answered over two receives
// 30 ms apart (the timer stays armed across them), and one that times out.
task<std::string> deadlines_move(reactor& r, channel ch, coronet::socket peer) {
    std::string out;
    ch.set_read_deadline(reactor::clock::now() + 10s);
    co_await send_all(peer, std::string_view("one\n"));
    out += own(co_await ch.read_until("\n")).value_or("eof");
    ch.set_read_deadline(reactor::clock::now() + 5s);
    co_await when_all(
        [](channel& c, std::string* o) -> task<void> {
            *o += "," + own(co_await c.read_until("\n")).value_or("eof");
        }(ch, &out),
        [](reactor& r, coronet::socket& p) -> task<void> {
            co_await send_all(p, std::string_view("tw"));
            co_await sleep_for(r, 30ms);
            co_await send_all(p, std::string_view("o\n"));
        }(r, peer));
    ch.set_read_deadline(reactor::clock::now() + 20ms);
    try {
        (void)co_await ch.read_until("\n");
        out += ",no timeout";
    } catch (const std::system_error& e) {
        out += e.code() == coronet::errc::timed_out ? ",timed_out" : std::string(",") + e.what();
    }
    co_return out;
}

}  // namespace

TEST_CASE("channel: each waiting read arms the channel's one deadline timer and disarms it after",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    CHECK(r.run(deadlines_move(r, channel(std::move(a)), std::move(b))) == "one,two,timed_out");
    CHECK(r.pending_count() == 0);
}

namespace {

task<std::string> second_reader(channel& ch) {
    try {
        (void)co_await ch.read_some();
        co_return "read";
    } catch (const std::logic_error&) {
        co_return "refused";
    }
}

task<std::string> two_readers(reactor& r, channel& ch, coronet::socket& peer) {
    std::string first;
    auto reader = [](channel& c, std::string* out) -> task<void> { *out = own(co_await c.read_until("\n")).value_or("eof"); };
    auto second = [](reactor& r, channel& c, coronet::socket& p, std::string* out) -> task<void> {
        co_await sleep_for(r, 5ms);  // the first read waits by now
        std::string got = co_await second_reader(c);
        co_await send_all(p, std::string_view("line\n"));
        *out = got;
    };
    std::string refused;
    co_await when_all(reader(ch, &first), second(r, ch, peer, &refused));
    co_return first + "," + refused;
}

}  // namespace

TEST_CASE("channel: a second read while one waits is refused, and the first still gets its line",
          "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    channel ch(std::move(a));
    CHECK(r.run(two_readers(r, ch, b)) == "line,refused");
}

// --- provided buffers: no receive memory while idle ----------------------------------

namespace {

struct idle_report {
    std::size_t capacity_idle = 1, blocks_idle = 1;       // waiting with nothing unread
    std::size_t capacity_partial = 0;                     // waiting with "y" unread
    std::size_t capacity_idle_again = 1, blocks_idle_again = 1;
    std::vector<std::optional<std::string>> lines;
};

// Lets the reader reach its wait (it has nothing to read, so it must be there after a few turns).
task<void> turns(reactor& r, int n) {
    for (int i = 0; i < n; ++i)
        co_await sleep_for(r, 1ms);
}

task<void> read_lines_into(channel& ch, std::vector<std::optional<std::string>>* out, int count) {
    for (int i = 0; i < count; ++i)
        out->push_back(own(co_await ch.read_until("\n")));
}

task<void> feed_and_watch(reactor& r, channel& ch, coronet::socket& peer, idle_report* rep) {
    co_await send_all(peer, "hello\n");
    co_await turns(r, 5);
    rep->capacity_idle = ch.buffer_capacity();
    rep->blocks_idle = r.buffers_in_use();
    co_await send_all(peer, "x\ny");
    co_await turns(r, 5);
    rep->capacity_partial = ch.buffer_capacity();
    co_await send_all(peer, "\n");
    co_await turns(r, 5);
    rep->capacity_idle_again = ch.buffer_capacity();
    rep->blocks_idle_again = r.buffers_in_use();
    co_await send_all(peer, "last\n");
}

task<idle_report> idle_channel(reactor& r, coronet::socket mine, coronet::socket peer) {
    idle_report rep;
    channel ch(std::move(mine));
    co_await when_all(read_lines_into(ch, &rep.lines, 4), feed_and_watch(r, ch, peer, &rep));
    co_return rep;
}

}  // namespace

TEST_CASE("channel: a channel waiting with nothing unread holds no receive buffer", "[channel]") {
    // The idle-connection cost: between requests a channel owns no input
    // buffer and no provided block; only unread bytes (a partial line) are kept.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto rep = r.run(idle_channel(r, std::move(a), std::move(b)));
    CHECK(rep.capacity_idle == 0);
    CHECK(rep.blocks_idle == 0);
    CHECK(rep.capacity_partial > 0);
    CHECK(rep.capacity_idle_again == 0);
    CHECK(rep.blocks_idle_again == 0);
    REQUIRE(rep.lines.size() == 4);
    CHECK(rep.lines[0] == "hello");
    CHECK(rep.lines[1] == "x");
    CHECK(rep.lines[2] == "y");
    CHECK(rep.lines[3] == "last");
    CHECK(r.buffers_in_use() == 0);
}

namespace {

// Lines of pattern bytes, `count` of them, up to max_len long each.
std::vector<std::string> pattern_lines(std::uint32_t seed, int count, std::size_t max_len) {
    std::mt19937 rng(seed);
    std::vector<std::string> lines;
    std::size_t offset = 0;
    for (int i = 0; i < count; ++i) {
        std::size_t n = rng() % (max_len + 1);
        lines.push_back(pattern(offset, n));
        offset += n;
    }
    return lines;
}

task<void> collect_lines(channel ch, std::vector<std::string>* out) {
    for (;;) {
        auto line = co_await ch.read_until("\n");
        if (!line) break;
        out->emplace_back(*line);
    }
}

task<void> send_lines(coronet::socket s, const std::vector<std::string>* lines) {
    co_await send_all(s, join_lines(*lines, "\n"));
}

}  // namespace

TEST_CASE("channel: with more connections than provided buffers every byte arrives in order",
          "[channel]") {
    // Ring exhaustion: 40 connections receive at once from a reactor with one
    // or two provided blocks. A receive that finds every block out (ENOBUFS)
    // falls back to the channel's own buffer; nothing is lost or reordered.
    CORONET_FOR_EACH_BACKEND(kind);
    unsigned blocks = GENERATE(1u, 2u);
    INFO("provided buffers: " << blocks);
    reactor r{{.backend = kind, .provided_buffers = blocks, .provided_buffer_size = 256}};
    constexpr int conns = 40;
    std::vector<std::vector<std::string>> sent, got(conns);
    for (int i = 0; i < conns; ++i)
        sent.push_back(pattern_lines(100 + i, 150, 700));
    for (int i = 0; i < conns; ++i) {
        auto [a, b] = socket::pair(r);
        spawn(r, collect_lines(channel(std::move(a)), &got[i]), "reader");
        spawn(r, send_lines(std::move(b), &sent[i]), "writer");
    }
    r.run();
    for (int i = 0; i < conns; ++i) {
        INFO("connection " << i);
        CHECK(got[i].size() == sent[i].size());
        CHECK((got[i] == sent[i]));
    }
    CHECK(r.buffers_in_use() == 0);
    CHECK(r.task_count() == 0);
}

TEST_CASE("channel: a large pipelined input split across many provided buffers", "[channel]") {
    // 2 MiB of lines up to 5,000 bytes, sent in one go: lines span many
    // provided blocks, the leftover of each block is copied, every line is whole.
    CORONET_FOR_EACH_BACKEND(kind);
    std::size_t block = GENERATE(std::size_t(512), std::size_t(16 * 1024));
    INFO("provided buffer size: " << block);
    reactor r{{.backend = kind, .provided_buffers = 8, .provided_buffer_size = block}};
    auto lines = pattern_lines(7, 800, 5000);
    std::vector<std::string> got;
    auto [a, b] = socket::pair(r);
    spawn(r, collect_lines(channel(std::move(a)), &got), "reader");
    spawn(r, send_lines(std::move(b), &lines), "writer");
    r.run();
    CHECK(got.size() == lines.size());
    CHECK((got == lines));
    CHECK(r.buffers_in_use() == 0);
}

namespace {

// Reads one line, so the rest of the block stays unread in the channel, then
// reports the blocks out before the channel dies.
task<std::size_t> read_one_and_drop(reactor& r, coronet::socket mine, coronet::socket peer) {
    std::size_t held = 0;
    {
        channel ch(std::move(mine));
        co_await send_all(peer, "first\nsecond\nthi");
        auto line = co_await ch.read_until("\n");
        REQUIRE(line == "first");
        held = r.buffers_in_use();
        REQUIRE(ch.buffered() > 0);
    }
    co_return held;
}

// A reader whose receive is pending when its channel is closed.
task<std::optional<std::string>> read_pending(channel* ch) {
    co_return own(co_await ch->read_until("\n"));
}

task<void> close_soon(reactor& r, channel* ch) {
    co_await turns(r, 5);
    ch->close();
}

}  // namespace

TEST_CASE("channel: a channel that dies or closes gives its provided buffer back", "[channel]") {
    // Run under --config=asan: the block the unread bytes sit in goes back to
    // the reactor with the channel, and a pending receive holds none.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind, .provided_buffers = 4}};
    SECTION("destroyed with unread bytes in a provided block") {
        auto [a, b] = socket::pair(r);
        std::size_t held = r.run(read_one_and_drop(r, std::move(a), std::move(b)));
        CHECK(held == 1);  // the block the three lines arrived in
        CHECK(r.buffers_in_use() == 0);
    }
    SECTION("closed while its receive is pending") {
        auto [a, b] = socket::pair(r);
        channel ch(std::move(a));
        auto [line, unused] = r.run(when_all(read_pending(&ch), close_soon(r, &ch)));
        CHECK_FALSE(line.has_value());
        CHECK(ch.buffer_capacity() == 0);
        CHECK(r.buffers_in_use() == 0);
    }
    SECTION("a spawned reader destroyed with the reactor's tasks") {
        auto [a, b] = socket::pair(r);
        std::vector<std::string> got;
        spawn(r, collect_lines(channel(std::move(a)), &got), "reader");
        r.run_for(5ms);
        CHECK(r.task_count() == 1);
        CHECK(r.buffers_in_use() == 0);
    }
    CHECK(r.buffers_in_use() == 0);
}

// --- zero-copy files --------------------------------------------------------------

namespace {

// A file holding `content`, open read-only and already unlinked; the caller
// owns the descriptor.
int file_with(const std::string& content) {
    std::string dir = "/tmp";
    if (const char* t = std::getenv("TEST_TMPDIR")) dir = t;
    std::string path = dir + "/channel-file-XXXXXX";
    int w = ::mkstemp(path.data());
    REQUIRE(w >= 0);
    REQUIRE(::write(w, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(w);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ::unlink(path.c_str());
    REQUIRE(fd >= 0);
    return fd;
}

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

task<channel::send_counters> send_file_between(coronet::socket s, int fd, std::size_t send_buffer) {
    channel ch(std::move(s));
    ch.sock().set_send_buffer(static_cast<int>(send_buffer));
    ch.push("HTTP/1.1 200 OK\r\n\r\n");
    ch.push(file_producer(fd));
    ch.push("|after the file|");
    co_await ch.close_when_done();
    co_return ch.sent();
}

}  // namespace

TEST_CASE("channel: a large file producer goes by sendfile, in order with the pieces around it",
          "[channel][sendfile]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::size_t size = GENERATE(std::size_t{5u << 20} + 777, std::size_t{128 * 1024 + 1});
    INFO("file size " << size);
    const std::string content = pattern(3, size);
    int fd = file_with(content);
    auto [client, server] = r.run(tcp_pair(r));
    auto [counters, got] =
        r.run(when_all(send_file_between(std::move(server), fd, 16 * 1024), receive_all(std::move(client))));
    const std::string expected = "HTTP/1.1 200 OK\r\n\r\n" + content + "|after the file|";
    REQUIRE(got.bytes.size() == expected.size());
    REQUIRE(got.bytes == expected);
    CHECK(counters.bytes == expected.size());
    // The head leaves gathered with the file's first 64 KiB (read); the rest
    // but a tail of under 64 KiB goes from the page cache.
    CHECK(counters.file_bytes > 0);
    CHECK(counters.file_bytes <= size - 64 * 1024);
    CHECK(counters.file_bytes + 2 * 64 * 1024 >= size);
    CHECK_FALSE(fd_is_open(fd));  // the producer closed it at the end
    CHECK(r.pending_count() == 0);
}

TEST_CASE("channel: a file under 64 KiB is read and gathered with its neighbours, not sent by sendfile",
          "[channel][sendfile]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::string content = pattern(0, 60000);
    int fd = file_with(content);
    auto [client, server] = r.run(tcp_pair(r));
    auto [counters, got] =
        r.run(when_all(send_file_between(std::move(server), fd, 1 << 20), receive_all(std::move(client))));
    REQUIRE(got.bytes == "HTTP/1.1 200 OK\r\n\r\n" + content + "|after the file|");
    CHECK(counters.file_bytes == 0);
    CHECK(counters.sends == 1);  // head, file and tail in one gathered send
}

namespace {

struct closed_mid_file {
    std::uint64_t file_bytes = 0;
    std::size_t pending_after_close = 1;
};

// Pushes a file far larger than the socket buffers to a peer that never reads,
// then closes the channel while its sendfile waits for room.
task<closed_mid_file> close_during_sendfile(reactor& r, coronet::socket s, int fd) {
    closed_mid_file out;
    channel ch(std::move(s));
    ch.push(file_producer(fd));
    co_await sleep_for(r, 50ms);
    out.file_bytes = ch.sent().file_bytes;
    ch.close();
    co_await sleep_for(r, 10ms);  // the cancelled wait completes
    out.pending_after_close = r.pending_count();
    co_return out;
}

}  // namespace

TEST_CASE("channel: closing a channel while a sendfile waits cancels it and closes the file",
          "[channel][sendfile]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int fd = file_with(pattern(0, 64u << 20));
    auto [client, server] = r.run(tcp_pair(r));
    closed_mid_file out = r.run(close_during_sendfile(r, std::move(server), fd));
    CHECK(out.file_bytes > 0);             // it had started, and filled the socket buffers
    CHECK(out.file_bytes < (64u << 20));   // ... without the peer reading
    CHECK(out.pending_after_close == 0);   // only sleep_for's timer was pending, and it finished
    CHECK_FALSE(fd_is_open(fd));           // the producer went with the dropped output
    client.close();
}
