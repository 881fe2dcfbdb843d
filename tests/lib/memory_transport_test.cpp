// tests/lib/memory_transport_test.cpp: lib/memory_transport.hpp, the in-memory pair.
//
// Every test runs on every backend: the pair performs no I/O of its own, but
// its operations finish through the reactor (reactor::hold/finish), and the
// timers and cancellation that reach them differ per backend. Ordering is
// deterministic: when_all starts its parts in order, each running until its
// first suspension, and the pair answers a receive or a send as soon as the
// other end acts; no test waits on the clock to order events.
#include <coronet/lib/memory_transport.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <sys/uio.h>

#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/timer.hpp>
#include <coronet/lib/transport.hpp>

#include "tests/support/backends.hpp"

using namespace coronet;
using namespace std::chrono_literals;

namespace {

// co_await: one receive through a transport; the raw result (bytes, 0 at end
// of stream, -errno), so a test can see ECONNRESET and ECANCELED as they are.
class [[nodiscard]] raw_recv : public op_awaiter {
public:
    raw_recv(transport& t, std::span<std::byte> buffer) noexcept
        : op_awaiter(t.context()), via_(t) {
        op_.code = op_code::recv;
        op_.buffer = buffer;
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        return !via_.start_recv(op_);
    }
    int await_resume() noexcept { return finish(); }

private:
    transport& via_;
};

// co_await: one send of `bytes` through a transport; the raw result.
class [[nodiscard]] raw_send : public op_awaiter {
public:
    raw_send(transport& t, std::string_view bytes) noexcept : op_awaiter(t.context()), via_(t) {
        iov_.iov_base = const_cast<char*>(bytes.data());
        iov_.iov_len = bytes.size();
        msg_.msg_iov = &iov_;
        msg_.msg_iovlen = 1;
        op_.code = op_code::sendmsg;
        op_.msg = &msg_;
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        return !via_.start_send(op_);
    }
    int await_resume() noexcept { return finish(); }

private:
    transport& via_;
    iovec iov_{};
    msghdr msg_{};
};

// The outcome of one receive: its raw result and the bytes it brought.
struct got {
    int result = 0;
    std::string bytes;
    bool operator==(const got&) const = default;
};

std::ostream& operator<<(std::ostream& os, const got& g) {
    if (g.result < 0) return os << errno_name(-g.result);
    return os << g.result << " \"" << g.bytes << "\"";
}

got bytes(std::string_view s) { return {static_cast<int>(s.size()), std::string(s)}; }
got error(int e) { return {-e, {}}; }
const got end_of_stream{0, {}};

task<got> receive(transport& t, std::size_t max = 64) {
    std::vector<std::byte> buf(max);
    got out;
    out.result = co_await raw_recv(t, buf);
    if (out.result > 0) out.bytes.assign(reinterpret_cast<const char*>(buf.data()), out.result);
    co_return out;
}

task<int> send(transport& t, std::string data) { co_return co_await raw_send(t, data); }

// Receives until end of stream or an error; the pieces as they came.
task<std::vector<got>> receive_to_end(transport& t, std::size_t max = 64) {
    std::vector<got> out;
    for (;;) {
        got g = co_await receive(t, max);
        out.push_back(g);
        if (g.result <= 0) break;
    }
    co_return out;
}

// Gives the reactor one turn (resumptions queued by the other end run).
task<void> one_turn(reactor& r) { co_await sleep_for(r, 0ms); }

}  // namespace

TEST_CASE("memory_transport: each write arrives as a receive of its own, split as written",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r);
    b->write("GET / HT");
    b->write("TP/1.1\r\n");
    b->write("\r\n");
    CHECK(a->unread() == 18);
    CHECK(r.run(receive(*a)) == bytes("GET / HT"));
    CHECK(a->unread() == 10);
    CHECK(r.run(receive(*a)) == bytes("TP/1.1\r\n"));
    CHECK(r.run(receive(*a)) == bytes("\r\n"));
    CHECK(a->unread() == 0);
    CHECK_FALSE(a->peer_done());

    // The other way: what a sends, b reads; nothing crosses over.
    CHECK(r.run(send(*a, "HTTP/1.1 200 OK\r\n")) == 17);
    CHECK(r.run(send(*a, "\r\n")) == 2);
    CHECK(b->unread() == 19);
    CHECK(a->unread() == 0);
    CHECK(b->read_all() == "HTTP/1.1 200 OK\r\n\r\n");
    CHECK(b->unread() == 0);
    CHECK(b->read_all() == "");
    CHECK(r.pending_count() == 0);
}

