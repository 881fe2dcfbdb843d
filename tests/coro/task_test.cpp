#include <coronet/coro/task.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/timer.hpp>

using coronet::reactor;
using coronet::task;

namespace {

task<int> forty_two() { co_return 42; }

task<int> add_one(int x) { co_return x + 1 + co_await forty_two() - 42; }

task<void> set_flag(bool* flag) {
    *flag = true;
    co_return;
}

task<int> throws_runtime_error() {
    throw std::runtime_error("boom");
    co_return 0;
}

task<int> one() { co_return 1; }

task<long> sum_a_million() {
    long total = 0;
    for (int i = 0; i < 1'000'000; ++i)
        total += co_await one();
    co_return total;
}

// Counts live frames through a guard object held in the frame.
struct frame_guard {
    int* live;
    explicit frame_guard(int* l) : live(l) { ++*live; }
    ~frame_guard() { --*live; }
};

task<void> guarded(int* live, reactor* r) {
    frame_guard g(live);
    co_await coronet::sleep_for(*r, std::chrono::hours(1));
}

task<void> guarded_child(int* live) {
    frame_guard g(live);
    co_return;
}

task<int> sleepy(reactor& r, int ms, int value) {
    co_await coronet::sleep_for(r, std::chrono::milliseconds(ms));
    co_return value;
}

}  // namespace

TEST_CASE("task: returns a value to its awaiter", "[task]") {
    reactor r;
    REQUIRE(r.run(forty_two()) == 42);
    REQUIRE(r.run(add_one(1)) == 2);
}

TEST_CASE("task: void task runs its body when awaited", "[task]") {
    reactor r;
    bool flag = false;
    auto t = set_flag(&flag);
    REQUIRE_FALSE(flag);  // lazy: nothing ran yet
    r.run(std::move(t));
    REQUIRE(flag);
}

TEST_CASE("task: an exception propagates to the awaiter", "[task]") {
    reactor r;
    REQUIRE_THROWS_WITH(r.run(throws_runtime_error()), "boom");
}

TEST_CASE("task: a million sequential awaits use no stack", "[task]") {
    reactor r;
    REQUIRE(r.run(sum_a_million()) == 1'000'000);
}

TEST_CASE("task: destroying an unstarted task frees its frame", "[task]") {
    int live = 0;
    {
        auto t = guarded_child(&live);
        REQUIRE(live == 0);  // the guard is built only once the body runs
    }
    REQUIRE(live == 0);
}

TEST_CASE("task: destroying a task suspended half-way frees its frame and its timer", "[task]") {
    reactor r;
    int live = 0;
    coronet::spawn(r, guarded(&live, &r));
    r.run_once();  // the task starts and suspends on its hour-long sleep
    REQUIRE(live == 1);
    REQUIRE(r.task_count() == 1);
    REQUIRE(r.pending_count() == 1);
    // The reactor's destructor destroys the suspended task; the frame and the
    // timer must both go.
}

TEST_CASE("spawn: an escaping exception is logged and the loop goes on", "[spawn]") {
    reactor r;
    bool other_ran = false;
    coronet::spawn(
        r,
        []() -> task<void> {
            throw std::runtime_error("spawned failure");
            co_return;
        }(),
        "failing task");
    coronet::spawn(r, set_flag(&other_ran));
    r.run();
    REQUIRE(other_ran);
    REQUIRE(r.task_count() == 0);
}

TEST_CASE("when_all: results come back in argument order", "[when_all]") {
    reactor r;
    auto [a, b, c] = r.run(coronet::when_all(sleepy(r, 30, 1), sleepy(r, 10, 2), forty_two()));
    REQUIRE(a == 1);
    REQUIRE(b == 2);
    REQUIRE(c == 42);
}

TEST_CASE("when_all: a vector of tasks runs concurrently", "[when_all]") {
    reactor r;
    std::vector<task<int>> tasks;
    for (int i = 0; i < 50; ++i)
        tasks.push_back(sleepy(r, 20, i));
    auto start = reactor::clock::now();
    auto values = r.run(coronet::when_all(std::move(tasks)));
    auto elapsed = reactor::clock::now() - start;
    REQUIRE(values.size() == 50);
    for (int i = 0; i < 50; ++i)
        REQUIRE(values[i] == i);
    // Concurrent, not sequential: 50 sleeps of 20 ms overlap (sequential would take 1 s).
    REQUIRE(elapsed < std::chrono::milliseconds(900));
}

TEST_CASE("when_all: the first exception is rethrown after all finish", "[when_all]") {
    reactor r;
    bool flag = false;
    REQUIRE_THROWS_WITH(r.run(coronet::when_all(throws_runtime_error(), set_flag(&flag))), "boom");
    REQUIRE(flag);
}
