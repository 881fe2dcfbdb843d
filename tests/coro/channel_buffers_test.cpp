// tests/coro/channel_buffers_test.cpp:
// coro/channel.hpp receive memory over socket pairs: no receive buffer while
// idle, more connections than provided buffers, large input across many
// provided blocks, blocks given back when a channel dies.
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

// --- provided buffers: no receive memory while idle ----------------------------------

namespace {

struct idle_report {
    std::size_t capacity_idle = 1, blocks_idle = 1;  // waiting with nothing unread
    std::size_t capacity_partial = 0;                // waiting with "y" unread
    std::size_t capacity_idle_again = 1, blocks_idle_again = 1;
    std::vector<std::optional<std::string>> lines;
};

// Loop turns (1,000 at most) until ch's reader has taken `lines` lines and waits for more.
task<void> until_reader_waits(reactor& r, const channel& ch,
                              const std::vector<std::optional<std::string>>& got,
                              std::size_t lines) {
    for (int i = 0; i < 1000 && !(got.size() >= lines && ch.read_waiting()); ++i)
        co_await sleep_for(r, 0ms);
}

task<void> read_lines_into(channel& ch, std::vector<std::optional<std::string>>* out, int count) {
    for (int i = 0; i < count; ++i)
        out->push_back(own(co_await ch.read_until("\n")));
}

task<void> feed_and_watch(reactor& r, channel& ch, coronet::socket& peer, idle_report* rep) {
    co_await send_all(peer, "hello\n");
    co_await until_reader_waits(r, ch, rep->lines, 1);
    rep->capacity_idle = ch.buffer_capacity();
    rep->blocks_idle = r.buffers_in_use();
    co_await send_all(peer, "x\ny");
    co_await until_reader_waits(r, ch, rep->lines, 2);
    rep->capacity_partial = ch.buffer_capacity();
    co_await send_all(peer, "\n");
    co_await until_reader_waits(r, ch, rep->lines, 3);
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
    for (int i = 0; i < 1000 && !ch->read_waiting(); ++i)  // until the read waits
        co_await sleep_for(r, 0ms);
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
