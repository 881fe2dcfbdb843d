#include <coronet/coro/when_any.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

#include <coronet/coro/task.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace std::chrono_literals;
using coronet::reactor;
using coronet::task;

namespace {

task<int> after(reactor* r, std::chrono::milliseconds d, int value, int* ended) {
    bool slept = co_await coronet::sleep_for(*r, d);
    ++*ended;
    co_return slept ? value : -1;
}

task<std::string> word_after(reactor* r, std::chrono::milliseconds d) {
    co_await coronet::sleep_for(*r, d);
    co_return "word";
}

task<void> fails_after(reactor* r, std::chrono::milliseconds d) {
    co_await coronet::sleep_for(*r, d);
    throw std::runtime_error("boom");
}

task<std::pair<std::size_t, int>> race(reactor* r, int* ended) {
    std::vector<task<int>> tasks;
    tasks.push_back(after(r, 1h, 1, ended));
    tasks.push_back(after(r, 5ms, 2, ended));
    tasks.push_back(after(r, 1h, 3, ended));
    auto won = co_await coronet::when_any(*r, std::move(tasks));
    co_return std::pair{won.index, won.value};
}

task<std::size_t> mixed(reactor* r, int* ended) {
    auto v = co_await coronet::when_any(*r, word_after(r, 2ms), after(r, 1h, 7, ended));
    co_return v.index();
}

task<void> failing(reactor* r, int* ended) {
    (void)co_await coronet::when_any(*r, fails_after(r, 2ms), after(r, 1h, 7, ended));
}

}  // namespace

TEST_CASE("when_any: the first to finish wins and the others are cancelled", "[when_any]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int ended = 0;
    auto [index, value] = r.run(race(&r, &ended));
    CHECK(index == 1);
    CHECK(value == 2);
    CHECK(ended == 3);  // every loser unwound before when_any returned
    CHECK(r.pending_count() == 0);
}

TEST_CASE("when_any: tasks of different types give a variant", "[when_any]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int ended = 0;
    CHECK(r.run(mixed(&r, &ended)) == 0);
    CHECK(ended == 1);
}

TEST_CASE("when_any: the winner's exception is rethrown", "[when_any]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    int ended = 0;
    CHECK_THROWS_AS(r.run(failing(&r, &ended)), std::runtime_error);
    CHECK(ended == 1);
}
