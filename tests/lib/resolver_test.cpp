#include <coronet/lib/resolver.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/dns_server.hpp"

using coronet::address;
using coronet::reactor;
using coronet::resolve_options;
using coronet::task;
using namespace coronet::testing;
using namespace std::chrono_literals;

namespace {

const char* hosts =
    "127.0.0.1 dual.test\n"
    "::1 dual.test\n"
    "127.0.0.2 v4.test\n"
    "::1 v6.test\n";

task<std::vector<std::string>> resolve_text(reactor& r, std::string host, std::string service,
                                            resolve_options o) {
    std::vector<std::string> out;
    for (const address& a : co_await coronet::resolve(r, host, service, o))
        out.push_back(a.to_string());
    std::sort(out.begin(), out.end());
    co_return out;
}

// What resolving throws (std::error_code{} when it succeeds), and the message.
task<std::pair<std::error_code, std::string>> resolve_error(reactor& r, std::string host,
                                                            resolve_options o) {
    try {
        (void)co_await coronet::resolve(r, host, "80", o);
    } catch (const std::system_error& e) {
        co_return std::pair{e.code(), std::string(e.what())};
    }
    co_return std::pair{std::error_code{}, std::string()};
}

// Ticks every 10 ms until *stop is set: how many times it ran.
task<int> ticker(reactor& r, const bool* stop) {
    int ticks = 0;
    while (!*stop) {
        co_await coronet::sleep_for(r, 10ms);
        ++ticks;
    }
    co_return ticks;
}

task<std::vector<std::string>> resolve_then_stop(reactor& r, std::string host, resolve_options o,
                                                 bool* stop) {
    auto got = co_await resolve_text(r, host, "80", o);
    *stop = true;
    co_return got;
}

task<std::pair<std::vector<std::string>, int>> resolve_while_ticking(reactor& r, std::string host,
                                                                     resolve_options o) {
    bool stop = false;
    auto [got, ticks] =
        co_await coronet::when_all(resolve_then_stop(r, host, o, &stop), ticker(r, &stop));
    co_return std::pair{got, ticks};
}

}  // namespace

TEST_CASE("resolver: a name's IPv4 and IPv6 addresses all come back from a real DNS server",
          "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dnsmasq_server dns(hosts);
    reactor r{{.backend = kind}};
    resolve_options o{.servers = dns.server()};
    CHECK(r.run(resolve_text(r, "dual.test", "8080", o)) ==
          std::vector<std::string>{"127.0.0.1:8080", "[::1]:8080"});
    CHECK(r.run(resolve_text(r, "v4.test", "80", o)) == std::vector<std::string>{"127.0.0.2:80"});
    CHECK(r.run(resolve_text(r, "v6.test", "80", o)) == std::vector<std::string>{"[::1]:80"});
    o.family = AF_INET;
    CHECK(r.run(resolve_text(r, "dual.test", "80", o)) == std::vector<std::string>{"127.0.0.1:80"});
    CHECK(r.pending_count() == 0);
}

TEST_CASE("resolver: /etc/hosts comes first and literals need no server", "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    silent_dns_port nobody;  // a query sent here would time out: none is
    reactor r{{.backend = kind}};
    resolve_options o{.servers = nobody.server(), .attempt_timeout = 5000ms, .tries = 1};
    auto start = std::chrono::steady_clock::now();
    auto local = r.run(resolve_text(r, "localhost", "80", o));
    CHECK(std::find(local.begin(), local.end(), "127.0.0.1:80") != local.end());
    CHECK(r.run(resolve_text(r, "127.0.0.1", "7", o)) == std::vector<std::string>{"127.0.0.1:7"});
    CHECK(r.run(resolve_text(r, "::1", "7", o)) == std::vector<std::string>{"[::1]:7"});
    CHECK(std::chrono::steady_clock::now() - start < 4s);  // not one query waited for its timeout
}

