#include <coronet/coro/runtime.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/server.hpp>
#include <coronet/coro/signal_set.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace std::chrono_literals;
using coronet::address;
using coronet::reactor;
using coronet::task;
using coronet::worker;

namespace {

// Counts, on each thread, what was posted to it (no atomics: post() runs it on that thread).
struct tally {
    std::vector<long> per_thread = std::vector<long>(2, 0);
    std::vector<std::thread::id> ran_on = std::vector<std::thread::id>(2);
    std::vector<std::thread::id> owner = std::vector<std::thread::id>(2);
};

task<void> wait_for_stop(worker& w, tally* t) {
    t->owner[w.index()] = std::this_thread::get_id();
    w.started();
    co_await w.stopped();
}

task<void> fail_on_second(worker& w) {
    if (w.index() == 1) throw std::runtime_error("cannot start thread 1");
    w.started();
    co_await w.stopped();
}

task<void> greet(coronet::connection& c) {
    c.ch.push("hello from " + std::to_string(c.owner().options().name.back() - '0') + "\n");
    co_return;
}

// Each thread: a server on the same port (SO_REUSEPORT), until the runtime stops.
task<void> serve_greetings(worker& w) {
    coronet::server srv(w.loop(),
                        {.listen = w.listen_on({address::parse("127.0.0.1:0")}),
                         .reuse_port = true,
                         .name = "greeter " + std::to_string(w.index())},
                        greet);
    srv.start();
    w.started(srv.local_addresses());
    co_await w.stopped();
    co_await srv.shutdown();
}

// A plain blocking client: the line the server sends.
std::string fetch_line(const address& at) {
    reactor r{{.backend = coronet::backend_kind::epoll}};
    return r.run([](reactor* r, address at) -> task<std::string> {
        coronet::channel ch(co_await coronet::socket::connect(*r, at));
        auto line = co_await ch.read_until("\n");
        co_return line ? std::string(*line) : "<eof>";
    }(&r, at));
}

}  // namespace

TEST_CASE("runtime: post() from another thread runs on the target reactor", "[runtime]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::runtime rt({.threads = 2, .reactor = {.backend = kind}});
    tally t;
    std::thread poster;
    // Once both loops are up (run()'s started callback), post 1000 to each, then stop.
    auto post_all = [&] {
        for (int i = 0; i < 1000; ++i)
            for (unsigned k = 0; k < 2; ++k)
                rt.post(k, [&t, k] {
                    ++t.per_thread[k];
                    t.ran_on[k] = std::this_thread::get_id();
                });
        std::atomic<int> acked{0};
        for (unsigned k = 0; k < 2; ++k)
            rt.post(k, [&acked] { ++acked; });
        // A poll on the real condition, bounded (5 s): the acks come from the other threads.
        for (int i = 0; i < 5000 && acked < 2; ++i)
            std::this_thread::sleep_for(1ms);
        rt.stop();
    };
    rt.run([&t](worker& w) { return wait_for_stop(w, &t); },
           [&] { poster = std::thread(post_all); });
    if (poster.joinable()) poster.join();
    CHECK(t.per_thread[0] == 1000);
    CHECK(t.per_thread[1] == 1000);
    CHECK(t.ran_on[0] == t.owner[0]);
    CHECK(t.ran_on[1] == t.owner[1]);
}

TEST_CASE("runtime: a start-up error reaches run() and the others stop", "[runtime]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::runtime rt({.threads = 3, .reactor = {.backend = kind}});
    CHECK_THROWS_WITH(rt.run(fail_on_second), "cannot start thread 1");
}

TEST_CASE("runtime: SO_REUSEPORT servers on every thread, a signal stops them all", "[runtime]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::runtime rt({.threads = 2, .reactor = {.backend = kind}, .stop_signals = {SIGUSR2}});
    std::vector<std::string> lines;
    coronet::block_signals({SIGUSR2});  // before any thread starts: no thread may die of it
    std::thread client;
    // Started once every thread's server listens (run()'s started callback).
    auto fetch_all = [&] {
        auto at = rt.addresses()[0];
        for (int i = 0; i < 20; ++i)
            lines.push_back(fetch_line(at));
        ::kill(::getpid(), SIGUSR2);
    };
    rt.run(serve_greetings, [&] { client = std::thread(fetch_all); });
    if (client.joinable()) client.join();
    CHECK(rt.stop_signal() == SIGUSR2);
    REQUIRE(lines.size() == 20);
    for (auto& l : lines)
        CHECK(l.starts_with("hello from "));
}

namespace {

// Thread 0 asks thread 1 for its thread id, and resumes on its own thread.
task<void> ask_other(worker& w, std::vector<std::thread::id>* seen) {
    w.started();
    if (w.index() == 0) {
        auto answer = std::make_shared<std::thread::id>();
        std::function<void()> ask = [answer] { *answer = std::this_thread::get_id(); };
        co_await w.run_on(1, std::move(ask));  // named: GCC 12.2 destroys a temporary twice
        (*seen)[0] = std::this_thread::get_id();
        (*seen)[1] = *answer;
        w.owner().stop();
    }
    co_await w.stopped();
}

}  // namespace

TEST_CASE("runtime: run_on() runs on the other thread and resumes on this one", "[runtime]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::runtime rt({.threads = 2, .reactor = {.backend = kind}});
    std::vector<std::thread::id> seen(2);
    rt.run([&seen](worker& w) { return ask_other(w, &seen); });
    CHECK(seen[0] != std::thread::id{});
    CHECK(seen[1] != std::thread::id{});
    CHECK(seen[0] != seen[1]);
    CHECK(seen[0] != std::this_thread::get_id());
}
