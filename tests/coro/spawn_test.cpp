#include <coronet/coro/spawn.hpp>

#include <catch2/catch.hpp>

#include <chrono>

#include <coronet/coro/task.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace std::chrono_literals;
using coronet::reactor;
using coronet::task;

namespace {

task<void> nap(reactor* r, coronet::reactor::clock::duration d, int* state) {
    *state = 1;
    bool slept = co_await coronet::sleep_for(*r, d);
    *state = slept ? 2 : 3;  // 3: cancelled
}

task<int> await_handle(reactor* r, int* state) {
    auto h = coronet::spawn(*r, nap(r, 20ms, state), "nap");
    co_await h;
    co_return *state;
}

task<int> cancel_handle(reactor* r, int* state) {
    auto h = coronet::spawn(*r, nap(r, 1h, state), "nap");
    for (int i = 0; i < 1000 && *state == 0; ++i)  // until the nap has begun (turns)
        co_await coronet::sleep_for(*r, 0ms);
    h.cancel();
    co_await h;
    co_return *state;
}

// Reads a socket until cancelled: a recv pending in the kernel.
task<void> read_forever(coronet::socket* s, bool* ended) {
    std::array<std::byte, 16> buf;
    try {
        (void)co_await s->recv(buf);
    } catch (const std::system_error&) {
        *ended = true;
        throw;  // logged by spawn at debug level
    }
}

task<bool> cancel_recv(reactor* r) {
    auto [a, b] = coronet::socket::pair(*r);
    bool ended = false;
    auto h = coronet::spawn(*r, read_forever(&a, &ended), "reader");
    // Loop turns (1,000 at most) until the reader's receive is the one operation pending.
    for (int i = 0; i < 1000 && r->pending_count() == 0; ++i)
        co_await coronet::sleep_for(*r, 0ms);
    h.cancel();
    co_await h;
    co_return ended;
}

}  // namespace

TEST_CASE("spawn: the handle awaits the task's end", "[spawn]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int state = 0;
    CHECK(r.run(await_handle(&r, &state)) == 2);
}

TEST_CASE("spawn: cancel() ends the sleep the task waits on", "[spawn]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int state = 0;
    CHECK(r.run(cancel_handle(&r, &state)) == 3);
    CHECK(r.task_count() == 0);
}

TEST_CASE("spawn: cancel() ends a receive pending in the backend", "[spawn]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(cancel_recv(&r)));
    CHECK(r.task_count() == 0);
}

TEST_CASE("spawn: a dropped handle leaves the task running", "[spawn]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int state = 0;
    (void)coronet::spawn(r, nap(&r, 1ms, &state), "nap");
    r.run();
    CHECK(state == 2);
}

namespace {

task<int> cancel_own_scope(reactor* r, int* state) {
    coronet::cancel_slot own{r};
    auto t = nap(r, 1h, state);
    t.set_cancel_slot(&own);  // a scope of its own: spawn keeps it
    auto h = coronet::spawn(*r, std::move(t), "nap");
    for (int i = 0; i < 1000 && *state == 0; ++i)  // until the nap has begun (turns)
        co_await coronet::sleep_for(*r, 0ms);
    h.cancel();  // reaches the task through its own scope
    co_await h;
    co_return *state;
}

}  // namespace

TEST_CASE("spawn: a task with a scope of its own keeps it, and cancel() reaches it", "[spawn]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int state = 0;
    CHECK(r.run(cancel_own_scope(&r, &state)) == 3);
}

namespace {

// Counts itself in *live for as long as its frame exists.
task<void> counted_nap(reactor* r, int* live) {
    struct counted {
        int* n;
        ~counted() { --*n; }
    } guard{live};
    ++*live;
    co_await coronet::sleep_for(*r, 1h);
}

}  // namespace

TEST_CASE("spawn: a reactor destroyed with a task suspended destroys its frame", "[spawn]") {
    // The reactor finds each detached frame from its hook (task_hook::frame()), which keeps
    // no copy of the frame's address: destroying the right frame frees the task's locals.
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    {
        reactor r{{.backend = kind}};
        auto h = coronet::spawn(r, counted_nap(&r, &live), "nap");
        coronet::spawn(r, counted_nap(&r, &live), "nap");
        r.run_for(5ms);
        CHECK(live == 2);
        CHECK(r.task_count() == 2);
    }
    CHECK(live == 0);  // and under ASan, nothing leaks
}
