// tests/coro/gcc12_forms_test.cpp: every co_await form the README's GCC 12 rule allows.
//
// The rule (README, end): bind a co_await, never test it. It may stand alone,
// initialize or be assigned to a variable (also one declared in an if/while
// condition), be returned, or be passed to a function; the statement holding
// it has no braced list. Each form below suspends for real (a receive that
// waits, on every backend), resumes and checks its value; the last test
// destroys coroutines while they wait in these forms, which ASan (make test,
// --config=asan) checks for a double destruction. The forms the rule forbids
// are not here: with GCC 12.2 they crash (see the README).
#include <coronet/coro/task.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/net.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace coronet;
using namespace std::chrono_literals;

namespace {

// Sends the pieces one turn apart (each read has to wait), then closes.
task<void> send_slowly(coronet::socket s, std::vector<std::string> pieces) {
    for (const auto& p : pieces) {
        co_await sleep_for(s.context(), 1ms);  // form: a statement of its own (the form tested)
        co_await send_all(s, p);
    }
    s.close();
}

std::string own(std::optional<std::string_view> v) { return v ? std::string(*v) : "<eof>"; }

struct options {  // owns memory: a braced temporary of it is what GCC 12 destroys twice
    std::string name;
    std::size_t limit = 0;
};

task<std::size_t> name_size(channel& ch, options o) {
    auto line = co_await ch.read_until("\n");
    co_return line ? o.name.size() + line->size() : 0;
}

// Every allowed form, in order; returns what each saw, joined.
task<std::string> every_form(channel ch) {
    std::string seen;
    // auto v = co_await x;
    auto first = co_await ch.read_until("\n");
    seen += own(first) + ",";
    // v = co_await x;
    first = co_await ch.read_until("\n");
    seen += own(first) + ",";
    // if (auto v = co_await x)
    if (auto line = co_await ch.read_until("\n")) seen += std::string(*line) + ",";
    // if (auto v = co_await x; condition)
    if (auto line = co_await ch.read_until("\n"); line && *line == "four") seen += "four!,";
    // passed to a function
    seen += own(co_await ch.read_until("\n")) + ",";
    // named options, not a braced list, beside the co_await
    options o{.name = std::string(40, 'n'), .limit = 1};
    std::size_t n = co_await name_size(ch, o);
    seen += std::to_string(n) + ",";
    // while (auto v = co_await x)
    while (auto line = co_await ch.read_until("\n"))
        seen += std::string(*line) + ";";
    co_return seen;
}

// co_return co_await x;
task<std::string> returned(channel& ch) { co_return own(co_await ch.read_until("\n")); }

task<std::string> forwards(channel ch) {
    std::string a = co_await returned(ch);
    std::string b = co_await returned(ch);
    co_return a + "+" + b;
}

// while (std::size_t n = co_await s.recv(buf))
task<std::size_t> count_bytes(coronet::socket s) {
    std::array<std::byte, 7> buf;
    std::size_t total = 0;
    while (std::size_t n = co_await s.recv(buf))
        total += n;
    co_return total;
}

}  // namespace

TEST_CASE("gcc12 forms: every form the README allows suspends, resumes and gets its value",
          "[gcc12][coro]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("channel reads") {
        auto [a, b] = socket::pair(r);
        auto [seen, unused] =
            r.run(when_all(every_form(channel(std::move(a))),
                           send_slowly(std::move(b), {"one\n", "two\n", "three\n", "four\n",
                                                      "five\n", "sixth\n", "x\n", "y\n"})));
        CHECK(seen == "one,two,three,four!,five,45,x;y;");
    }
    SECTION("co_return co_await") {
        auto [a, b] = socket::pair(r);
        auto [got, unused] = r.run(
            when_all(forwards(channel(std::move(a))), send_slowly(std::move(b), {"l\n", "r\n"})));
        CHECK(got == "l+r");
    }
    SECTION("a declaration in a while condition over raw receives") {
        auto [a, b] = socket::pair(r);
        auto [total, unused] = r.run(when_all(
            count_bytes(std::move(a)), send_slowly(std::move(b), {std::string(20, 'a'), "bcd"})));
        CHECK(total == 23);
    }
}

namespace {

// Waits forever in the allowed forms: destroyed (with the reactor) while it waits.
task<void> waits_in_while(channel ch) {
    while (auto line = co_await ch.read_until("\n"))
        (void)line;
}

task<void> waits_with_named_options(channel ch) {
    options o{.name = std::string(64, 'o')};
    std::size_t n = co_await name_size(ch, o);
    (void)n;
}

task<void> waits_in_if(channel ch) {
    if (auto line = co_await ch.read_until("\n")) (void)line;
}

}  // namespace

TEST_CASE(
    "gcc12 forms: coroutines destroyed while they wait in the allowed forms destroy each "
    "object once",
    "[gcc12][coro]") {
    CORONET_FOR_EACH_BACKEND(kind);
    std::vector<coronet::socket> peers;
    {
        reactor r{{.backend = kind}};
        for (auto* f : {&waits_in_while, &waits_with_named_options, &waits_in_if}) {
            auto [a, b] = socket::pair(r);
            spawn(r, f(channel(std::move(a))), "waiter");
            peers.push_back(std::move(b));
        }
        // The spawned tasks start and wait (loop turns, 1,000 at most, until their three reads
        // are pending); then the reactor dies with them suspended.
        auto turns = [](reactor& rr) -> task<void> {
            for (int i = 0; i < 1000 && rr.pending_count() < 3; ++i)
                co_await sleep_for(rr, 0ms);
        };
        r.run(turns(r));
        CHECK(r.pending_count() > 0);
        for (auto& p : peers)
            p.close();
    }
    SUCCEED("no double destruction (ASan would have aborted)");
}