TEST_CASE("memory_transport: a receive smaller than a piece takes the rest of it next time",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r);
    b->write("abcdefg");
    b->write("hi");
    CHECK(r.run(receive(*a, 3)) == bytes("abc"));
    CHECK(a->unread() == 6);
    CHECK(r.run(receive(*a, 3)) == bytes("def"));
    CHECK(r.run(receive(*a, 3)) == bytes("g"));  // never joined with the next piece
    CHECK(r.run(receive(*a, 3)) == bytes("hi"));
    CHECK(a->unread() == 0);
}

TEST_CASE("memory_transport: a receive with nothing unread waits for the next write",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r);
    bool received = false;
    auto reader = [&]() -> task<got> {
        got g = co_await receive(*a);
        received = true;
        co_return g;
    };
    auto writer = [&]() -> task<void> {
        co_await one_turn(r);
        CHECK_FALSE(received);  // the receive is held, not answered
        CHECK(r.pending_count() >= 1);
        b->write("late");
    };
    auto [g, unused] = r.run(when_all(reader(), writer()));
    CHECK(received);
    CHECK(g == bytes("late"));
    CHECK(r.pending_count() == 0);
}

TEST_CASE(
    "memory_transport: a half-close gives end of stream after the pieces, and the other "
    "direction goes on",
    "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r);
    SECTION("written before the half-close") {
        b->write("one");
        b->write("two");
        b->shutdown_send();
        CHECK(a->peer_done());
        CHECK(r.run(receive_to_end(*a)) ==
              std::vector<got>{bytes("one"), bytes("two"), end_of_stream});
        CHECK(r.run(receive(*a)) == end_of_stream);  // and again
    }
    SECTION("a receive waiting when the half-close comes") {
        auto closer = [&]() -> task<void> {
            co_await one_turn(r);
            b->write("last");
            co_await one_turn(r);
            b->shutdown_send();
        };
        auto [pieces, unused] = r.run(when_all(receive_to_end(*a), closer()));
        CHECK(pieces == std::vector<got>{bytes("last"), end_of_stream});
    }
    // The half-closed end still reads; its own sends fail, and write() is ignored.
    CHECK(r.run(send(*a, "reply")) == 5);
    CHECK(b->read_all() == "reply");
    CHECK_FALSE(b->peer_done());
    CHECK(r.run(send(*b, "more")) == -EPIPE);
    b->write("ignored");
    CHECK(a->unread() == 0);
    CHECK(r.pending_count() == 0);
}

