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
#include <vector>

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

#include <coronet/coro/net.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
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
template <class C> concept push_zero = requires(C& c) { c.push(0); };
template <class C> concept push_null = requires(C& c) { c.push(NULL); };
template <class C> concept push_nullptr = requires(C& c) { c.push(nullptr); };
template <class C> concept write_zero = requires(C& c) { c.write(0); };
template <class C> concept write_null = requires(C& c) { c.write(NULL); };
template <class C> concept write_nullptr = requires(C& c) { c.write(nullptr); };
template <class C> concept push_literal = requires(C& c) { c.push("text"); };
template <class C> concept push_pointer = requires(C& c, const char* p) { c.push(p); };
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
    std::error_code flush_error;   // what the waiting flush() threw
    std::error_code write_error;   // what a write() after the failure threw
    std::error_code close_error;   // what close_when_done() threw
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

TEST_CASE("channel: a producer that throws at once fails flush write and close_when_done and closes",
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
