// tests/coro/channel_memory_test.cpp: coro/channel.hpp over the in-memory
// transport (lib/memory_transport.hpp).
//
// Every test runs on every backend. Over the memory pair each write() of the
// test arrives as one receive of its own, so the input conformance cases of
// the asynchat conformance checklist (tags [B21]..[B26], [item19]) split their
// input exactly where they say, with no waiting for the kernel to drain
// (channel_input_test.cpp keeps the same cases over sockets). Output cases (C27, backpressure,
// close_when_done) read with the pair's own controls; a capacity makes the peer a slow reader.
// Every co_await is bound, never tested (the README's GCC 12 rule).
#include <coronet/coro/channel.hpp>

#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGIFICATION
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <coronet/coro/producer.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/memory_transport.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/channel_data.hpp"

using namespace coronet;
using namespace std::chrono_literals;
using namespace coronet::testing;

namespace {

// Gives the reactor one turn.
task<void> one_turn(reactor& r) { co_await sleep_for(r, 0ms); }

struct lines_and_tail {
    std::vector<std::string> lines;
    std::string tail;  // what read_some() returned after read_until() saw the end of stream
    bool operator==(const lines_and_tail&) const = default;
};

task<lines_and_tail> read_lines(channel& ch, std::string term) {
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

// A channel over one end; `pieces` written to it from the other, each its own
// receive, then a half-close; what read_lines() makes of it.
lines_and_tail lines_from_pieces(reactor& r, const std::vector<std::string>& pieces,
                                 std::string term, channel_options options = {}) {
    auto [mine, peer] = memory_transport::pair(r);
    for (const auto& p : pieces)
        peer->write(p);
    peer->shutdown_send();
    channel ch(std::move(mine), options);
    return r.run(read_lines(ch, std::move(term)));
}

// Reads what a channel sends, as a slow reader: one read_all() per turn, until
// the channel's end is done. The most it ever held unread is kept.
task<std::string> drain_slowly(reactor& r, memory_transport& peer, std::size_t* most_unread) {
    std::string all;
    while (!(peer.peer_done() && peer.unread() == 0)) {
        co_await one_turn(r);
        if (most_unread) *most_unread = std::max(*most_unread, peer.unread());
        all += peer.read_all();
    }
    co_return all;
}

}  // namespace

// --- the README's example ------------------------------------------------------------

namespace {

// A protocol handler: answers each line with its length, then closes.
task<void> line_lengths(channel ch) {
    for (;;) {
        auto line = co_await ch.read_until("\r\n");
        if (!line) break;
        co_await ch.write(std::to_string(line->size()) + "\r\n");
    }
    co_await ch.close_when_done();
}

}  // namespace

TEST_CASE("channel: in memory, a handler tested without sockets (the README's example)",
          "[channel][memory]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    peer->write("hello\r\nwor");  // each write is one receive: split where the test says
    peer->write("ld!\r\n");
    peer->shutdown_send();  // the client is done: end of stream after the pieces
    r.run(line_lengths(channel(std::move(mine))));
    CHECK(peer->read_all() == "5\r\n6\r\n");
    CHECK(peer->peer_done());  // the handler closed its end
}

// --- B21: read_until, split exactly -------------------------------------------------

TEST_CASE("channel: in memory, an HTTP request head split at every position is read whole",
          "[channel][memory][B21]") {
    // "GET / HT" then "TP/1.1\r\n...": every 2-piece split of the head,
    // including between the '\r' and the '\n' of each terminator.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::string head = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    const lines_and_tail expected{{"GET / HTTP/1.1", "Host: example", ""}, ""};
    for (std::size_t p = 1; p < head.size(); ++p) {
        INFO("pieces \"" << printable(head.substr(0, p)) << "\" and \"" << printable(head.substr(p))
                         << "\"");
        CHECK(lines_from_pieces(r, {head.substr(0, p), head.substr(p)}, "\r\n") == expected);
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE(
    "channel: in memory, read_until finds terminators split at every position, in "
    "2 and 3 pieces",
    "[channel][memory][B21]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (const auto& term : terminators) {
        const std::string stream = join_lines(classic_lines, term);
        const lines_and_tail expected{classic_lines, ""};
        for (std::size_t i = 1; i < stream.size(); ++i) {
            INFO("terminator \"" << printable(term) << "\", cut at " << i);
            CHECK(lines_from_pieces(r, {stream.substr(0, i), stream.substr(i)}, term) == expected);
            // Every 3-piece split that cuts inside a terminator twice.
            for (std::size_t j = i + 1; j < stream.size() && j - i < term.size(); ++j) {
                INFO("and at " << j);
                CHECK(lines_from_pieces(
                          r, {stream.substr(0, i), stream.substr(i, j - i), stream.substr(j)},
                          term) == expected);
            }
        }
        INFO("terminator \"" << printable(term) << "\", 1-byte pieces");
        std::vector<std::string> bytes;
        for (char c : stream)
            bytes.emplace_back(1, c);
        CHECK(lines_from_pieces(r, bytes, term) == expected);
    }
}

// --- B22-B25 ----------------------------------------------------------------------

TEST_CASE("channel: in memory, read_exactly takes buffered bytes first and spans pieces",
          "[channel][memory][B22]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::size_t total = 300 * 1024;
    const std::string payload = pattern(0, total);
    auto [mine, peer] = memory_transport::pair(r);
    peer->write("hdr\n" + payload.substr(0, 100));
    for (std::size_t from = 100; from < total; from += 7000)
        peer->write(payload.substr(from, 7000));
    peer->shutdown_send();
    channel ch(std::move(mine));
    auto run = [&]() -> task<void> {
        {
            auto v = own(co_await ch.read_until("\n"));
            CHECK(v == "hdr");
        }
        CHECK(ch.buffered() == 100);  // the rest of the first piece, and no more
        {
            auto v = own(co_await ch.read_exactly(60));
            CHECK(v == payload.substr(0, 60));
        }
        CHECK(ch.buffered() == 40);
        auto big = own(co_await ch.read_exactly(total - 60));
        REQUIRE(big.has_value());
        CHECK(big->size() == total - 60);
        CHECK((*big == payload.substr(60)));
        {
            auto v = own(co_await ch.read_exactly(1));
            CHECK_FALSE(v.has_value());
        }
    };
    r.run(run());
}

TEST_CASE("channel: in memory, read_some returns what is buffered or else the next piece",
          "[channel][memory][B23]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    peer->write("abcdef");
    peer->write("xyz");
    channel ch(std::move(mine));
    auto run = [&]() -> task<void> {
        {
            auto v = own(co_await ch.read_some(3));
            CHECK(v == "abc");
        }
        CHECK(ch.buffered() == 3);
        {
            auto v = own(co_await ch.read_some());
            CHECK(v == "def");
        }
        CHECK(ch.buffered() == 0);
        {
            auto v = own(co_await ch.read_some());
            CHECK(v == "xyz");  // one piece, not joined with "def"
        }
        peer->write("late");  // a read that waits gets the next piece
        {
            auto v = own(co_await ch.read_some());
            CHECK(v == "late");
        }
        peer->shutdown_send();
        {
            auto v = own(co_await ch.read_some());
            CHECK_FALSE(v.has_value());
        }
    };
    r.run(run());
}

TEST_CASE("channel: in memory, pipelined requests in one piece are read one by one",
          "[channel][memory][B24]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("RESP: $5 hello +OK") {
        auto [mine, peer] = memory_transport::pair(r);
        peer->write("$5\r\nhello\r\n+OK\r\n");
        peer->shutdown_send();
        channel ch(std::move(mine));
        auto run = [&]() -> task<std::vector<std::optional<std::string>>> {
            std::vector<std::optional<std::string>> out;
            out.push_back(own(co_await ch.read_until("\r\n")));
            out.push_back(own(co_await ch.read_exactly(5)));
            out.push_back(own(co_await ch.read_until("\r\n")));
            out.push_back(own(co_await ch.read_until("\r\n")));
            out.push_back(own(co_await ch.read_until("\r\n")));
            co_return out;
        };
        CHECK(r.run(run()) ==
              std::vector<std::optional<std::string>>{"$5", "hello", "", "+OK", std::nullopt});
    }
    SECTION("three HTTP requests, one with a body") {
        auto [mine, peer] = memory_transport::pair(r);
        peer->write(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            "GET /c HTTP/1.1\r\n\r\n");
        channel ch(std::move(mine));
        auto run = [&]() -> task<std::vector<std::string>> {
            std::vector<std::string> out;
            for (int i = 0; i < 3; ++i) {
                auto head = own(co_await ch.read_until("\r\n\r\n"));
                REQUIRE(head.has_value());
                out.push_back(*head);
                if (head->find("Content-Length: 5") != std::string::npos)
                    out.push_back(*own(co_await ch.read_exactly(5)));
            }
            CHECK(ch.buffered() == 0);
            co_return out;
        };
        CHECK(r.run(run()) == std::vector<std::string>{"GET /a HTTP/1.1\r\nHost: x",
                                                       "POST /b HTTP/1.1\r\nContent-Length: 5",
                                                       "hello", "GET /c HTTP/1.1"});
    }
}

TEST_CASE("channel: in memory, a half-close is nullopt and the tail stays readable by read_some",
          "[channel][memory][B25]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    peer->write("line1\r\nline2\r\nta");
    peer->write("il");
    peer->shutdown_send();
    channel ch(std::move(mine));
    auto run = [&]() -> task<void> {
        {
            auto v = own(co_await ch.read_until("\r\n"));
            CHECK(v == "line1");
        }
        {
            auto v = own(co_await ch.read_until("\r\n"));
            CHECK(v == "line2");
        }
        {
            auto v = own(co_await ch.read_until("\r\n"));
            CHECK_FALSE(v.has_value());
        }
        CHECK(ch.at_eof());
        CHECK(ch.close_reason() == std::error_code{});  // a clean end of stream
        {
            auto v = own(co_await ch.read_exactly(100));
            CHECK_FALSE(v.has_value());
        }
        CHECK(ch.buffered() == 4);  // the failed read_exactly took nothing
        {
            auto v = own(co_await ch.read_some());
            CHECK(v == "tail");
        }
        {
            auto v = own(co_await ch.read_some());
            CHECK_FALSE(v.has_value());
        }
        // Half-closed only: the channel still sends, and the peer reads it.
        co_await ch.write("bye\r\n");
        co_await ch.flush();
    };
    r.run(run());
    CHECK(peer->read_all() == "bye\r\n");
}

TEST_CASE("channel: in memory, a reset peer is end of stream with ECONNRESET in close_reason()",
          "[channel][memory]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    peer->write("first\n");
    channel ch(std::move(mine));
    auto resetter = [&]() -> task<void> {
        co_await one_turn(r);
        peer->reset();
    };
    auto reader = [&]() -> task<void> {
        {
            auto v = own(co_await ch.read_until("\n"));
            CHECK(v == "first");
        }
        {
            auto v = own(co_await ch.read_until("\n"));  // waits, then the reset
            CHECK_FALSE(v.has_value());
        }
        CHECK(ch.at_eof());
        CHECK(ch.close_reason() == std::error_code(ECONNRESET, std::system_category()));
    };
    r.run(when_all(reader(), resetter()));
    CHECK(r.pending_count() == 0);
}

// --- B26 and limits -----------------------------------------------------------------

namespace {

// A read_until (or read_exactly when n > 0) that may give up: its error, if any.
task<std::error_code> read_failing(channel& ch, std::size_t n = 0) {
    try {
        if (n > 0)
            (void)co_await ch.read_exactly(n);
        else
            (void)co_await ch.read_until("\n");
    } catch (const std::system_error& e) {
        co_return e.code();
    }
    co_return std::error_code{};
}

}  // namespace

TEST_CASE("channel: in memory, a read deadline with no input is timed_out and keeps every byte",
          "[channel][memory][B26]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    channel ch(std::move(mine));
    SECTION("nothing received") {
        ch.set_read_deadline(reactor::clock::now() + 5ms);
        CHECK(r.run(read_failing(ch)) == make_error_code(errc::timed_out));
        CHECK(ch.buffered() == 0);
        ch.clear_read_deadline();
        peer->write("abc\n");
        CHECK(own(r.run(ch.read_until("\n"))) == "abc");
    }
    SECTION("a partial line received") {
        peer->write("partial");
        ch.set_read_deadline(reactor::clock::now() + 5ms);
        CHECK(r.run(read_failing(ch)) == make_error_code(errc::timed_out));
        CHECK(ch.buffered() == 7);
        ch.clear_read_deadline();
        peer->write("line\n");
        CHECK(own(r.run(ch.read_until("\n"))) == "partialline");
    }
    SECTION("read_exactly with part of the count") {
        peer->write("12345");
        ch.set_read_deadline(reactor::clock::now() + 5ms);
        CHECK(r.run(read_failing(ch, 10)) == make_error_code(errc::timed_out));
        CHECK(ch.buffered() == 5);
        CHECK(peer->unread() == 0);
        ch.clear_read_deadline();
        peer->write("67890");
        CHECK(own(r.run(ch.read_exactly(10))) == "1234567890");
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE("channel: in memory, a line longer than max_line is line_too_long",
          "[channel][memory][item19]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    peer->write(std::string(10, 'x'));
    peer->write(std::string(10, 'y'));  // 20 bytes and no terminator: over 16
    channel ch(std::move(mine), {.max_line = 16});
    auto run = [&]() -> task<std::error_code> {
        try {
            (void)co_await ch.read_until("\r\n");
        } catch (const std::system_error& e) {
            co_return e.code();
        }
        co_return std::error_code{};
    };
    CHECK(r.run(run()) == make_error_code(errc::line_too_long));
    CHECK(ch.buffered() <= 16 + 10);  // bounded: it stopped receiving once over the limit
}

namespace {

// A try_read_* read as text: "<eof>" at end of stream, "<" + the error + ">" on an error.
// Never throws for what the peer does (a throw here fails the test).
task<std::string> try_read_text(channel& ch, detail::read_kind kind, std::size_t n = 0) {
    channel::read_result r;
    if (kind == detail::read_kind::until)
        r = co_await ch.try_read_until("\r\n");
    else if (kind == detail::read_kind::exactly)
        r = co_await ch.try_read_exactly(n);
    else
        r = co_await ch.try_read_some();
    if (r.error) co_return "<" + r.error.message() + ">";
    if (!r.bytes) co_return std::string("<eof>");
    co_return std::string(*r.bytes);
}

}  // namespace

TEST_CASE("channel: in memory, try_read_* give what a peer causes as values, never throw",
          "[channel][memory]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r);
    channel ch(std::move(mine), {.max_line = 16, .max_buffer = 64});
    using detail::read_kind;
    auto too_long = "<" + make_error_code(errc::line_too_long).message() + ">";
    SECTION("a line, then end of stream") {
        peer->write("GET / HT");
        peer->write("TP/1.1\r\n");
        peer->shutdown_send();
        CHECK(r.run(try_read_text(ch, read_kind::until)) == "GET / HTTP/1.1");
        CHECK(r.run(try_read_text(ch, read_kind::until)) == "<eof>");
    }
    SECTION("a line past max_line, found while waiting and found in buffered bytes") {
        peer->write(std::string(10, 'x'));
        peer->write(std::string(10, 'y'));
        CHECK(r.run(try_read_text(ch, read_kind::until)) == too_long);
        CHECK(r.run(try_read_text(ch, read_kind::until)) == too_long);  // already buffered
    }
    SECTION("a count past max_buffer") {
        CHECK(r.run(try_read_text(ch, read_kind::exactly, 65)) ==
              "<" + make_error_code(errc::message_too_long).message() + ">");
    }
    SECTION("a silent peer past the idle timeout, and every byte kept for the next read") {
        ch.set_idle_timeout(5ms);
        peer->write("half");
        CHECK(r.run(try_read_text(ch, read_kind::until)) ==
              "<" + make_error_code(errc::timed_out).message() + ">");
        peer->write(" line\r\n");
        CHECK(r.run(try_read_text(ch, read_kind::until)) == "half line");
    }
    SECTION("a reset peer: end of stream, the reason in close_reason()") {
        peer->reset();
        CHECK(r.run(try_read_text(ch, read_kind::some)) == "<eof>");
        CHECK(ch.close_reason() == std::errc::connection_reset);
    }
    CHECK(r.pending_count() == 0);
}

// --- output: close_when_done, backpressure, producers ---------------------------------

TEST_CASE("channel: in memory, close_when_done sends everything, then the peer sees end of stream",
          "[channel][memory]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r, {.capacity = 1000});
    channel ch(std::move(mine));
    const std::string big = pattern(0, 50000);
    auto writer = [&]() -> task<void> {
        ch.push("head|");
        ch.push(big);
        ch.push(simple_producer("|producer|", 3));
        ch.push("|last");
        auto done = ch.close_when_done();
        ch.push("|dropped");  // after close_when_done: never sent
        co_await std::move(done);
        CHECK(ch.closed());
    };
    std::size_t most = 0;
    auto [unused, got] = r.run(when_all(writer(), drain_slowly(r, *peer, &most)));
    CHECK(got.size() == 5 + big.size() + 10 + 5);
    CHECK((got == "head|" + big + "|producer||last"));
    CHECK(most <= 1000);
    CHECK(peer->peer_done());
    CHECK(r.pending_count() == 0);
}

TEST_CASE("channel: in memory, a slow reader makes write() wait (backpressure) and loses nothing",
          "[channel][memory]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r, {.capacity = 4096});
    channel ch(std::move(mine));
    ch.set_high_water(16 * 1024, 4 * 1024);
    const std::size_t total = 256 * 1024;
    std::size_t written = 0;
    bool all_written = false;
    auto writer = [&]() -> task<void> {
        for (std::size_t from = 0; from < total; from += 32 * 1024) {
            co_await ch.write(pattern(from, 32 * 1024));
            written = from + 32 * 1024;
            CHECK(ch.queued() <= 4 * 1024);  // write() returned below the low-water mark
        }
        all_written = true;
        co_await ch.close_when_done();
    };
    std::vector<std::size_t> written_seen;
    auto reader = [&]() -> task<std::string> {
        // The writer waits in its first write(): 32 KiB queued, 4 KiB in the pipe.
        for (int turn = 0; turn < 10 && peer->unread() == 0; ++turn)
            co_await one_turn(r);  // the background sender starts
        CHECK(written == 0);
        CHECK(ch.queued() > 16 * 1024);
        CHECK(peer->unread() == 4096);
        co_await one_turn(r);
        CHECK(written == 0);  // nobody read: it still waits
        std::string all;
        while (!(peer->peer_done() && peer->unread() == 0)) {
            written_seen.push_back(written);
            all += peer->read_all();
            co_await one_turn(r);
        }
        co_return all;
    };
    auto [unused, got] = r.run(when_all(writer(), reader()));
    CHECK(all_written);
    CHECK(got.size() == total);
    CHECK((got == pattern(0, total)));
    // The writer advanced only as the reader read: it was seen part way.
    CHECK(std::count_if(written_seen.begin(), written_seen.end(),
                        [&](std::size_t w) { return w > 0 && w < total; }) > 0);
    CHECK(r.pending_count() == 0);
}

namespace {

// n chunks of `size` bytes of the pattern, counting more() calls.
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

}  // namespace

TEST_CASE("channel: in memory, a producer is drained as the slow reader takes its bytes",
          "[channel][memory][C27]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [mine, peer] = memory_transport::pair(r, {.capacity = 4096});
    channel ch(std::move(mine));
    std::size_t calls = 0, produced = 0, max_ahead = 0;
    const std::size_t chunks = 100, size = 4096;
    std::size_t calls_after_push = 1, calls_after_flush = 0;
    auto writer = [&]() -> task<void> {
        ch.push("before|");
        ch.push(counting_producer{&calls, &produced, chunks, size});
        ch.push("|after");
        calls_after_push = calls;
        co_await ch.flush();
        calls_after_flush = calls;
        co_await ch.close_when_done();
    };
    auto reader = [&]() -> task<std::string> {
        std::string all;
        while (!(peer->peer_done() && peer->unread() == 0)) {
            co_await one_turn(r);
            all += peer->read_all();
            std::size_t got = all.size() > 7 ? std::min(all.size() - 7, produced) : 0;
            max_ahead = std::max(max_ahead, produced - got);
        }
        co_return all;
    };
    auto [unused, got] = r.run(when_all(writer(), reader()));
    CHECK(calls_after_push == 0);            // push() pulls nothing
    CHECK(calls_after_flush == chunks + 1);  // every chunk, then the empty one
    CHECK((got == "before|" + pattern(0, chunks * size) + "|after"));
    CHECK(max_ahead <= 64 * 1024 + 2 * size);  // pulled a glob at a time, not all at once
    CHECK(max_ahead < chunks * size);
}

// A channel keeps its options in 32-bit fields: a larger one is refused by name
// when the channel is made, and the set_* calls saturate instead of wrapping.
TEST_CASE("channel: in memory, options beyond 32 bits are refused by name, set_* saturate",
          "[channel][memory]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    const std::size_t too_big = std::size_t{1} << 32;
    auto refused = [&](channel_options o) -> std::string {
        auto [mine, peer] = memory_transport::pair(r);
        try {
            channel ch(std::move(mine), o);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    CHECK_THAT(refused({.max_line = too_big}),
               Catch::Matchers::Contains("channel_options::max_line"));
    CHECK_THAT(refused({.max_buffer = too_big}),
               Catch::Matchers::Contains("channel_options::max_buffer"));
    CHECK_THAT(refused({.recv_size = too_big}),
               Catch::Matchers::Contains("channel_options::recv_size"));
    CHECK_THAT(refused({.high_water = too_big}),
               Catch::Matchers::Contains("channel_options::high_water"));
    CHECK_THAT(refused({.low_water = too_big}),
               Catch::Matchers::Contains("channel_options::low_water"));
    CHECK_THAT(refused({.linger = std::chrono::milliseconds(too_big)}),
               Catch::Matchers::Contains("channel_options::linger"));
    CHECK_THAT(refused({.idle_timeout = std::chrono::milliseconds(too_big)}),
               Catch::Matchers::Contains("channel_options::idle_timeout"));
    CHECK(refused({.max_line = too_big - 1, .idle_timeout = std::chrono::hours(24 * 49)}).empty());

    // Saturated limits still read a line and take a large write at once.
    auto [mine, peer] = memory_transport::pair(r);
    channel ch(std::move(mine));
    ch.set_max_line(SIZE_MAX);
    ch.set_max_buffer(SIZE_MAX);
    ch.set_high_water(SIZE_MAX, SIZE_MAX);
    ch.set_idle_timeout(std::chrono::milliseconds::max());
    peer->write("line\n");
    auto reader = [&]() -> task<std::string> {
        auto line = co_await ch.read_until("\n");
        auto w = ch.write(std::string(100'000, 'x'));  // below the saturated high-water mark
        co_await std::move(w);
        std::string got = line ? std::string(*line) : std::string("(none)");
        auto f = ch.flush();
        co_await std::move(f);
        co_return got;
    };
    CHECK(r.run(reader()) == "line");
    CHECK(peer->read_all().size() == 100'000);
}
