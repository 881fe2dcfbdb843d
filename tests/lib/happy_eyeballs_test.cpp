#include <coronet/lib/happy_eyeballs.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/listeners.hpp"

using coronet::address;
using coronet::reactor;
using coronet::task;
using namespace coronet::testing;
using namespace std::chrono_literals;

namespace {

std::vector<address> both(unsigned port) {
    // IPv4 first on purpose: Happy Eyeballs tries ::1 first anyway.
    return {address::parse("127.0.0.1:" + std::to_string(port)),
            address::parse("[::1]:" + std::to_string(port))};
}

// The peer the race connected to.
task<std::string> race(reactor& r, std::vector<address> to) {
    coronet::socket s = co_await coronet::happy_eyeballs(r, std::move(to));
    co_return s.peer_address().to_string();
}

}  // namespace

TEST_CASE("happy_eyeballs: IPv6 first, then the families alternate", "[happy_eyeballs]") {
    auto a = [](const char* t) { return address::parse(t); };
    auto order = coronet::interleave_families(
        {a("127.0.0.1:1"), a("127.0.0.2:1"), a("127.0.0.3:1"), a("[::1]:1"), a("[::2]:1")});
    std::vector<std::string> got;
    for (auto& x : order)
        got.push_back(x.to_string());
    CHECK(got == std::vector<std::string>{"[::1]:1", "127.0.0.1:1", "[::2]:1", "127.0.0.2:1",
                                          "127.0.0.3:1"});
}

TEST_CASE("happy_eyeballs: a refused first address moves on to the next at once",
          "[happy_eyeballs]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dual_listeners l(side::absent, side::open);
    reactor r{{.backend = kind}};
    auto start = std::chrono::steady_clock::now();
    CHECK(r.run(race(r, both(l.port))) == "127.0.0.1:" + std::to_string(l.port));
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(r.pending_count() == 0);
    CHECK(r.channel_count() == 0);
}

TEST_CASE("happy_eyeballs: a first address that drops SYNs is passed over for the second",
          "[happy_eyeballs]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dual_listeners l(side::stuck, side::open);
    reactor r{{.backend = kind}};
    auto start = std::chrono::steady_clock::now();
    CHECK(r.run(race(r, both(l.port))) == "127.0.0.1:" + std::to_string(l.port));
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    std::fprintf(stderr,
                 "happy_eyeballs (%s): connected through the second address after %lld ms\n",
                 std::string(coronet::to_string(kind)).c_str(), static_cast<long long>(ms.count()));
    CHECK(ms >= 200ms);  // the first attempt had its 250 ms, so it was tried first
    CHECK(ms < 2s);      // and the second did not wait for its SYN timeout (1 s and more)
    CHECK(r.pending_count() == 0);  // the stuck attempt was cancelled and closed
}

TEST_CASE("happy_eyeballs: when none answers, with_timeout ends the race", "[happy_eyeballs]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dual_listeners l(side::stuck, side::stuck);
    reactor r{{.backend = kind}};
    auto start = std::chrono::steady_clock::now();
    std::error_code ec =
        error_thrown_by([&] { r.run(coronet::with_timeout(r, race(r, both(l.port)), 600ms)); });
    CHECK(ec == coronet::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(r.pending_count() == 0);
}

TEST_CASE("happy_eyeballs: when every address refuses, the error says so and lists them",
          "[happy_eyeballs]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dual_listeners l(side::absent, side::absent);
    reactor r{{.backend = kind}};
    std::string what;
    std::error_code ec;
    try {
        r.run(race(r, both(l.port)));
    } catch (const std::system_error& e) {
        ec = e.code();
        what = e.what();
    }
    CHECK(ec == std::errc::connection_refused);
    CHECK(what.find("[::1]:" + std::to_string(l.port)) != std::string::npos);
    CHECK(what.find("127.0.0.1:" + std::to_string(l.port)) != std::string::npos);
}

namespace {
task<void> race_forever(reactor& r, std::vector<address> to) {
    (void)co_await coronet::happy_eyeballs(r, std::move(to));
}
}  // namespace

TEST_CASE("happy_eyeballs: a reactor destroyed mid-race closes every attempt", "[happy_eyeballs]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dual_listeners l(side::stuck, side::stuck);
    reactor r{{.backend = kind}};
    coronet::spawn(r, race_forever(r, both(l.port)), "race");
    r.run_for(400ms);  // both attempts started and stuck
    CHECK(r.task_count() == 1);
    CHECK(r.pending_count() == 3);  // two connects and the timer
}
