#include <coronet/coro/frame_pool.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/net.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include <malloc.h>
#include <sys/socket.h>

#include "tests/support/backends.hpp"

// Every heap allocation of this test binary is counted (not under ASan, whose
// own operator new must stay paired with its operator delete).
namespace {
std::atomic<long> allocations{0};
}

#if !defined(__SANITIZE_ADDRESS__)
void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

using namespace coronet;

namespace {

constexpr int warm_up = 200;
constexpr int round_trips = 10'000;

// The echo_server's loop: receive, send it all back, until the peer closes.
task<void> echo(coronet::socket& s) {
    std::array<std::byte, 4096> buf;
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        co_await send_all(s, std::span(buf).first(n));
    }
}

// Sends a 64-byte message and reads the echo, `count` times.
task<void> ping(coronet::socket& s, int count) {
    std::array<std::byte, 64> msg{};
    std::array<std::byte, 64> back{};
    for (int i = 0; i < count; ++i) {
        msg[0] = std::byte(i);
        msg.back() = std::byte('\n');  // one line for line_echo (echo() does not care)
        co_await send_all(s, msg);
        std::size_t got = co_await recv_exactly(s, back);
        REQUIRE(got == back.size());
        REQUIRE(back[0] == msg[0]);
    }
}

// The same loop reading through a channel: each message arrives in a provided
// buffer and goes back at the next read; a channel waiting holds no buffer.
task<void> channel_echo(coronet::socket s) {
    channel ch(std::move(s));
    for (;;) {
        auto msg = co_await ch.read_some();
        if (!msg) break;
        co_await send_all(ch.sock(), *msg);
    }
}

struct counts {
    long warm = 0, steady = 0;
};

task<counts> measure(coronet::socket& client) {
    counts c;
    long before = allocations.load();
    co_await ping(client, warm_up);
    c.warm = allocations.load() - before;
    before = allocations.load();
    co_await ping(client, round_trips);
    c.steady = allocations.load() - before;
    client.shutdown_send();
    co_return c;
}

// The steady-state count must be 0 (not asserted under ASan, whose frames
// come from the heap).
void require_none_after_warm_up(const counts& c) {
    INFO("allocations: " << c.warm << " in the warm-up, " << c.steady << " after");
#if defined(__SANITIZE_ADDRESS__)
    WARN("AddressSanitizer build: frames are not recycled, so allocations are not asserted");
#else
    REQUIRE(c.steady == 0);
#endif
}

}  // namespace

TEST_CASE("frame_pool: 10,000 echo round trips allocate nothing after warm-up", "[frame_pool]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server, client] = coronet::socket::pair(r);
    auto [c, unused] = r.run(when_all(measure(client), echo(server)));
    require_none_after_warm_up(c);
}

namespace {

// A line server on a channel, the way examples/ write them: read a line,
// push the reply (the sender sends it in the background), until the peer closes.
task<void> line_echo(coronet::socket s) {
    channel ch(std::move(s));
    for (;;) {
        auto line = co_await ch.read_until("\n");
        if (!line) break;
        ch.push(*line);
        ch.push("\n");
    }
    co_await ch.close_when_done();
}

}  // namespace

TEST_CASE("frame_pool: 10,000 line round trips through a channel allocate nothing after warm-up",
          "[frame_pool][channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server, client] = coronet::socket::pair(r);
    auto [c, unused] = r.run(when_all(measure(client), line_echo(std::move(server))));
    require_none_after_warm_up(c);
}

TEST_CASE("frame_pool: 10,000 round trips read through a channel allocate nothing after warm-up",
          "[frame_pool]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server, client] = coronet::socket::pair(r);
    auto [c, unused] = r.run(when_all(measure(client), channel_echo(std::move(server))));
    CHECK(r.buffers_in_use() == 0);
    require_none_after_warm_up(c);
}

TEST_CASE("frame_pool: a recycled block is handed out again", "[frame_pool]") {
    void* a = detail::frame_allocate(190);
    detail::frame_deallocate(a, 190);
    void* b = detail::frame_allocate(200);  // the same 200-byte class (185-200 bytes)
#if !defined(__SANITIZE_ADDRESS__)
    REQUIRE(b == a);
#endif
    detail::frame_deallocate(b, 200);
    void* big = detail::frame_allocate(1 << 20);  // past the classes: the heap's own
    detail::frame_deallocate(big, 1 << 20);
}

TEST_CASE("frame_pool: every size gets a block at least that big", "[frame_pool]") {
    for (std::size_t n = 1; n <= 2100; ++n) {
        void* p = detail::frame_allocate(n);
        REQUIRE(malloc_usable_size(p) >= n);  // the blocks come from malloc (operator new above)
        std::memset(p, 0xab, n);
        detail::frame_deallocate(p, n);
    }
}

