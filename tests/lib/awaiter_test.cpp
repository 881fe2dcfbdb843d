#include <coronet/lib/awaiter.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>

#include <coronet/coro/net.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using coronet::reactor;
using coronet::task;
using coronet::with_timeout;
using namespace std::chrono_literals;

namespace {

using block = std::array<std::byte, 4096>;

// A heap block filled with 0xAB: if a cancelled recv still wrote into a freed
// buffer, the allocator's next block of that size (this one) would show it.
std::unique_ptr<block> canary() {
    auto b = std::make_unique<block>();
    b->fill(std::byte{0xAB});
    return b;
}

bool intact(const block& b) {
    return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0xAB}; });
}

task<std::size_t> recv_into(coronet::socket* s, std::span<std::byte> buffer) {
    co_return co_await s->recv(buffer);
}

task<std::string> recv_text(coronet::socket* s) {
    std::array<char, 256> buf;
    std::size_t n = co_await s->recv(std::as_writable_bytes(std::span(buf)));
    co_return std::string(buf.data(), n);
}

// Sends text once the other side's wait is pending (loop turns, 1,000 at most).
task<void> send_later(reactor& r, coronet::socket* s, std::string text) {
    for (int i = 0; i < 1000 && r.pending_count() == 0; ++i)
        co_await coronet::sleep_for(r, 0ms);
    co_await coronet::send_all(*s, text);
}

struct after_timeout {
    std::error_code error;
    std::string later;           // what a new recv got once the peer spoke
    bool canary_intact = false;  // nothing wrote into the freed buffer's successor
};

// Times out a recv on a silent peer, frees its buffer, then checks that the
// connection still delivers what the peer sends afterwards.
task<after_timeout> time_out_then_reuse(reactor& r, coronet::socket* mine, coronet::socket* peer) {
    after_timeout out;
    auto buf = std::make_unique<block>();
    try {
        (void)co_await with_timeout(r, recv_into(mine, *buf), 20ms);
    } catch (const std::system_error& e) {
        out.error = e.code();
    }
    buf.reset();
    auto guard = canary();
    co_await coronet::send_all(*peer, "sent after the timeout");
    co_await coronet::sleep_for(r, 10ms);  // time for a wrongly pending recv to land
    out.later = co_await recv_text(mine);
    out.canary_intact = intact(*guard);
    co_return out;
}

// Times out a recv, then closes: the peer sees a clean end of stream.
task<std::pair<std::error_code, std::size_t>> time_out_then_close(reactor& r, coronet::socket mine,
                                                                  coronet::socket* peer) {
    std::error_code ec;
    block buf;
    try {
        (void)co_await with_timeout(r, recv_into(&mine, buf), 20ms);
    } catch (const std::system_error& e) {
        ec = e.code();
    }
    mine.close();
    std::size_t at_peer = co_await recv_into(peer, buf);
    co_return std::pair(ec, at_peer);
}

task<std::pair<std::size_t, std::size_t>> two_recvs(coronet::socket* a, coronet::socket* b,
                                                    block* x, block* y) {
    auto [m, n] = co_await coronet::when_all(recv_into(a, *x), recv_into(b, *y));
    co_return std::pair(m, n);
}

// Counts live frames through a guard object held in the frame.
struct frame_guard {
    int* live;
    explicit frame_guard(int* l) : live(l) { ++*live; }
    ~frame_guard() { --*live; }
};

task<void> wait_for_data(coronet::socket s, int* live) {
    frame_guard g(live);
    block buf;
    (void)co_await s.recv(buf);
}

task<void> wait_for_data_with_timeout(reactor& r, coronet::socket s, int* live) {
    frame_guard g(live);
    block buf;
    (void)co_await with_timeout(r, recv_into(&s, buf), 1h);
}

}  // namespace