TEST_CASE("memory_transport: a reset fails the peer's receives and sends with ECONNRESET",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("nothing waiting") {
        auto [a, b] = memory_transport::pair(r);
        b->write("unread");  // a reset drops what was in flight, as TCP's RST does
        b->reset();
        CHECK(a->peer_done());
        CHECK(r.run(receive(*a)) == error(ECONNRESET));
        CHECK(r.run(receive(*a)) == error(ECONNRESET));
        CHECK(r.run(send(*a, "x")) == -ECONNRESET);
    }
    SECTION("a receive waiting") {
        auto [a, b] = memory_transport::pair(r);
        auto resetter = [&]() -> task<void> {
            co_await one_turn(r);
            b->reset();
        };
        auto [g, unused] = r.run(when_all(receive(*a), resetter()));
        CHECK(g == error(ECONNRESET));
        CHECK(r.run(send(*a, "x")) == -ECONNRESET);
    }
    SECTION("a send waiting for room") {
        auto [a, b] = memory_transport::pair(r, {.capacity = 4});
        CHECK(r.run(send(*a, "full")) == 4);
        auto resetter = [&]() -> task<void> {
            co_await one_turn(r);
            b->reset();
        };
        auto [n, unused] = r.run(when_all(send(*a, "waits"), resetter()));
        CHECK(n == -ECONNRESET);
        CHECK(r.run(receive(*a)) == error(ECONNRESET));
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE("memory_transport: with a capacity a send waits until the peer reads, then goes on",
          "[memory_transport]") {
    // A slow reader: the writer's sends take at most the room left, and wait
    // while the peer holds `capacity` unread bytes; every byte arrives, in order.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r, {.capacity = 4});
    const std::string data = "0123456789";
    std::vector<int> sends;
    bool sender_done = false;
    auto sender = [&]() -> task<void> {
        for (std::size_t from = 0; from < data.size();) {
            int n = co_await raw_send(*a, std::string_view(data).substr(from));
            sends.push_back(n);
            if (n <= 0) break;
            from += static_cast<std::size_t>(n);
        }
        a->shutdown_send();
        sender_done = true;
    };
    std::vector<std::size_t> unread_seen;
    auto reader = [&]() -> task<std::vector<got>> {
        // The sender is suspended now: 4 bytes taken, the rest waiting for room.
        CHECK(sends == std::vector<int>{4});
        CHECK_FALSE(sender_done);
        std::vector<got> pieces;
        for (;;) {
            unread_seen.push_back(b->unread());
            got g = co_await receive(*b);
            pieces.push_back(g);
            if (g.result <= 0) break;
        }
        co_return pieces;
    };
    auto [unused, pieces] = r.run(when_all(sender(), reader()));
    CHECK(sends == std::vector<int>{4, 4, 2});
    CHECK(pieces == std::vector<got>{bytes("0123"), bytes("4567"), bytes("89"), end_of_stream});
    for (std::size_t u : unread_seen)
        CHECK(u <= 4);
    CHECK(sender_done);

    CHECK(r.pending_count() == 0);
}

TEST_CASE("memory_transport: read_all makes room for a send waiting on a full pipe",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [c, d] = memory_transport::pair(r, {.capacity = 3});
    auto drainer = [&]() -> task<std::string> {
        std::string all;
        while (all.size() < 7) {
            co_await one_turn(r);
            CHECK(d->unread() <= 3);
            all += d->read_all();
        }
        co_return all;
    };
    auto writer = [&]() -> task<std::size_t> {
        std::size_t total = 0;
        std::string s = "abcdefg";
        while (total < s.size()) {
            int n = co_await raw_send(*c, std::string_view(s).substr(total));
            REQUIRE(n > 0);
            total += static_cast<std::size_t>(n);
        }
        co_return total;
    };
    auto [total, all] = r.run(when_all(writer(), drainer()));
    CHECK(total == 7);
    CHECK(all == "abcdefg");
    CHECK(r.pending_count() == 0);
}

TEST_CASE("memory_transport: a cancelled receive finishes with ECANCELED and loses no byte",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r);
    b->write("abcdef");
    CHECK(r.run(receive(*a, 2)) == bytes("ab"));
    CHECK(r.run(receive(*a, 4)) == bytes("cdef"));
    // Nothing unread: the receive is held until with_timeout cancels it.
    got inner{1, "not run"};
    auto waiting = [&]() -> task<void> { inner = co_await receive(*a); };
    std::error_code ec = testing::error_thrown_by([&] { r.run(with_timeout(r, waiting(), 5ms)); });
    CHECK(ec == make_error_code(errc::timed_out));
    CHECK(inner == error(ECANCELED));
    CHECK(r.pending_count() == 0);
    // The pipe forgot the receive: the next write goes to the next receive, whole.
    b->write("ghi");
    CHECK(a->unread() == 3);
    CHECK(r.run(receive(*a)) == bytes("ghi"));
    // And a scope cancelled before the receive starts never takes a byte.
    b->write("jkl");
    ec = testing::error_thrown_by([&] {
        r.run(with_timeout(
            r,
            [&]() -> task<void> {
                co_await sleep_for(r, 1h);  // cancelled at the deadline
                inner = co_await receive(*a);
            }(),
            5ms));
    });
    CHECK(ec == make_error_code(errc::timed_out));
    CHECK(a->unread() == 3);
    CHECK(r.run(receive(*a)) == bytes("jkl"));
}

TEST_CASE("memory_transport: a cancelled send takes nothing and the pipe goes on",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = memory_transport::pair(r, {.capacity = 2});
    CHECK(r.run(send(*a, "xy")) == 2);
    int inner = 1;
    auto waiting = [&]() -> task<void> { inner = co_await raw_send(*a, "zz"); };
    std::error_code ec = testing::error_thrown_by([&] { r.run(with_timeout(r, waiting(), 5ms)); });
    CHECK(ec == make_error_code(errc::timed_out));
    CHECK(inner == -ECANCELED);
    CHECK(r.pending_count() == 0);
    CHECK(b->read_all() == "xy");  // the cancelled send left nothing behind
    CHECK(r.run(send(*a, "zz")) == 2);
    CHECK(b->read_all() == "zz");
}

TEST_CASE("memory_transport: destroying an end while the other waits gives it end of stream",
          "[memory_transport]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("a receive waits") {
        auto [a, b] = memory_transport::pair(r);
        b->write("before");
        auto killer = [&]() -> task<void> {
            co_await one_turn(r);
            b->write("last words");
            b.reset();  // the unique_ptr: the end dies
        };
        auto [pieces, unused] = r.run(when_all(receive_to_end(*a), killer()));
        CHECK(pieces == std::vector<got>{bytes("before"), bytes("last words"), end_of_stream});
        CHECK(a->peer_done());
        CHECK(r.run(send(*a, "anyone?")) == -EPIPE);
    }
    SECTION("a send waits for room") {
        auto [a, b] = memory_transport::pair(r, {.capacity = 1});
        CHECK(r.run(send(*a, "a")) == 1);
        auto killer = [&]() -> task<void> {
            co_await one_turn(r);
            b.reset();
        };
        auto [n, unused] = r.run(when_all(send(*a, "b"), killer()));
        CHECK(n == -EPIPE);
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE("memory_transport: either end may die first, with bytes unread both ways",
          "[memory_transport]") {
    // Run under --config=asan: the pipe is shared, so neither order touches freed memory.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (bool a_first : {true, false}) {
        INFO((a_first ? "a" : "b") << " dies first");
        auto [a, b] = memory_transport::pair(r, {.capacity = 8});
        a->write("to b");
        b->write("to a");
        auto& first = a_first ? a : b;
        auto& second = a_first ? b : a;
        first.reset();
        CHECK(second->peer_done());
        CHECK(second->unread() == 4);  // what the dead end sent is still readable
        CHECK(r.run(receive_to_end(*second)) ==
              std::vector<got>{bytes(a_first ? "to b" : "to a"), end_of_stream});
        second->write("into the void");  // ignored, no crash
        second.reset();
    }
    SECTION("an end dies while its own receive waits") {
        // The end's receive finishes with end of stream; the reader then lets go of it.
        auto [a, b] = memory_transport::pair(r);
        auto killer = [&]() -> task<void> {
            co_await one_turn(r);
            a.reset();
        };
        auto [g, unused] = r.run(when_all(receive(*a), killer()));
        CHECK(g == end_of_stream);
        CHECK(b->peer_done());
        CHECK(r.run(receive(*b)) == end_of_stream);
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE(
    "memory_transport: a receive its dying end finished is cancelled or abandoned safely "
    "before it resumes",
    "[memory_transport]") {
    // The end finishes its held receive as it dies (end of stream), which the
    // reactor resumes on its next turn; a cancel or an abandon arriving in
    // between (a with_timeout firing, the reader's frame destroyed) must not
    // reach the dead end. Shown by ASan (heap-use-after-free) without the fix.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    for (bool cancel : {true, false}) {
        INFO((cancel ? "cancelled" : "abandoned"));
        auto [a, b] = memory_transport::pair(r);
        std::array<std::byte, 16> buf{};
        static int calls;
        calls = 0;
        operation op;
        op.code = op_code::recv;
        op.buffer = buf;
        op.set_on_done([](operation&) { ++calls; });
        REQUIRE_FALSE(a->start_recv(op));  // held: nothing unread
        CHECK(r.pending_count() == 1);
        a.reset();  // finishes op (end of stream), then frees the end
        if (cancel) {
            r.cancel(op);  // too late to cancel: it keeps its result
            r.run_once();
            CHECK(calls == 1);
            CHECK(op.result == 0);
        } else {
            r.abandon(op);  // forgotten: never resumed
            CHECK(calls == 0);
        }
        CHECK(r.pending_count() == 0);
    }
}
