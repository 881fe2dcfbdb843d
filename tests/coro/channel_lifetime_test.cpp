// tests/coro/channel_lifetime_test.cpp:
// coro/channel.hpp lifetimes over socket pairs: reads and writes at once,
// closing and destroying a channel with operations pending, deadlines, and
// readers that go away mid-read.
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

// Closes ch once its read waits (loop turns, 1,000 at most, until read_waiting()).
task<void> close_after_turns(channel& ch) {
    for (int i = 0; i < 1000 && !ch.read_waiting(); ++i)
        co_await sleep_for(ch.context(), 0ms);
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
    // Until a send has filled the socket (4 MiB against 4 KiB: the rest waits for room);
    // loop turns, 5 s at most.
    for (int i = 0; i < 5000 && ch.sent().bytes == 0; ++i)
        co_await sleep_for(ch.context(), 1ms);
    co_return ch.queued();
}

// Reads nothing for a while (a slow peer: the pause is the behaviour), then everything until
// end of stream.
task<received> receive_after(reactor& r, coronet::socket s, std::chrono::milliseconds pause) {
    co_await sleep_for(r, pause);
    co_return co_await receive_all(std::move(s));
}

}  // namespace

TEST_CASE("channel: a channel destroyed with output queued sends it all, then closes",
          "[channel]") {
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
        [](reactor& r, channel& c, coronet::socket& p) -> task<void> {
            co_await send_all(p, std::string_view("tw"));
            // Until the reader holds "tw" and waits for the rest (loop turns, 5 s at most).
            for (int i = 0; i < 5000 && !(c.buffered() == 2 && c.read_waiting()); ++i)
                co_await sleep_for(r, 1ms);
            co_await send_all(p, std::string_view("o\n"));
        }(r, ch, peer));
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
    auto reader = [](channel& c, std::string* out) -> task<void> {
        *out = own(co_await c.read_until("\n")).value_or("eof");
    };
    auto second = [](reactor& r, channel& c, coronet::socket& p, std::string* out) -> task<void> {
        for (int i = 0; i < 1000 && !c.read_waiting(); ++i)  // until the first read waits
            co_await sleep_for(r, 0ms);
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
