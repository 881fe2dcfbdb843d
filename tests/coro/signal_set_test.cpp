#include <coronet/coro/signal_set.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

#include <pthread.h>
#include <signal.h>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_any.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace std::chrono_literals;
using coronet::reactor;
using coronet::task;

namespace {

// Raises sig (aimed at this thread, which blocks it) once the wait is pending (loop turns,
// 1,000 at most).
task<void> raise_later(reactor* r, int sig) {
    for (int i = 0; i < 1000 && r->pending_count() == 0; ++i)
        co_await coronet::sleep_for(*r, 0ms);
    ::raise(sig);
}

task<int> wait_for(reactor* r, coronet::signal_set* set, int sig) {
    coronet::spawn(*r, raise_later(r, sig), "raise");
    co_return co_await set->wait();
}

task<int> sleep_then(reactor* r, std::chrono::milliseconds d, int v) {
    co_await coronet::sleep_for(*r, d);
    co_return v;
}

}  // namespace

TEST_CASE("signal_set: co_await yields the signal that arrived", "[signal_set]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::signal_set set(r, {SIGUSR1, SIGHUP});
    CHECK(r.run(wait_for(&r, &set, SIGUSR1)) == SIGUSR1);
    CHECK(r.run(wait_for(&r, &set, SIGHUP)) == SIGHUP);
}

TEST_CASE("signal_set: a wait loses a when_any race and is cancelled cleanly", "[signal_set]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::signal_set set(r, {SIGUSR2});
    auto v = r.run(coronet::when_any(r, set.wait(), sleep_then(&r, 2ms, 7)));
    CHECK(v.index() == 1);
    CHECK(r.pending_count() == 0);
}

TEST_CASE("signal_set: reactors on two threads each get the signal aimed at them", "[signal_set]") {
    CORONET_FOR_EACH_BACKEND(kind);
    auto body = [kind](std::promise<pthread_t> me, std::promise<int> got) {
        reactor r{{.backend = kind}};
        coronet::signal_set set(r, {SIGUSR1});
        me.set_value(::pthread_self());
        got.set_value(r.run(set.wait()));
    };
    std::promise<pthread_t> me1, me2;
    std::promise<int> got1, got2;
    auto t1 = me1.get_future(), t2 = me2.get_future();
    auto g1 = got1.get_future(), g2 = got2.get_future();
    std::thread a(body, std::move(me1), std::move(got1));
    std::thread b(body, std::move(me2), std::move(got2));
    ::pthread_kill(t1.get(), SIGUSR1);
    ::pthread_kill(t2.get(), SIGUSR1);
    bool ready = g1.wait_for(5s) == std::future_status::ready &&
                 g2.wait_for(5s) == std::future_status::ready;
    CHECK(ready);
    a.join();
    b.join();
    if (ready) {
        CHECK(g1.get() == SIGUSR1);
        CHECK(g2.get() == SIGUSR1);
    }
}
