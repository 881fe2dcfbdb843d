#include <coronet/coro/task_group.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <coronet/coro/task.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/log_capture.hpp"

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

// The same children as child_tasks (task_group::start: no spawn state, no handle).
coronet::child_task sleeper_child(reactor* r, int* live) {
    frame_guard g(live);
    co_await coronet::sleep_for(*r, 1h);
}

coronet::child_task reader_child(coronet::socket s, int* live) {
    frame_guard g(live);
    std::array<std::byte, 64> buf;
    while (co_await s.recv(buf) > 0) {
    }
}

// Awaits a task: the group's cancel() reaches the operation it waits on (the scope is inherited).
coronet::child_task nested_child(reactor* r, int* live) { co_await sleeper(r, live); }

coronet::child_task quick_child(reactor* r, int* done) {
    co_await coronet::sleep_for(*r, 1ms);
    ++*done;
}

coronet::child_task throwing_child(reactor* r) {
    co_await coronet::sleep_for(*r, 1ms);
    throw std::runtime_error("child gave up");
}

coronet::child_task unrun_child(std::shared_ptr<int> held) {
    ++*held;  // never runs
    co_return;
}

task<std::size_t> close_started_group(reactor* r, int* live) {
    coronet::task_group group(*r);
    std::vector<coronet::socket> keep;
    for (int i = 0; i < 10; ++i) {
        group.start(sleeper_child(r, live));
        auto [a, b] = coronet::socket::pair(*r);
        group.start(reader_child(std::move(a), live));
        keep.push_back(std::move(b));
        group.start(nested_child(r, live));
        group.spawn(sleeper(r, live), "sleeper");  // spawned and started children mix
    }
    for (int i = 0; i < 1000 && r->pending_count() < 40; ++i)
        co_await coronet::sleep_for(*r, 0ms);
    std::size_t before = group.size();
    co_await group.close();
    co_return before - group.size();
}

task<int> wait_started_group(reactor* r) {
    coronet::task_group group(*r);
    int done = 0;
    for (int i = 0; i < 5; ++i)
        group.start(quick_child(r, &done));
    group.start(throwing_child(r));
    co_await group.wait();
    co_return done;
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

TEST_CASE("task_group: start() children are cancelled and awaited by close()", "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    {
        reactor r{{.backend = kind}};
        CHECK(r.run(close_started_group(&r, &live)) == 40);
        CHECK(live == 0);
        CHECK(r.task_count() == 0);
        CHECK(r.pending_count() == 0);
    }
    CHECK(live == 0);
}

TEST_CASE("task_group: wait() covers start() children; an escaping exception ends only its own",
          "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::testing::log_capture cap;
    reactor r{{.backend = kind}};
    CHECK(r.run(wait_started_group(&r)) == 5);
    CHECK(cap.count(coronet::log_level::error, "uncaptured exception in task: child gave up") == 1);
    CHECK(r.task_count() == 0);
}

TEST_CASE("task_group: a group destroyed with start() children cancels them", "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    reactor r{{.backend = kind}};
    {
        coronet::task_group group(r);
        group.start(sleeper_child(&r, &live));
        group.start(nested_child(&r, &live));
        r.run_for(5ms);
        CHECK(live == 2);
        CHECK(group.size() == 2);
    }
    r.run_for(50ms);
    CHECK(live == 0);
    CHECK(r.task_count() == 0);
}

TEST_CASE("task_group: a reactor destroyed with start() children suspended destroys them",
          "[task_group]") {
    CORONET_FOR_EACH_BACKEND(kind);
    int live = 0;
    {
        reactor r{{.backend = kind}};
        coronet::task_group group(r);
        std::vector<coronet::socket> keep;
        group.start(sleeper_child(&r, &live));
        auto [a, b] = coronet::socket::pair(r);
        group.start(reader_child(std::move(a), &live));
        keep.push_back(std::move(b));
        r.run_for(5ms);
        CHECK(live == 2);
        CHECK(r.task_count() == 2);
    }
    CHECK(live == 0);  // and under ASan, nothing leaks
}

TEST_CASE("task_group: start after close() is refused and frees the child unrun", "[task_group]") {
    reactor r;
    coronet::task_group group(r);
    r.run(group.close());
    auto held = std::make_shared<int>(0);
    CHECK_THROWS_AS(group.start(unrun_child(held)), std::logic_error);
    CHECK(held.use_count() == 1);
    CHECK(*held == 0);
    CHECK(r.task_count() == 0);
}
