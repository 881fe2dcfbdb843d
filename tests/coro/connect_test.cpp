#include <coronet/coro/connect.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <system_error>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/dns_server.hpp"
#include "tests/support/listeners.hpp"

using coronet::reactor;
using coronet::task;
using namespace coronet::testing;
using namespace std::chrono_literals;

namespace {

const char* hosts = "127.0.0.1 dual.test\n::1 dual.test\n";

task<std::string> connect_peer(reactor& r, std::string host, unsigned port,
                               coronet::connect_host_options o) {
    coronet::socket s = co_await coronet::connect(r, host, port, o);
    co_return s.peer_address().to_string();
}

// The error connecting throws, and its message.
std::pair<std::error_code, std::string> connect_error(reactor& r, std::string host, unsigned port,
                                                      coronet::connect_host_options o) {
    try {
        r.run(connect_peer(r, host, port, o));
    } catch (const std::system_error& e) {
        return {e.code(), e.what()};
    }
    return {};
}

}  // namespace

TEST_CASE("connect: a name with ::1 and 127.0.0.1 where only 127.0.0.1 listens connects",
          "[connect]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dnsmasq_server dns(hosts);
    dual_listeners l(side::absent, side::open);
    reactor r{{.backend = kind}};
    auto peer = r.run(connect_peer(r, "dual.test", l.port, {.resolve = {.servers = dns.server()}}));
    CHECK(peer == "127.0.0.1:" + std::to_string(l.port));
    CHECK(r.pending_count() == 0);
}

TEST_CASE("connect: a name whose first address drops SYNs connects through the second",
          "[connect]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dnsmasq_server dns(hosts);
    dual_listeners l(side::stuck, side::open);
    reactor r{{.backend = kind}};
    auto start = std::chrono::steady_clock::now();
    auto peer = r.run(connect_peer(r, "dual.test", l.port, {.resolve = {.servers = dns.server()}}));
    CHECK(peer == "127.0.0.1:" + std::to_string(l.port));
    CHECK(std::chrono::steady_clock::now() - start < 2s);  // loose: about 250 ms
}

TEST_CASE("connect: the overall timeout covers resolution and every attempt", "[connect]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("every address drops SYNs") {
        dnsmasq_server dns(hosts);
        dual_listeners l(side::stuck, side::stuck);
        auto start = std::chrono::steady_clock::now();
        auto [ec, what] = connect_error(r, "dual.test", l.port,
                                        {.resolve = {.servers = dns.server()}, .timeout = 600ms});
        CHECK(ec == coronet::errc::timed_out);
        CHECK(what.find("dual.test") != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - start < 3s);
    }
    SECTION("the DNS server is slow") {
        slow_dns_server dns(2.0);
        auto start = std::chrono::steady_clock::now();
        auto [ec, what] = connect_error(r, "slow.test", 80,
                                        {.resolve = {.servers = dns.server()}, .timeout = 300ms});
        CHECK(ec == coronet::errc::timed_out);
        CHECK(std::chrono::steady_clock::now() - start < 1500ms);
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE("connect: an unknown name, and a name nobody listens on, are clear errors", "[connect]") {
    CORONET_FOR_EACH_BACKEND(kind);
    dnsmasq_server dns(hosts);
    reactor r{{.backend = kind}};
    auto [ec, what] = connect_error(r, "nosuch.test", 80, {.resolve = {.servers = dns.server()}});
    CHECK(ec == coronet::errc::host_not_found);
    CHECK(what.find("nosuch.test") != std::string::npos);

    dual_listeners l(side::absent, side::absent);
    std::tie(ec, what) =
        connect_error(r, "dual.test", l.port, {.resolve = {.servers = dns.server()}});
    CHECK(ec == std::errc::connection_refused);
    INFO(what);
    CHECK(what.find("127.0.0.1:" + std::to_string(l.port)) != std::string::npos);
}

namespace {
task<void> connect_forever(reactor& r, std::string host, unsigned port, std::string server) {
    coronet::connect_host_options o{.resolve = {.servers = server}};
    coronet::socket s = co_await coronet::connect(r, host, port, o);
}
}  // namespace

TEST_CASE("connect: a reactor destroyed while connecting lets go of everything", "[connect]") {
    CORONET_FOR_EACH_BACKEND(kind);
    SECTION("while the name resolves") {
        slow_dns_server dns(2.0);
        reactor r{{.backend = kind}};
        coronet::spawn(r, connect_forever(r, "slow.test", 80, dns.server()), "connect");
        r.run_for(100ms);
        CHECK(r.task_count() == 1);
    }
    SECTION("while the addresses race") {
        dnsmasq_server dns(hosts);
        dual_listeners l(side::stuck, side::stuck);
        reactor r{{.backend = kind}};
        coronet::spawn(r, connect_forever(r, "dual.test", l.port, dns.server()), "connect");
        r.run_for(500ms);
        CHECK(r.task_count() == 1);
    }
}
