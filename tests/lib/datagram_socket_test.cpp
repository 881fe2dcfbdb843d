#include <coronet/lib/datagram_socket.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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
#include <coronet/lib/timer.hpp>

#include <sys/utsname.h>

#include "tests/support/backends.hpp"

using coronet::address;
using coronet::backend_kind;
using coronet::datagram_socket;
using coronet::reactor;
using coronet::task;
using namespace std::chrono_literals;

namespace {

// True when this machine's io_uring must take a multishot recvmsg: IORING_RECV_MULTISHOT
// on IORING_OP_RECVMSG came with Linux 6.0. Asked of the kernel's version, not of the
// backend's probe, so a probe that fails where the kernel has it fails these tests.
bool multishot_recvmsg_here() {
    if (!coronet::backend_available(backend_kind::io_uring)) return false;
    utsname u{};
    if (::uname(&u) != 0) return false;
    return std::atoi(u.release) >= 6;
}

// True when a socket with this option receives through the multishot recvmsg.
bool multishot(backend_kind kind, bool option = true) {
    static const bool here = multishot_recvmsg_here();
    return option && kind == backend_kind::io_uring && here;
}

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

task<std::size_t> send_text(datagram_socket& s, std::string text, address to) {
    std::size_t n = co_await s.send_to(text, to);
    co_return n;
}

task<std::size_t> send_bytes(datagram_socket& s, std::span<const std::byte> data, address to) {
    std::size_t n = co_await s.send_to(data, to);
    co_return n;
}

task<coronet::datagram> receive(datagram_socket& s, std::span<std::byte> into) {
    coronet::datagram d = co_await s.recv_from(into);
    co_return d;
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

// Datagram i of a burst: 100 to 1,400 bytes, starting with its number (4 bytes).
std::vector<std::byte> numbered(int i) {
    std::vector<std::byte> p(100 + static_cast<std::size_t>(i * 97 % 1301));
    for (std::size_t k = 0; k < p.size(); ++k)
        p[k] = static_cast<std::byte>((k * 13 + static_cast<std::size_t>(i)) & 0xff);
    auto n = static_cast<std::uint32_t>(i);
    std::memcpy(p.data(), &n, sizeof n);
    return p;
}

// The number of a datagram received into buf, or -1 when its bytes are not numbered(i)'s.
int number_of(std::span<const std::byte> got) {
    std::uint32_t n = 0;
    if (got.size() < sizeof n) return -1;
    std::memcpy(&n, got.data(), sizeof n);
    std::vector<std::byte> want = numbered(static_cast<int>(n));
    if (!std::equal(want.begin(), want.end(), got.begin(), got.end())) return -1;
    return static_cast<int>(n);
}

struct burst_seen {
    std::vector<int> order;       // the numbers received, in order (-1: damaged)
    std::size_t queued_away = 0;  // datagrams taken ahead while the reader was away
    std::size_t most_queued = 0;  // the most ever queued, seen at each receive
    std::uint32_t arms_away = 0;  // multishot arms by then
};

// b receives one datagram (on io_uring that arms its multishot receive), then is
// away while a sends `count` numbered datagrams; then b receives them. With
// `until_quiet`, b receives until nothing comes for 200 ms (some were dropped),
// else exactly `count`. While away, the loop turns until b's multishot has queued
// `queued_when_away` (0 without a multishot: nothing to wait for).
task<burst_seen> burst_while_away(reactor& r, datagram_socket& a, datagram_socket& b, int count,
                                  bool until_quiet, std::size_t queued_when_away) {
    burst_seen seen;
    std::vector<std::byte> buf(65536);
    const address to = b.local_address();
    std::size_t sent = co_await a.send_to(std::string_view("hello"), to);
    coronet::datagram first = co_await b.recv_from(buf);
    if (sent != 5 || first.size != 5) co_return seen;
    for (int i = 0; i < count; ++i) {
        std::vector<std::byte> p = numbered(i);
        std::size_t n = co_await a.send_to(p, to);
        if (n != p.size()) co_return seen;
    }
    // A millisecond a turn, so that the multishot's CQEs are reaped; 5 s at most.
    for (int i = 0; i < 5000 && b.queued() < queued_when_away; ++i)
        co_await coronet::sleep_for(r, 1ms);
    seen.queued_away = b.queued();
    seen.arms_away = b.multishot_arms();
    for (int i = 0; until_quiet || i < count; ++i) {
        seen.most_queued = std::max(seen.most_queued, b.queued());
        coronet::datagram d;
        try {
            d = co_await coronet::with_timeout(r, receive(b, buf), 200ms);
        } catch (const std::system_error&) {
            if (!until_quiet) seen.order.push_back(-2);
            break;  // quiet for 200 ms
        }
        seen.order.push_back(number_of(std::span(buf).first(d.size)));
    }
    co_return seen;
}

}  // namespace

TEST_CASE("datagram_socket: 10,000 datagrams of mixed sizes echo byte for byte",
          "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const bool option = GENERATE(true, false);
    INFO("datagram_options::multishot_recv = " << option);
    reactor r{{.backend = kind}};
    coronet::datagram_options o{.multishot_recv = option};
    auto server = datagram_socket::bind(r, address::parse("127.0.0.1:0"), o);
    auto client = datagram_socket::bind(r, address::parse("127.0.0.1:0"), o);
    CHECK(r.channel_count() == 2);
    int matched = r.run(coronet::with_timeout(r, echo_both(r, server, client, 10'000), 60s));
    CHECK(matched == 10'000);
    INFO("multishot arms: server " << server.multishot_arms() << ", client "
                                   << client.multishot_arms());
    if (multishot(kind, option)) {
        // One arm serves many datagrams. The kernel ends it after an empty datagram
        // (a length of 0 reads as "finished"): 143 of the 10,000 are empty.
        CHECK(server.multishot_arms() >= 1);
        CHECK(server.multishot_arms() <= 500);
        CHECK(client.multishot_arms() <= 500);
    } else {
        CHECK(server.multishot_arms() == 0);
        CHECK(client.multishot_arms() == 0);
    }
    CHECK(r.pending_count() == 0);
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

    // The same when the datagram was taken ahead (queued by io_uring's multishot
    // receive, armed by the receives above) before the receive asked for it.
    r.run(send_text(a, "twenty bytes, truly!", b.local_address()));
    r.run_for(20ms);
    if (multishot(kind)) {
        CHECK(b.multishot_arms() >= 1);
        CHECK(b.queued() == 1);
    }
    d = r.run(coronet::with_timeout(r, receive(b, small), 10s));
    CHECK(d.truncated);
    CHECK(d.size == 8);
    CHECK(d.full_size == 20);
    CHECK(std::string(reinterpret_cast<const char*>(small), 8) == "twenty b");
    CHECK(d.from.to_string() == a.local_address().to_string());
    CHECK(b.queued() == 0);

    // The largest UDP datagram over IPv4 (65,507 bytes) comes whole into a buffer
    // that holds it, and is cut, with its whole length reported, into one that does not.
    std::vector<std::byte> largest(65507);
    for (std::size_t k = 0; k < largest.size(); ++k)
        largest[k] = static_cast<std::byte>(k % 251);
    std::vector<std::byte> into(65536);
    for (std::size_t room : {std::size_t(65536), std::size_t(1000)}) {
        INFO("buffer " << room);
        std::size_t sent = r.run(send_bytes(a, largest, b.local_address()));
        REQUIRE(sent == largest.size());
        d = r.run(coronet::with_timeout(r, receive(b, std::span(into).first(room)), 10s));
        CHECK(d.truncated == (room < largest.size()));
        CHECK(d.full_size == largest.size());
        CHECK(d.size == std::min(room, largest.size()));
        CHECK(std::equal(into.begin(), into.begin() + static_cast<std::ptrdiff_t>(d.size),
                         largest.begin()));
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE("datagram_socket: a burst that arrives while the reader is away is delivered in order",
          "[datagram_socket]") {
    // io_uring takes up to receive_queue (8 here) ahead of the reader; the rest wait
    // in the socket's receive buffer and come after them, in order. The other
    // backends take nothing ahead: the socket holds all 40.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto a = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    auto b = datagram_socket::bind(r, address::parse("127.0.0.1:0"), {.receive_queue = 8});
    b.set_receive_buffer(256 * 1024);
    burst_seen seen = r.run(coronet::with_timeout(
        r, burst_while_away(r, a, b, 40, false, multishot(kind) ? 8 : 0), 30s));
    std::vector<int> want(40);
    for (int i = 0; i < 40; ++i)
        want[static_cast<std::size_t>(i)] = i;
    CHECK(seen.order == want);
    INFO("arms " << seen.arms_away << " then " << b.multishot_arms());
    if (multishot(kind)) {
        CHECK(seen.queued_away == 8);  // the bound: the kernel ended the receive (ENOBUFS)
        CHECK(seen.most_queued <= 8);
        CHECK(b.multishot_arms() >= 2);  // armed again once the queue had emptied
    } else {
        CHECK(seen.queued_away == 0);
        CHECK(b.multishot_arms() == 0);
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE(
    "datagram_socket: past the bound and the socket's buffer, datagrams are dropped, "
    "never reordered",
    "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto a = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    auto b = datagram_socket::bind(r, address::parse("127.0.0.1:0"), {.receive_queue = 4});
    b.set_receive_buffer(16 * 1024);  // holds a few datagrams of up to 1,400 bytes
    burst_seen seen = r.run(coronet::with_timeout(
        r, burst_while_away(r, a, b, 300, true, multishot(kind) ? 4 : 0), 30s));
    INFO("received " << seen.order.size() << " of 300; queued while away " << seen.queued_away);
    REQUIRE_FALSE(seen.order.empty());
    CHECK(seen.order.size() < 300);  // the socket's buffer could not hold them all
    bool increasing = true;
    for (std::size_t i = 0; i < seen.order.size(); ++i)
        if (seen.order[i] < 0 || (i > 0 && seen.order[i] <= seen.order[i - 1])) increasing = false;
    CHECK(increasing);
    CHECK(seen.queued_away <= 4);
    CHECK(seen.most_queued <= 4);
    if (multishot(kind)) CHECK(seen.queued_away == 4);
}

TEST_CASE("datagram_socket: a receive that timed out loses no datagram", "[datagram_socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto a = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    auto b = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    std::byte buf[64];
    CHECK_THROWS_AS(r.run(coronet::with_timeout(r, receive(b, buf), 20ms)), std::system_error);
    CHECK(r.pending_count() == 0);  // the waiting receive is gone (the multishot stays armed)
    coronet::datagram d =
        r.run(coronet::with_timeout(r, send_then_receive(a, b, "late", buf), 10s));
    CHECK(std::string(reinterpret_cast<const char*>(buf), d.size) == "late");
    if (multishot(kind)) CHECK(b.multishot_arms() == 1);
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
    if (multishot(kind)) CHECK(c.multishot_arms() == 1);  // the error ended the multishot receive
}

// Arms b's multishot receive, then has datagrams written into its blocks while it
// closes: b is closed right after the sends, before the loop turns again.
task<std::uint32_t> close_while_receiving(datagram_socket& a, datagram_socket& b) {
    std::byte buf[64];
    const address to = b.local_address();
    coronet::datagram d = co_await send_then_receive(a, b, "arm", buf);
    (void)d;
    for (int i = 0; i < 20; ++i) {
        std::size_t n = co_await a.send_to(std::string_view("in flight"), to);
        (void)n;
    }
    std::uint32_t arms = b.multishot_arms();
    b.close();
    co_return arms;
}

task<void> receive_forever(datagram_socket s) {
    std::byte buf[64];
    for (;;) {
        coronet::datagram d = co_await s.recv_from(buf);
        (void)d;
    }
}

TEST_CASE("datagram_socket: closing with the multishot receive armed frees everything",
          "[datagram_socket]") {
    // Run under AddressSanitizer: the kernel may write into the socket's buffer
    // ring until the cancelled receive's last CQE, so close() waits for it before
    // unmapping. Each round's socket takes the buffer group the last one gave
    // back: registering it again succeeds only if it was unregistered.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto a = datagram_socket::bind(r, address::parse("127.0.0.1:0"));
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round);
        auto b = datagram_socket::bind(r, address::parse("127.0.0.1:0"), {.receive_queue = 8});
        std::uint32_t arms = r.run(coronet::with_timeout(r, close_while_receiving(a, b), 10s));
        CHECK(arms == (multishot(kind) ? 1u : 0u));
        CHECK_FALSE(b.is_open());
        CHECK(b.queued() == 0);
        CHECK(r.pending_count() == 0);
        CHECK(r.channel_count() == 1);
    }
    r.run_for(20ms);  // nothing left to complete
    CHECK(r.pending_count() == 0);

    SECTION("a reactor that dies with a task waiting in recv_from closes its socket") {
        reactor r2{{.backend = kind}};
        auto c = datagram_socket::bind(r2, address::parse("127.0.0.1:0"));
        auto d = datagram_socket::bind(r2, address::parse("127.0.0.1:0"));
        const address to = d.local_address();
        coronet::spawn(r2, receive_forever(std::move(d)), "receiver");
        r2.run_for(10ms);
        for (int i = 0; i < 3; ++i)
            r2.run(send_text(c, "to a dying reactor", to));
        r2.run_for(10ms);
        CHECK(r2.channel_count() == 2);
        CHECK(r2.task_count() == 1);
        c.close();
    }  // r2's destructor destroys the task: its receive is abandoned, its socket closed
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