namespace {

// Reads `count` lines, each of which arrives only after the read has started
// waiting, under a read deadline (as http_server sets one per request).
task<void> read_lines_with_deadline(channel& ch, int count, int* read) {
    for (int i = 0; i < count; ++i) {
        ch.set_read_deadline(reactor::clock::now() + std::chrono::seconds(30));
        auto line = co_await ch.read_until("\n");
        REQUIRE(line);
        REQUIRE(*line == "x");
        ++*read;
    }
}

// Sends each line with a plain send(2) once the reader has taken the last one:
// nothing here makes a frame, so every frame counted is the reader's.
task<std::size_t> feed_lines(reactor& r, const channel& ch, coronet::socket& peer, int count,
                             const int* read) {
    for (int i = 0; i < 1000 && !ch.read_waiting(); ++i)  // until the reader waits
        co_await sleep_for(r, std::chrono::milliseconds(0));
    std::size_t before = detail::frames_allocated();
    for (int i = 0; i < count; ++i) {
        REQUIRE(::send(peer.native_handle(), "x\n", 2, MSG_NOSIGNAL) == 2);
        while (*read == i)
            co_await sleep_for(r, std::chrono::milliseconds(0));
    }
    co_return detail::frames_allocated() - before;
}

}  // namespace

TEST_CASE("frame_pool: a channel read that waits under a deadline creates no coroutine frame",
          "[frame_pool][channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server, client] = coronet::socket::pair(r);
    channel ch(std::move(server));
    int read = 0;
    constexpr int lines = 1000;
    auto [unused, frames] = r.run(when_all(read_lines_with_deadline(ch, lines, &read),
                                           feed_lines(r, ch, client, lines, &read)));
    CHECK(read == lines);
    CHECK(frames == 0);
    CHECK(r.pending_count() == 0);  // the deadline's timer is not left behind
}

namespace {

// Answers each line with a plain write, as an echo does.
task<void> answer_lines(channel& ch, int count, int* answered) {
    for (int i = 0; i < count; ++i) {
        auto line = co_await ch.read_until("\n");
        REQUIRE(line);
        co_await ch.write(std::string_view("ok\n"));
        ++*answered;
    }
}

// Sends each line once the last one is answered, and receives the answer:
// nothing here makes a frame, so every frame counted is the answering side's.
task<std::size_t> ask_lines(reactor& r, coronet::socket& peer, int count, const int* answered,
                            std::string* got) {
    std::size_t before = detail::frames_allocated();
    std::array<std::byte, 64> buf{};
    for (int i = 0; i < count; ++i) {
        REQUIRE(::send(peer.native_handle(), "x\n", 2, MSG_NOSIGNAL) == 2);
        while (*answered == i)
            co_await sleep_for(r, std::chrono::milliseconds(0));
        while (got->size() < 3 * static_cast<std::size_t>(i + 1)) {
            std::size_t n = co_await peer.recv(buf);
            REQUIRE(n > 0);
            got->append(reinterpret_cast<const char*>(buf.data()), n);
        }
    }
    co_return detail::frames_allocated() - before;
}

}  // namespace

TEST_CASE("frame_pool: a channel's plain replies are sent without a coroutine frame",
          "[frame_pool][channel]") {
    // A reply of plain bytes goes from the output block's own operation: no
    // sender frame per reply (nor per burst of replies), on every backend.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server, client] = coronet::socket::pair(r);
    channel ch(std::move(server));
    int answered = 0;
    std::string got;
    constexpr int lines = 1000;
    auto [unused, frames] = r.run(
        when_all(answer_lines(ch, lines, &answered), ask_lines(r, client, lines, &answered, &got)));
    CHECK(answered == lines);
    CHECK(got.size() == 3 * lines);
    CHECK(got.find_first_not_of("ok\n") == std::string::npos);
    CHECK(frames == 0);
    CHECK(ch.sent().sends == lines);
}

TEST_CASE("frame_pool: a burst's freed frames are kept up to 256 KiB per size class",
          "[frame_pool]") {
    // 1,000 sender-sized frames (2 KiB) alive at once, then freed: at most 256 KiB's
    // worth stay (fewer if earlier tests left some of that class here), the rest go
    // back to the heap.
    const std::size_t before = detail::frames_kept_bytes();
    std::vector<void*> big, small;
    for (int i = 0; i < 1000; ++i)
        big.push_back(detail::frame_allocate(2000));
    for (int i = 0; i < 1000; ++i)
        small.push_back(detail::frame_allocate(100));
    for (void* p : big)
        detail::frame_deallocate(p, 2000);
    for (void* p : small)
        detail::frame_deallocate(p, 100);
    const std::size_t kept = detail::frames_kept_bytes() - before;
#if defined(__SANITIZE_ADDRESS__)
    CHECK(kept == 0);  // frames come from the heap and go back to it
#else
    // The 2 KiB class keeps at most 256 KiB (not 1,000 blocks: 2 MiB); the 100-byte
    // class keeps all 1,000 of its 104-byte blocks (104 KB, under its cap).
    CHECK(kept <= 256 * 1024 + 1000 * 104);
    CHECK(kept >= 1000 * 104);
    // Taken again, the kept blocks leave the count.
    std::vector<void*> again;
    for (int i = 0; i < 1000; ++i)
        again.push_back(detail::frame_allocate(100));
    CHECK(detail::frames_kept_bytes() - before <= 256 * 1024);
    for (void* p : again)
        detail::frame_deallocate(p, 100);
#endif
}
