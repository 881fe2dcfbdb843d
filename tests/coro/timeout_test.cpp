#include <coronet/coro/timeout.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <system_error>

#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using coronet::reactor;
using coronet::task;
using coronet::with_timeout;
using namespace std::chrono_literals;

namespace {

task<int> sleep_then(reactor& r, reactor::clock::duration d, int value) {
    co_await coronet::sleep_for(r, d);
    co_return value;
}

task<void> sleep_void(reactor& r, reactor::clock::duration d, bool* finished) {
    co_await coronet::sleep_for(r, d);
    *finished = true;
}

task<int> immediate(int value) { co_return value; }

task<int> throws_soon(reactor& r) {
    co_await coronet::sleep_for(r, 1ms);
    throw std::runtime_error("the task's own error");
}

// What the innermost of three nested tasks saw.
struct inner_report {
    bool first_sleep_cancelled = false;
    bool later_sleep_cancelled = false;  // a sleep started after the cancellation
    bool finished = false;
};

task<int> innermost(reactor& r, inner_report* report) {
    report->first_sleep_cancelled = !co_await coronet::sleep_for(r, 1h);
    report->later_sleep_cancelled = !co_await coronet::sleep_for(r, 1h);
    report->finished = true;
    co_return 3;
}

task<int> middle(reactor& r, inner_report* report) { co_return co_await innermost(r, report) + 2; }

task<int> outermost(reactor& r, inner_report* report) { co_return co_await middle(r, report) + 1; }

task<bool> cancelled_sleep(reactor& r) { co_return !co_await coronet::sleep_for(r, 1h); }

task<int> two_long_sleeps(reactor& r, bool* first_cancelled, bool* second_cancelled) {
    auto [a, b] = co_await coronet::when_all(cancelled_sleep(r), cancelled_sleep(r));
    *first_cancelled = a;
    *second_cancelled = b;
    co_return 0;
}

task<int> long_inner_timeout(reactor& r) {
    co_return co_await with_timeout(r, sleep_then(r, 1h, 1), 1h);
}

// Catches its own (short) timeout and carries on.
task<int> recovers_from_inner_timeout(reactor& r) {
    try {
        co_return co_await with_timeout(r, sleep_then(r, 1h, 1), 10ms);
    } catch (const std::system_error& e) {
        if (e.code() != coronet::errc::timed_out) throw;
    }
    co_return co_await sleep_then(r, 1ms, 5);
}

// Sleeps in a scope of its own, which the enclosing with_timeout cannot cancel.
task<int> sleep_outside_the_scope(reactor& r, coronet::cancel_slot* own, int value) {
    auto t = sleep_then(r, 50ms, value);
    t.set_cancel_slot(own);
    co_return co_await std::move(t);
}

// Catches the error of an inner with_timeout that the outer one cancels, and returns normally.
task<int> swallows_outer_cancellation(reactor& r, std::error_code* seen) {
    try {
        co_return co_await with_timeout(r, sleep_then(r, 1h, 1), 1h);
    } catch (const std::system_error& e) {
        *seen = e.code();
    }
    co_return 2;
}

// Runs t to completion; the error it threw as std::system_error (none: {}).
template <class T>
std::error_code error_of_run(reactor& r, task<T> t) {
    try {
        (void)r.run(std::move(t));
    } catch (const std::system_error& e) {
        return e.code();
    }
    return {};
}

}  // namespace

TEST_CASE("with_timeout: a sleep longer than the timeout throws timed_out", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto start = reactor::clock::now();
    std::error_code ec = error_of_run(r, with_timeout(r, sleep_then(r, 1h, 1), 20ms));
    REQUIRE(ec == coronet::errc::timed_out);
    REQUIRE(reactor::clock::now() - start < 30s);  // not the hour
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: a void task that sleeps too long throws timed_out", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    bool finished = false;
    REQUIRE(error_of_run(r, with_timeout(r, sleep_void(r, 1h, &finished), 20ms)) ==
            coronet::errc::timed_out);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: a task that finishes in time returns its value and cancels the timer",
          "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("a value") {
        auto start = reactor::clock::now();
        REQUIRE(r.run(with_timeout(r, sleep_then(r, 5ms, 7), 1h)) == 7);
        REQUIRE(reactor::clock::now() - start < 30s);  // did not wait for the timer
    }
    SECTION("void") {
        bool finished = false;
        r.run(with_timeout(r, sleep_void(r, 5ms, &finished), 1h));
        REQUIRE(finished);
    }
    REQUIRE(r.pending_count() == 0);  // the hour-long timer is gone
}

TEST_CASE("with_timeout: a task that never suspends returns its value even with a zero timeout",
          "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    REQUIRE(r.run(with_timeout(r, immediate(9), 0ms)) == 9);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: the task's own exception passes through unchanged", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    REQUIRE_THROWS_WITH(r.run(with_timeout(r, throws_soon(r), 1h)), "the task's own error");
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: nested tasks inside are cancelled and so is every later wait",
          "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    inner_report report;
    REQUIRE(error_of_run(r, with_timeout(r, outermost(r, &report), 20ms)) ==
            coronet::errc::timed_out);
    REQUIRE(report.first_sleep_cancelled);
    REQUIRE(report.later_sleep_cancelled);
    REQUIRE(report.finished);  // the task unwound before with_timeout returned
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: every branch of a when_all inside is cancelled", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    bool first = false, second = false;
    auto start = reactor::clock::now();
    REQUIRE(error_of_run(r, with_timeout(r, two_long_sleeps(r, &first, &second), 20ms)) ==
            coronet::errc::timed_out);
    REQUIRE(reactor::clock::now() - start < 30s);  // neither branch waited its hour
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: an outer expiry cancels an inner with_timeout", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto start = reactor::clock::now();
    REQUIRE(error_of_run(r, with_timeout(r, long_inner_timeout(r), 20ms)) ==
            coronet::errc::timed_out);
    REQUIRE(reactor::clock::now() - start < 30s);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: an inner expiry is the inner scope's alone", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    REQUIRE(r.run(with_timeout(r, recovers_from_inner_timeout(r), 1h)) == 5);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: a nested with_timeout cancelled from outside throws operation_canceled",
          "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::error_code seen;
    // The outer one still reports its own expiry, though the task caught the inner error.
    REQUIRE(error_of_run(r, with_timeout(r, swallows_outer_cancellation(r, &seen), 20ms)) ==
            coronet::errc::timed_out);
    REQUIRE(seen == std::errc::operation_canceled);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("with_timeout: a result the deadline did not cut short is kept", "[with_timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    // The timer fires at 20 ms but finds nothing of the task's to cancel (as when
    // an operation completes just as its cancellation is requested): the value
    // the task then produces is returned, not thrown away.
    coronet::cancel_slot own{&r};
    REQUIRE(r.run(with_timeout(r, sleep_outside_the_scope(r, &own, 8), 20ms)) == 8);
    REQUIRE(r.pending_count() == 0);
}
