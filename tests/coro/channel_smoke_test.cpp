#include <coronet/coro/channel.hpp>

#include <catch2/catch.hpp>

#include <coronet/coro/net.hpp>
#include <coronet/coro/when_all.hpp>

#include "tests/support/backends.hpp"

using namespace coronet;

namespace {
task<std::vector<std::string>> reader(channel ch) {
    std::vector<std::string> lines;
    while (auto line = co_await ch.read_until("\r\n")) lines.emplace_back(*line);
    co_return lines;
}
task<void> writer(channel ch) {
    ch.push("hello ");
    ch.push("world\r\nsecond");
    ch.push(std::string("\r\nthird\r"));
    co_await ch.write(std::string("\n"));
    co_await ch.close_when_done();
}
}  // namespace

TEST_CASE("channel: smoke lines through a socket pair", "[channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    auto [lines, unused] = r.run(when_all(reader(channel(std::move(a))), writer(channel(std::move(b)))));
    REQUIRE(lines == std::vector<std::string>{"hello world", "second", "third"});
}
