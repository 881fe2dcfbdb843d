#include <coronet/lib/timer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/reactor.hpp>

#include "tests/support/backends.hpp"

using coronet::reactor;
using coronet::task;
using namespace std::chrono_literals;

namespace {

task<void> sleep_and_record(reactor& r, reactor::clock::duration d, int id,
                            std::vector<int>* order) {
    co_await coronet::sleep_for(r, d);
    order->push_back(id);
}

task<void> sleep_until_and_record(reactor& r, reactor::clock::time_point t, int id,
                                  std::vector<int>* order) {
    co_await coronet::sleep_until(r, t);
    order->push_back(id);
}

// Records (id, whether the deadline passed) when the sleep ends.
struct wake_record {
    int id;
    bool expired;
};

task<void> sleep_and_report(reactor& r, reactor::clock::duration d, int id,
                            std::vector<wake_record>* log) {
    bool expired = co_await coronet::sleep_for(r, d);
    log->push_back({id, expired});
}

task<void> request_cancel(coronet::cancel_slot* slot) {
    slot->request();
    co_return;
}

task<reactor::clock::duration> timed_sleep(reactor& r, reactor::clock::duration d, bool* expired) {
    auto start = reactor::clock::now();
    *expired = co_await coronet::sleep_for(r, d);
    co_return reactor::clock::now() - start;
}

}  // namespace

TEST_CASE("timer: sleeps of different lengths fire in deadline order", "[timer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::vector<int> order;
    const int lengths_ms[] = {100, 20, 80, 40, 60};
    for (int i = 0; i < 5; ++i)
        coronet::spawn(r, sleep_and_record(r, std::chrono::milliseconds(lengths_ms[i]), i, &order));
    r.run();
    REQUIRE(order == std::vector<int>{1, 3, 4, 2, 0});
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("timer: two hundred shuffled deadlines fire in order", "[timer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::vector<int> order;
    auto base = reactor::clock::now() + 5ms;
    for (int i = 0; i < 200; ++i) {
        int k = (i * 73) % 200;  // a permutation of 0..199
        coronet::spawn(r, sleep_until_and_record(r, base + k * 100us, k, &order));
    }
    r.run();
    REQUIRE(order.size() == 200);
    REQUIRE(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("timer: a sleep ends no earlier than its deadline and reports that it passed",
          "[timer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    bool expired = false;
    auto slept = r.run(timed_sleep(r, 30ms, &expired));
    REQUIRE(expired);
    REQUIRE(slept >= 30ms);
}

TEST_CASE("timer: a sleep cancelled from the middle of the heap ends early and the rest keep order",
          "[timer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::vector<wake_record> log;
    coronet::cancel_slot slot{&r};
    for (int i = 0; i < 9; ++i) {
        auto t = sleep_and_report(r, std::chrono::milliseconds(10 + 10 * i), i, &log);
        if (i == 4) t.set_cancel_slot(&slot);  // the 50 ms sleep, deep inside the heap
        coronet::spawn(r, std::move(t));
    }
    coronet::spawn(r, request_cancel(&slot));  // runs in the same turn, after all sleeps started
    r.run();
    REQUIRE(log.size() == 9);
    CHECK(log[0].id == 4);
    CHECK_FALSE(log[0].expired);
    std::vector<int> rest;
    for (std::size_t i = 1; i < log.size(); ++i) {
        CHECK(log[i].expired);
        rest.push_back(log[i].id);
    }
    REQUIRE(rest == std::vector<int>{0, 1, 2, 3, 5, 6, 7, 8});
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("timer: a sleep in a scope already cancelled ends at once", "[timer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::cancel_slot slot{&r};
    slot.request();
    std::vector<wake_record> log;
    auto t = sleep_and_report(r, 1h, 0, &log);
    t.set_cancel_slot(&slot);
    r.run(std::move(t));
    REQUIRE(log.size() == 1);
    REQUIRE_FALSE(log[0].expired);
    REQUIRE(r.pending_count() == 0);
}
