#include <coronet/coro/task_group.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <string>

#include <coronet/coro/task.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace std::chrono_literals;
using coronet::reactor;
using coronet::task;

namespace {

// Counts live frames through a guard held in the frame (and owns heap memory ASan would report).
struct frame_guard {
    int* live;
    std::unique_ptr<std::string> heap = std::make_unique<std::string>(100, 'x');
    explicit frame_guard(int* l) : live(l) { ++*live; }
    ~frame_guard() { --*live; }
};

task<void> sleeper(reactor* r, int* live) {
    frame_guard g(live);
    co_await coronet::sleep_for(*r, 1h);
}

task<void> reader(coronet::socket s, int* live) {
    frame_guard g(live);
    std::array<std::byte, 64> buf;
    while (co_await s.recv(buf) > 0) {
    }
}

task<void> quick(reactor* r, int* done) {
    co_await coronet::sleep_for(*r, 1ms);
    ++*done;
}

task<std::size_t> close_group(reactor* r, int* live) {
    coronet::task_group group(*r);
    std::vector<coronet::socket> keep;  // the peers, so the readers never see end of stream
    for (int i = 0; i < 10; ++i) {
        group.spawn(sleeper(r, live), "sleeper");
        auto [a, b] = coronet::socket::pair(*r);
        group.spawn(reader(std::move(a), live), "reader");
        keep.push_back(std::move(b));
    }
    // Loop turns (1,000 at most) until every child waits: ten sleeps and ten receives pending.
    for (int i = 0; i < 1000 && r->pending_count() < 20; ++i)
        co_await coronet::sleep_for(*r, 0ms);
    std::size_t before = group.size();
    co_await group.close();
    co_return before - group.size();
}

task<int> wait_group(reactor* r) {
    coronet::task_group group(*r);
    int done = 0;
    for (int i = 0; i < 5; ++i)
        group.spawn(quick(r, &done), "quick");
    co_await group.wait();
    co_return done;
}

}  // namespace

TEST_CASE("task_group: close() cancels every child and waits for each to end", "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    {
        reactor r{{.backend = kind}};
        CHECK(r.run(close_group(&r, &live)) == 20);
        CHECK(live == 0);
        CHECK(r.task_count() == 0);
        CHECK(r.pending_count() == 0);
    }
    CHECK(live == 0);  // and under ASan, nothing leaks
}

TEST_CASE("task_group: wait() returns when the children end by themselves", "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    CHECK(r.run(wait_group(&r)) == 5);
}

TEST_CASE("task_group: a group destroyed with children cancels them", "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    reactor r{{.backend = kind}};
    {
        coronet::task_group group(r);
        group.spawn(sleeper(&r, &live), "sleeper");
        r.run_for(5ms);
        CHECK(live == 1);
    }
    r.run_for(50ms);
    CHECK(live == 0);
    CHECK(r.task_count() == 0);
}

TEST_CASE("task_group: spawn after close() is refused", "[task_group]") {
    reactor r;
    coronet::task_group group(r);
    r.run(group.close());
    int live = 0;
    CHECK_THROWS_AS(group.spawn(sleeper(&r, &live)), std::logic_error);
}
