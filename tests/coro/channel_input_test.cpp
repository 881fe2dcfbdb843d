// tests/coro/channel_input_test.cpp:
// coro/channel.hpp input over socket pairs: read_until, read_exactly and read_some over
// any chunking, end of stream, cancelled reads, line and buffer limits, and the
// channel against a reference splitter on random input.
//
// Every test runs on every backend (io_uring, epoll, select) over a Unix
// socketpair unless TCP is the subject. Tags name the item of the asynchat
// conformance checklist a case checks ([B21]..[B26] input; [C27], [C38],
// [C39] and [item10], [item11], [item19], [item20] output and limits).
// Every co_await is bound, never tested (the README's GCC 12 rule).
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
#include "tests/support/channel_sockets.hpp"
#include "tests/support/sigpipe_counter.hpp"

using namespace coronet;
using namespace std::chrono_literals;
using namespace coronet::testing;

// --- B21: read_until over any chunking ---------------------------------------------

TEST_CASE("channel: read_until returns the lines for 1- 2- and 3-byte receives", "[channel][B21]") {
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

TEST_CASE("channel: read_until with a one-byte receive size finds every terminator",
          "[channel][B21]") {
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
    "channel: read_until returns the lines for every split point including inside terminators",
    "[channel][B21]") {
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

TEST_CASE("channel: read_until returns the lines for random chunkings", "[channel][B21]") {
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

TEST_CASE("channel: read_exactly uses buffered bytes first and returns a large count whole",
          "[channel][B22]") {
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

TEST_CASE("channel: read_some returns what is buffered or else the next receive",
          "[channel][B23]") {
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

TEST_CASE("channel: read_until read_exactly read_until over one receive of $5 hello +OK",
          "[channel][B24]") {
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

TEST_CASE("channel: at end of stream read_until returns nullopt and read_some the tail",
          "[channel][B25]") {
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

TEST_CASE("channel: EOF mid-line keeps the partial line for read_some (the documented choice)",
          "[channel][B25]") {
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

TEST_CASE("channel: a read cancelled by with_timeout leaves every received byte for the next read",
          "[channel][B26]") {
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

TEST_CASE("channel: a line longer than max_line is line_too_long and memory stays bounded",
          "[channel][item19]") {
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

TEST_CASE("channel: a line of exactly max_line is accepted and one byte more is not",
          "[channel][item19]") {
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

TEST_CASE("channel: random reads match a reference splitter for random chunkings",
          "[channel][B21-B24]") {
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
