// tests/coro/channel_safety_test.cpp: coro/channel.hpp, safe by default (issue 15).
//
// A null pointer cannot be pushed (checked at compile time on the literals),
// a producer that throws fails the output side loudly instead of hanging its
// waiters, and the idle timeout re-arms itself on every read. Every I/O test
// runs on every backend over a Unix socketpair.
#include <coronet/coro/channel.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

#include <coronet/coro/net.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/log.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/log_capture.hpp"

using namespace coronet;
using namespace std::chrono_literals;

// --- item 3: no null-pointer pushes --------------------------------------------------
// The literals themselves: 0 and NULL are ambiguous between push(const char*) and the
// deleted push(std::nullptr_t), nullptr picks the deleted one. A string still compiles.
// (A requires-expression must depend on a template parameter to be checked softly,
// hence C = channel.)
template <class C>
concept push_zero = requires(C& c) {
    c.push(0);
};
template <class C>
concept push_null = requires(C& c) {
    c.push(NULL);
};
template <class C>
concept push_nullptr = requires(C& c) {
    c.push(nullptr);
};
template <class C>
concept write_zero = requires(C& c) {
    c.write(0);
};
template <class C>
concept write_null = requires(C& c) {
    c.write(NULL);
};
template <class C>
concept write_nullptr = requires(C& c) {
    c.write(nullptr);
};
template <class C>
concept push_literal = requires(C& c) {
    c.push("text");
};
template <class C>
concept push_pointer = requires(C& c, const char* p) {
    c.push(p);
};
static_assert(!push_zero<channel>);
static_assert(!push_null<channel>);
static_assert(!push_nullptr<channel>);
static_assert(!write_zero<channel>);
static_assert(!write_null<channel>);
static_assert(!write_nullptr<channel>);
static_assert(push_literal<channel>);
static_assert(push_pointer<channel>);

TEST_CASE("channel: push of a null pointer literal does not compile (static_asserts above)",
          "[channel]") {
    SUCCEED("checked at compile time");
}

namespace {

// --- item 2: failing producers -------------------------------------------------------

// Gives `chunks` pieces of `size` bytes, then throws `what` (a system_error with ec if set).
struct throwing_producer {
    int chunks;
    std::size_t size;
    std::error_code ec;
    std::string more() {
        if (chunks-- > 0) return std::string(size, 'x');
        if (ec) throw std::system_error(ec, "test producer");
        throw std::runtime_error("test producer broke");
    }
};

struct outcome {
    std::error_code flush_error;  // what the waiting flush() threw
    std::error_code write_error;  // what a write() after the failure threw
    std::error_code close_error;  // what close_when_done() threw
    bool closed = false;
};

task<outcome> push_and_wait(channel ch, producer p) {
    outcome out;
    ch.push("head\n");
    ch.push(std::move(p));
    ch.push("tail\n");
    try {
        co_await ch.flush();  // waits: the sender has not run yet
    } catch (const std::system_error& e) {
        out.flush_error = e.code();
    }
    try {
        co_await ch.write("more\n");
    } catch (const std::system_error& e) {
        out.write_error = e.code();
    }
    try {
        co_await ch.close_when_done();
    } catch (const std::system_error& e) {
        out.close_error = e.code();
    }
    out.closed = ch.closed();
    co_return out;
}

// Everything the peer receives until end of stream.
task<std::string> drain_peer(coronet::socket s) {
    std::string got;
    std::vector<std::byte> buf(64 * 1024);
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        got.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    co_return got;
}

struct run_result {
    outcome out;
    std::string peer_got;
};

run_result run_failing(reactor& r, producer p) {
    auto [a, b] = socket::pair(r);
    auto [out, got] = r.run(when_all(push_and_wait(channel(std::move(a)), std::move(p)),
                                     with_timeout(r, drain_peer(std::move(b)), 10s)));
    return {out, got};
}

}  // namespace