TEST_CASE("resolver: an unknown name is a clear error naming it", "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dnsmasq_server dns(hosts);
    reactor r{{.backend = kind}};
    auto [ec, what] = r.run(resolve_error(r, "nosuch.test", {.servers = dns.server()}));
    CHECK(ec == coronet::errc::host_not_found);
    CHECK(what.find("nosuch.test") != std::string::npos);
    INFO(what);
    CHECK(what.find("no such host") != std::string::npos);
}

TEST_CASE("resolver: a DNS server list that does not parse is a clear error", "[resolver]") {
    reactor r;
    auto [ec, what] = r.run(resolve_error(r, "web.test", {.servers = "localhost:53"}));
    INFO(what);
    CHECK(ec == std::errc::invalid_argument);
    CHECK(what.find("DNS servers 'localhost:53' are not IP[:PORT]") != std::string::npos);
}

TEST_CASE("resolver: a server that refuses, and one that never answers, are clear errors",
          "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("refused (dnsmasq has no upstream for names outside .test)") {
        dnsmasq_server dns(hosts);
        auto [ec, what] =
            r.run(resolve_error(r, "example.com", {.servers = dns.server(), .tries = 1}));
        INFO(what);
        CHECK(ec == coronet::errc::dns_refused);
        CHECK(what.find("example.com") != std::string::npos);
    }
    SECTION("no answer in time") {
        silent_dns_port nobody;
        auto start = std::chrono::steady_clock::now();
        auto [ec, what] = r.run(resolve_error(
            r, "slow.test", {.servers = nobody.server(), .attempt_timeout = 200ms, .tries = 1}));
        INFO(what);
        CHECK(ec == coronet::errc::dns_timed_out);
        CHECK(what.find("slow.test") != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - start < 5s);
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE("resolver: while a DNS server takes 2 s, the loop keeps running", "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    slow_dns_server dns(2.0);
    reactor r{{.backend = kind}};
    auto start = std::chrono::steady_clock::now();
    auto [got, ticks] = r.run(resolve_while_ticking(r, "slow.test", {.servers = dns.server()}));
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    CHECK(got == std::vector<std::string>{"127.0.0.1:80"});
    // A 10 ms ticker on the same reactor ran all along (about 200 times in 2 s); a
    // blocking resolver would have let it run once or twice.
    std::fprintf(
        stderr,
        "resolver (%s): slow DNS answered after %lld ms; a 10 ms timer ticked %d times meanwhile\n",
        std::string(coronet::to_string(kind)).c_str(), static_cast<long long>(ms.count()), ticks);
    CHECK(ms >= 1500ms);
    CHECK(ticks >= 50);
}

TEST_CASE("resolver: with_timeout cancels a resolution in progress", "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    slow_dns_server dns(2.0);
    reactor r{{.backend = kind}};
    auto start = std::chrono::steady_clock::now();
    std::error_code ec = error_thrown_by([&] {
        r.run(coronet::with_timeout(
            r, resolve_text(r, "slow.test", "80", {.servers = dns.server()}), 200ms));
    });
    CHECK(ec == coronet::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - start < 1500ms);
    CHECK(r.pending_count() == 0);
}

namespace {
task<void> resolve_forever(reactor& r, std::string server) {
    resolve_options o{.servers = server};  // named: see the GCC 12.2 note in lib/resolver.hpp
    (void)co_await coronet::resolve(r, "slow.test", "80", o);
}
}  // namespace

TEST_CASE("resolver: a reactor destroyed while a resolution waits lets go of everything",
          "[resolver]") {
    CORONET_FOR_EACH_BACKEND(kind);
    slow_dns_server dns(2.0);
    {
        reactor r{{.backend = kind}};
        coronet::spawn(r, resolve_forever(r, dns.server()), "resolve");
        r.run_for(100ms);
        CHECK(r.task_count() == 1);  // still waiting for the answer
        CHECK(r.pending_count() > 0);
    }  // the task's frame dies with the reactor: its watches and c-ares' sockets go (ASan checks)
    // The process keeps no descriptor of it: a new reactor resolves as before.
    reactor r{{.backend = kind}};
    CHECK(r.run(coronet::with_timeout(r, resolve_text(r, "127.0.0.1", "1", {}), 5s)) ==
          std::vector<std::string>{"127.0.0.1:1"});
}
