#include <coronet/lib/datagram_socket.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
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

#include "tests/support/backends.hpp"

using coronet::address;
using coronet::datagram_socket;
using coronet::reactor;
using coronet::task;
using namespace std::chrono_literals;

namespace {

// Echoes `count` datagrams back to their senders, each through a buffer of 64 KiB.
task<void> echo_server(datagram_socket& s, int count) {
    std::vector<std::byte> buf(65536);
    for (int i = 0; i < count; ++i) {
        coronet::datagram d = co_await s.recv_from(buf);
        co_await s.send_to(std::span(buf).first(d.size), d.from);
    }
}

// The payload of datagram i: a size from 0 to 9000 bytes, contents depending on i.
std::vector<std::byte> payload(int i) {
    static const std::size_t sizes[] = {0, 1, 17, 512, 1400, 1500, 4096, 9000, 100, 3};
    std::vector<std::byte> p(sizes[i % 10] + static_cast<std::size_t>(i % 7));
    for (std::size_t k = 0; k < p.size(); ++k)
        p[k] = static_cast<std::byte>((k * 31 + static_cast<std::size_t>(i)) & 0xff);
    return p;
}

// Sends `count` datagrams one at a time and checks each echo; returns how many matched.
task<int> echo_client(datagram_socket& c, address server, int count) {
    std::vector<std::byte> buf(65536);
    int matched = 0;
    for (int i = 0; i < count; ++i) {
        std::vector<std::byte> p = payload(i);
        std::size_t sent = co_await c.send_to(p, server);
        if (sent != p.size()) break;
        coronet::datagram d = co_await c.recv_from(buf);
        if (d.truncated || d.size != p.size() || !std::equal(p.begin(), p.end(), buf.begin()))
            break;
        if (d.from.to_string() != server.to_string()) break;
        ++matched;
    }
    co_return matched;
}

task<int> echo_both(reactor& r, datagram_socket& server, datagram_socket& client, int count) {
    auto [unused, matched] = co_await coronet::when_all(
        echo_server(server, count), echo_client(client, server.local_address(), count));
    co_return matched;
}

task<coronet::datagram> send_then_receive(datagram_socket& from, datagram_socket& to,
                                          std::string what, std::span<std::byte> into) {
    co_await from.send_to(what, to.local_address());
    co_return co_await to.recv_from(into);
}

task<std::error_code> refused_on_connected(datagram_socket& c) {
    try {
        co_await c.send("anyone there?");
        std::byte buf[64];
        (void)co_await c.recv_from(buf);  // the ICMP port unreachable comes back here
    } catch (const std::system_error& e) {
        co_return e.code();
    }
    co_return std::error_code{};
}

}  // namespace

TEST_CASE("datagram_socket: 10,000 datagrams of mixed sizes echo byte for byte",
          "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto server = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    auto client = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    CHECK(r.channel_count() == 2);
    int matched = r.run(coronet::with_timeout(r, echo_both(r, server, client, 10'000), 60s));
    CHECK(matched == 10'000);
}

TEST_CASE("datagram_socket: several datagrams queued are received one by one",
          "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto a = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    auto b = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    // All three arrive before the first receive: boundaries are kept, none is lost
    // (the readiness backends must not take a short datagram for a drained stream).
    auto three = [](datagram_socket& a, datagram_socket& b) -> task<std::string> {
        for (const char* m : {"one", "two!", "three"})
            co_await a.send_to(std::string(m), b.local_address());
        std::string got;
        std::byte buf[100];
        for (int i = 0; i < 3; ++i) {
            auto d = co_await b.recv_from(buf);
            got += std::string(reinterpret_cast<const char*>(buf), d.size) + "|";
        }
        co_return got;
    };
    CHECK(r.run(coronet::with_timeout(r, three(a, b), 10s)) == "one|two!|three|");
}

TEST_CASE("datagram_socket: a datagram larger than the buffer is reported truncated",
          "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto a = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    auto b = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    std::byte small[8];
    coronet::datagram d = r.run(
        coronet::with_timeout(r, send_then_receive(a, b, "twenty bytes, truly!", small), 10s));
    CHECK(d.truncated);
    CHECK(d.size == 8);
    CHECK(d.full_size == 20);
    CHECK(std::string(reinterpret_cast<const char*>(small), 8) == "twenty b");
    CHECK(d.from.to_string() == a.local_address().to_string());

    std::byte big[64];
    d = r.run(coronet::with_timeout(r, send_then_receive(a, b, "", big), 10s));
    CHECK_FALSE(d.truncated);
    CHECK(d.size == 0);  // an empty datagram is a datagram, not an end of stream
}

TEST_CASE("datagram_socket: ECONNREFUSED on a connected socket is reported", "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    // A port nobody listens on: bind one, note it, close it.
    address dead;
    {
        auto gone = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
        dead = gone.local_address();
    }
    auto c = datagram_socket::open(r, AF_INET);
    c.connect(dead);
    std::error_code ec = r.run(coronet::with_timeout(r, refused_on_connected(c), 10s));
    CHECK(ec == std::errc::connection_refused);
}

TEST_CASE("datagram_socket: IPv6 loopback works too", "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    datagram_socket a, b;
    try {
        a = datagram_socket::bind(r, address::parse("[::1]:0"));
        b = datagram_socket::bind(r, address::parse("[::1]:0"));
    } catch (const std::system_error& e) {
        WARN("no IPv6 loopback here (" << e.what() << "), skipped");
        return;
    }
    std::byte buf[32];
    coronet::datagram d =
        r.run(coronet::with_timeout(r, send_then_receive(a, b, "over six", buf), 10s));
    CHECK(d.size == 8);
    CHECK(d.from.to_string() == a.local_address().to_string());
}