TEST_CASE(
    "awaiter: a recv cancelled by with_timeout lets go of its buffer and the connection stays "
    "usable",
    "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    after_timeout got = r.run(time_out_then_reuse(r, &a, &b));
    REQUIRE(got.error == coronet::errc::timed_out);
    REQUIRE(got.later == "sent after the timeout");
    REQUIRE(got.canary_intact);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("awaiter: a connection whose recv timed out closes cleanly", "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    auto [ec, at_peer] = r.run(time_out_then_close(r, std::move(a), &b));
    REQUIRE(ec == coronet::errc::timed_out);
    REQUIRE(at_peer == 0);  // end of stream, no error
    REQUIRE(r.channel_count() == 1);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("awaiter: a recv that completes in time returns its data and its timer is cancelled",
          "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    auto start = reactor::clock::now();
    auto [text, unused] =
        r.run(coronet::when_all(with_timeout(r, recv_text(&a), 1h), send_later(r, &b, "in time")));
    REQUIRE(text == "in time");
    REQUIRE(reactor::clock::now() - start < 30s);  // not the hour
    REQUIRE(r.pending_count() == 0);               // the timer is gone
}

TEST_CASE("awaiter: with_timeout cancels every recv of a when_all inside it",
          "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, peer_a] = coronet::socket::pair(r);
    auto [b, peer_b] = coronet::socket::pair(r);
    auto x = std::make_unique<block>(), y = std::make_unique<block>();
    std::error_code ec;
    try {
        (void)r.run(with_timeout(r, two_recvs(&a, &b, x.get(), y.get()), 20ms));
    } catch (const std::system_error& e) {
        ec = e.code();
    }
    REQUIRE(ec == coronet::errc::timed_out);
    REQUIRE(r.pending_count() == 0);  // neither recv is left behind
    r.run(coronet::send_all(peer_a, "a"));
    r.run(coronet::send_all(peer_b, "b"));
    REQUIRE(r.run(recv_text(&a)) == "a");
    REQUIRE(r.run(recv_text(&b)) == "b");
}

TEST_CASE("awaiter: destroying a coroutine suspended in recv abandons the operation",
          "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    auto buf = std::make_unique<block>();
    {
        auto t = recv_into(&a, *buf);
        t.handle().resume();  // runs up to the recv and suspends there
        REQUIRE_FALSE(t.done());
        r.run_for(10ms);  // the recv is in the kernel (io_uring) or parked (epoll, select)
        REQUIRE(r.pending_count() == 1);
    }  // ~recv_awaiter: cancel, and wait until the kernel has let go of the buffer
    REQUIRE(r.pending_count() == 0);
    buf.reset();
    auto guard = canary();
    r.run(coronet::send_all(b, "for the next reader"));
    r.run_for(10ms);
    REQUIRE(r.run(recv_text(&a)) == "for the next reader");
    REQUIRE(intact(*guard));
}

// Regression: the cancellable scope kept a raw pointer to the operation it
// was suspended on, and a coroutine destroyed mid-recv left it dangling; a
// later request() then cancelled whatever operation reused that memory (or,
// under ASan, read freed memory).
TEST_CASE("awaiter: a cancellable scope forgets an operation whose coroutine was destroyed",
          "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, peer_a] = coronet::socket::pair(r);
    auto [b, peer_b] = coronet::socket::pair(r);
    coronet::cancel_slot scope{&r};
    block buf;
    {
        auto t = recv_into(&a, buf);
        t.set_cancel_slot(&scope);
        t.handle().resume();  // suspended in recv, inside `scope`
        r.run_for(1ms);
    }  // destroyed mid-recv
    // Same size of frame: the allocator is likely to hand back the same memory.
    auto bystander = recv_into(&b, buf);
    bystander.handle().resume();
    scope.request();  // must not reach the bystander's recv
    r.run_for(10ms);
    REQUIRE_FALSE(bystander.done());
    r.run(coronet::send_all(peer_b, "x"));
    while (!bystander.done())
        r.run_once();
    auto awaiter = std::move(bystander).operator co_await();
    REQUIRE(awaiter.await_resume() == 1);  // received, not ECANCELED
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("awaiter: a reactor destroyed with a spawned task suspended in recv cleans up",
          "[awaiter][cancellation]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    int fd = -1;
    bool nested = false;
    SECTION("directly") { nested = false; }
    SECTION("inside with_timeout") { nested = true; }
    {
        reactor r{{.backend = kind}};
        auto [a, b] = coronet::socket::pair(r);
        fd = a.native_handle();
        if (nested)
            coronet::spawn(r, wait_for_data_with_timeout(r, std::move(a), &live));
        else
            coronet::spawn(r, wait_for_data(std::move(a), &live));
        r.run_for(10ms);  // the task starts and its recv reaches the kernel
        REQUIRE(live == 1);
        REQUIRE(r.task_count() == 1);
        REQUIRE(r.pending_count() == (nested ? 2u : 1u));  // the recv (and the timer)
    }  // b closes, then the reactor destroys the task: the recv is abandoned
    REQUIRE(live == 0);
    REQUIRE(::fcntl(fd, F_GETFD) == -1);  // the task's socket closed with its frame
}