TEST_CASE(
    "channel: a producer that throws at once fails flush write and close_when_done and closes",
    "[channel][producer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    testing::log_capture cap{log_level::warning};
    auto res = run_failing(r, throwing_producer{0, 0, {}});
    CHECK(res.out.flush_error == make_error_code(errc::producer_failed));
    CHECK(res.out.write_error == make_error_code(errc::producer_failed));
    CHECK(res.out.close_error == make_error_code(errc::producer_failed));
    CHECK(res.out.closed);
    // Nothing after the failing producer may go: the peer sees at most what preceded it.
    CHECK(res.peer_got.find("tail") == std::string::npos);
    INFO(cap.dump());
    CHECK(cap.count(log_level::error, "producer failed") == 1);
    CHECK(cap.count(log_level::error, "test producer broke") == 1);
    CHECK(cap.count(log_level::error, "<channel") == 1);
}

TEST_CASE("channel: a producer that throws after some output keeps its system_error code",
          "[channel][producer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    testing::log_capture cap{log_level::warning};
    // 64 KiB fills one gather: it leaves before the third more() throws.
    auto ec = std::make_error_code(std::errc::io_error);
    auto res = run_failing(r, throwing_producer{2, 64 * 1024, ec});
    CHECK(res.out.flush_error == ec);
    CHECK(res.out.write_error == ec);
    CHECK(res.out.close_error == ec);
    CHECK(res.out.closed);
    CHECK(res.peer_got.rfind("head\n", 0) == 0);
    CHECK(res.peer_got.size() > 64 * 1024);  // some of the producer's output arrived
    CHECK(res.peer_got.find("tail") == std::string::npos);
    INFO(cap.dump());
    CHECK(cap.count(log_level::error, "producer failed") == 1);
}

TEST_CASE("channel: a file_producer whose read fails (EISDIR) is an error, not a hang",
          "[channel][producer]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    testing::log_capture cap{log_level::warning};
    // A directory opens for reading, but read() fails with EISDIR.
    int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    auto res = run_failing(r, file_producer(fd));
    auto eisdir = std::error_code(EISDIR, std::system_category());  // as file_producer throws it
    CHECK(res.out.flush_error == eisdir);
    CHECK(res.out.write_error == eisdir);
    CHECK(res.out.close_error == eisdir);
    CHECK(res.out.closed);
    INFO(cap.dump());
    CHECK(cap.count(log_level::error, "file_producer: read") == 1);
}

// --- item 4: the idle timeout, and routine errors logged at info ---------------------------

namespace {

// Sends `count` lines, one every `gap`, then closes (a slow peer: the gaps are the behaviour).
task<void> trickle(coronet::socket s, int count, std::chrono::milliseconds gap) {
    for (int i = 0; i < count; ++i) {
        co_await sleep_for(s.context(), gap);
        co_await send_all(s, "line " + std::to_string(i) + "\n");
    }
    s.close();
}

struct read_result {
    int lines = 0;
    std::error_code error;
};

task<read_result> read_all_lines(channel ch) {
    read_result out;
    try {
        for (;;) {
            auto line = co_await ch.read_until("\n");
            if (!line) break;
            ++out.lines;
        }
    } catch (const std::system_error& e) {
        out.error = e.code();
    }
    co_return out;
}

}  // namespace

TEST_CASE("channel: the idle timeout re-arms at every read, so a steady client outlives it",
          "[channel][timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    // 12 lines 25 ms apart (300 ms in all) against a 250 ms idle timeout: an
    // absolute deadline of 250 ms would cut this client off, the idle one never does.
    auto [got, unused] =
        r.run(when_all(read_all_lines(channel(std::move(a), {.idle_timeout = 250ms})),
                       trickle(std::move(b), 12, 25ms)));
    CHECK_FALSE(got.error);
    CHECK(got.lines == 12);
}

namespace {

struct idle_outcome {
    std::error_code first;              // the read of a silent peer
    std::optional<std::string> second;  // the read after the peer spoke
};

task<idle_outcome> read_idle_then_again(channel& ch, coronet::socket& peer) {
    idle_outcome out;
    try {
        co_await ch.read_until("\n");
    } catch (const std::system_error& e) {
        out.first = e.code();
    }
    co_await send_all(peer, "late\n");
    auto line = co_await ch.read_until("\n");  // a fresh read: a fresh idle timeout
    if (line) out.second = std::string(*line);
    co_return out;
}

}  // namespace

TEST_CASE("channel: an idle timeout fails a read of a silent peer, and the next read starts afresh",
          "[channel][timeout]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = socket::pair(r);
    channel ch(std::move(a));
    ch.set_idle_timeout(50ms);
    auto got = r.run(read_idle_then_again(ch, b));
    CHECK(got.first == make_error_code(errc::timed_out));
    CHECK(got.second == std::optional<std::string>("late"));  // not sticky, unlike a deadline
    SECTION("0 turns it off") {
        ch.set_idle_timeout(0ms);
        auto [res, unused] =
            r.run(when_all(read_all_lines(std::move(ch)), trickle(std::move(b), 1, 100ms)));
        CHECK_FALSE(res.error);
        CHECK(res.lines == 1);
    }
}

namespace {

task<std::pair<coronet::socket, coronet::socket>> tcp_pair(reactor& r) {
    coronet::socket listener = socket::listen(r, address::parse("127.0.0.1:0"));
    coronet::socket client = co_await socket::connect(r, listener.local_address());
    coronet::socket server = co_await listener.accept();
    co_return std::pair<coronet::socket, coronet::socket>(std::move(client), std::move(server));
}

task<void> session_idle(coronet::socket s) {
    channel ch(std::move(s), {.idle_timeout = 20ms});
    co_await ch.read_until("\n");
}

task<void> session_long_line(coronet::socket s) {
    channel ch(std::move(s), {.max_line = 8});
    co_await ch.read_until("\n");
}

task<void> session_too_much(coronet::socket s) {
    channel ch(std::move(s), {.max_buffer = 8});
    co_await ch.read_exactly(9);
}

task<void> session_broken(coronet::socket) {
    co_await std::suspend_never{};
    throw std::runtime_error("handler bug");
}

// The session's end: spawn logs what escaped it before its handle reports it done.
task<void> ended(coronet::task_handle h) { co_await h; }

// Sends data, then keeps the socket open until the session has ended.
task<void> send_then_wait(coronet::socket s, std::string data, coronet::task_handle h) {
    co_await send_all(s, data);
    co_await h;
}

}  // namespace

TEST_CASE("spawn: timed_out line_too_long and message_too_long are logged at info with the peer",
          "[spawn][channel]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    testing::log_capture cap{log_level::debug};
    auto [client, server] = r.run(tcp_pair(r));
    const std::string peer = client.local_address().to_string();  // the server's peer
    SECTION("an idle client") {
        auto h = spawn(r, session_idle(std::move(server)), "session");
        r.run(ended(std::move(h)));  // its idle timeout (20 ms) ends it
        INFO(cap.dump());
        CHECK(cap.count(log_level::info, "uncaptured exception in session") == 1);
        CHECK(cap.count(log_level::info, peer) == 1);
        CHECK(cap.count(log_level::error, "session") == 0);
    }
    SECTION("a line too long") {
        auto h = spawn(r, session_long_line(std::move(server)), "session");
        r.run(send_then_wait(std::move(client), "far too long a line\n", std::move(h)));
        INFO(cap.dump());
        CHECK(cap.count(log_level::info, "line too long") +
                  cap.count(log_level::info, "line_too_long") >=
              1);
        CHECK(cap.count(log_level::info, peer) == 1);
        CHECK(cap.count(log_level::error, "session") == 0);
    }
    SECTION("a message too long") {
        auto h = spawn(r, session_too_much(std::move(server)), "session");
        r.run(send_then_wait(std::move(client), "x", std::move(h)));
        INFO(cap.dump());
        CHECK(cap.count(log_level::info, peer) == 1);
        CHECK(cap.count(log_level::error, "session") == 0);
    }
    SECTION("anything else is still an error") {
        auto h = spawn(r, session_broken(std::move(server)), "session");
        r.run(ended(std::move(h)));
        INFO(cap.dump());
        CHECK(cap.count(log_level::error, "handler bug") == 1);
    }
}
