#include <coronet/lib/readiness_backend.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/buffer_pool.hpp>
#include <coronet/lib/epoll_backend.hpp>
#include <coronet/lib/operation.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/select_backend.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

// A receive that emptied its socket (a short read) marks the fd drained, and
// the next receive parks without a recv() that would only say EAGAIN. These
// tests drive epoll and select by hand to check that parking then never loses
// bytes or the end of the stream; the last one runs round trips on every
// backend through the reactor.

using namespace std::chrono_literals;

namespace {

// A backend of this kind, lent pool (which the test declares first, so it outlives the backend).
std::unique_ptr<coronet::readiness_backend> make(coronet::backend_kind kind,
                                                 coronet::buffer_pool& pool) {
    if (kind == coronet::backend_kind::epoll) return std::make_unique<coronet::epoll_backend>(pool);
    return std::make_unique<coronet::select_backend>(pool);
}

// A non-blocking AF_UNIX stream pair, closed at the end of the test.
struct pair {
    int fd[2] = {-1, -1};
    pair() {
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd) == 0);
    }
    ~pair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void write(std::string_view text) const {
        REQUIRE(::send(fd[1], text.data(), text.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(text.size()));
    }
};

// A recv of up to 64 bytes on fd, with its own buffer.
struct recv_op {
    std::array<std::byte, 64> buf{};
    coronet::operation op;
    explicit recv_op(int fd) {
        op.fd = fd;
        op.code = coronet::op_code::recv;
        op.buffer = buf;
    }
    std::string text() const {
        return op.result > 0 ? std::string(reinterpret_cast<const char*>(buf.data()), op.result)
                             : "";
    }
};

// Waits (bounded) until op is among the finished operations.
bool wait_for(coronet::readiness_backend& b, coronet::operation& op) {
    for (int turn = 0; turn < 100; ++turn) {
        coronet::op_list done;
        b.wait(100ms, done);
        while (coronet::operation* o = done.front()) {
            done.pop_front();
            if (o == &op) return true;
        }
    }
    return false;
}

// Parks a receive on p's first fd (so the backend watches it), sends "abc" and
// lets the receive take it: a short read, which leaves the fd drained.
void drain(coronet::readiness_backend& b, const pair& p) {
    recv_op warm(p.fd[0]);
    REQUIRE_FALSE(b.start(warm.op));
    p.write("abc");
    REQUIRE(wait_for(b, warm.op));
    REQUIRE(warm.text() == "abc");
}

}  // namespace

// The one-pointer FIFO that parks operations per descriptor (and on a recv_queue):
// order kept, and any one removed from the front, the middle or the back.
TEST_CASE("op_ring: a FIFO in one pointer", "[readiness]") {
    std::array<coronet::operation, 4> ops{};
    coronet::op_ring ring;
    CHECK(ring.empty());
    CHECK(ring.front() == nullptr);
    CHECK(ring.pop_front() == nullptr);
    CHECK_FALSE(ring.remove(ops[0]));
    for (auto& op : ops)
        ring.push_back(op);
    CHECK(ring.front() == &ops[0]);
    CHECK(ring.remove(ops[3]));  // the back
    CHECK(ring.remove(ops[1]));  // the middle
    CHECK_FALSE(ring.remove(ops[1]));
    ring.push_back(ops[1]);  // after ops[2] now
    CHECK(ring.pop_front() == &ops[0]);
    CHECK(ring.pop_front() == &ops[2]);
    CHECK(ops[2].next == nullptr);
    CHECK(ring.remove(ops[1]));  // the only one
    CHECK(ring.empty());
    ring.push_back(ops[3]);
    CHECK(ring.pop_front() == &ops[3]);
    CHECK(ring.empty());
}

TEST_CASE("readiness: a receive after a short read parks at once, and later bytes arrive",
          "[readiness]") {
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool none;
    auto b = make(kind, none);
    pair p;
    drain(*b, p);

    // The socket holds bytes again, but nothing has reported it readable yet:
    // the receive parks without trying (it would have finished at once before).
    p.write("def");
    recv_op second(p.fd[0]);
    REQUIRE_FALSE(b->start(second.op));
    REQUIRE(wait_for(*b, second.op));
    REQUIRE(second.text() == "def");
}

TEST_CASE("readiness: bytes sent after a receive parked on a drained fd arrive", "[readiness]") {
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool pool(4, 64);
    auto b = make(kind, pool);
    pair p;
    coronet::operation first;
    first.fd = p.fd[0];
    first.code = coronet::op_code::recv_provided;
    REQUIRE_FALSE(b->start(first));
    p.write("abc");
    REQUIRE(wait_for(*b, first));
    REQUIRE(first.result == 3);  // a short read into a provided block: drained
    pool.give_back(static_cast<std::uint16_t>(first.buffer_id));

    recv_op second(p.fd[0]);
    REQUIRE_FALSE(b->start(second.op));
    p.write("ghi");
    REQUIRE(wait_for(*b, second.op));
    REQUIRE(second.text() == "ghi");
    REQUIRE(pool.in_use() == 0);
}

TEST_CASE("readiness: the end of stream after a short read wakes a parked receive", "[readiness]") {
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool none;
    auto b = make(kind, none);
    pair p;
    drain(*b, p);

    recv_op second(p.fd[0]);
    REQUIRE_FALSE(b->start(second.op));
    ::close(p.fd[1]);
    p.fd[1] = -1;
    REQUIRE(wait_for(*b, second.op));
    REQUIRE(second.op.result == 0);

    // End of stream does not mark the fd drained: the next receive sees it at once.
    recv_op third(p.fd[0]);
    REQUIRE(b->start(third.op));
    REQUIRE(third.op.result == 0);
}

TEST_CASE("readiness: the end of stream reported with the last bytes is still seen",
          "[readiness]") {
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool none;
    auto b = make(kind, none);
    pair p;
    recv_op first(p.fd[0]);
    REQUIRE_FALSE(b->start(first.op));  // parked: the fd is watched
    p.write("abc");
    ::close(p.fd[1]);  // one report covers both the bytes and the end
    p.fd[1] = -1;
    REQUIRE(wait_for(*b, first.op));
    REQUIRE(first.text() == "abc");  // a short read, with the end still to read

    recv_op second(p.fd[0]);
    if (!b->start(second.op)) REQUIRE(wait_for(*b, second.op));
    REQUIRE(second.op.result == 0);
}

TEST_CASE("readiness: a full read or forget() leaves the next receive trying at once",
          "[readiness]") {
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool none;
    auto b = make(kind, none);
    pair p;
    p.write(std::string(100, 'x'));
    recv_op full(p.fd[0]);
    REQUIRE(b->start(full.op));
    REQUIRE(full.op.result == 64);  // as much as asked: more may be queued
    recv_op rest(p.fd[0]);
    REQUIRE(b->start(rest.op));
    REQUIRE(rest.op.result == 36);

    // Drained now; forget() (the fd about to be closed, its number reused) clears it.
    p.write("new");
    coronet::op_list ended;
    b->forget(p.fd[0], ended);
    REQUIRE(ended.empty());  // nothing was parked on it
    recv_op after(p.fd[0]);
    REQUIRE(b->start(after.op));
    REQUIRE(after.text() == "new");
}

TEST_CASE("readiness: on epoll, a readable edge with nothing parked clears the drained mark",
          "[readiness]") {
    coronet::buffer_pool none;
    coronet::epoll_backend b(none);
    pair p;
    recv_op first(p.fd[0]);
    REQUIRE_FALSE(b.start(first.op));  // registers the fd
    p.write("abc");
    REQUIRE(wait_for(b, first.op));
    REQUIRE(first.text() == "abc");  // a short read: drained

    p.write("def");
    coronet::op_list done;
    b.wait(1s, done);  // reports the edge (queued by the write); nothing is parked to finish
    REQUIRE(done.empty());
    recv_op second(p.fd[0]);
    REQUIRE(b.start(second.op));
    REQUIRE(second.text() == "def");
}

namespace {

// Sends each message in two parts with a turn of the loop between, so the
// second part usually lands just after the receiver's short read of the first.
coronet::task<bool> talk(coronet::reactor& r, coronet::socket& s, int rounds) {
    for (int i = 0; i < rounds; ++i) {
        std::string msg = "message " + std::to_string(i) + ";";
        co_await s.send(std::string_view(msg).substr(0, 5));
        co_await coronet::sleep_for(r, 0ms);
        co_await s.send(std::string_view(msg).substr(5));
        std::array<std::byte, 64> buf{};
        std::string echoed;
        while (echoed.size() < msg.size()) {
            std::size_t n = co_await s.recv(buf);
            if (n == 0) co_return false;
            echoed.append(reinterpret_cast<const char*>(buf.data()), n);
        }
        if (echoed != msg) co_return false;
    }
    s.shutdown_send();
    co_return true;
}

// Echoes every byte back until the end of stream; returns the bytes echoed.
coronet::task<std::size_t> echo(coronet::socket& s) {
    std::array<std::byte, 64> buf{};
    std::size_t total = 0;
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        co_await s.send(std::span<const std::byte>(buf.data(), n));
        total += n;
    }
    co_return total;
}

}  // namespace

namespace {

// Two provided receives parked on two pairs that both turn readable while the
// pool has one block: the first to run takes it, the other starves.
struct starved_pair {
    pair p, q;
    coronet::operation on_p, on_q;
    coronet::operation* first = nullptr;   // took the block
    coronet::operation* second = nullptr;  // found every block out

    // b's pool has one block.
    explicit starved_pair(coronet::readiness_backend& b) {
        for (auto [op, fd] : {std::pair{&on_p, p.fd[0]}, std::pair{&on_q, q.fd[0]}}) {
            op->fd = fd;
            op->code = coronet::op_code::recv_provided;
            REQUIRE_FALSE(b.start(*op));  // parked: the fd is watched
        }
        p.write("one");
        q.write("two");
        for (int turn = 0; turn < 100 && !first; ++turn) {
            coronet::op_list done;
            b.wait(100ms, done);
            while (coronet::operation* o = done.pop_front()) {
                REQUIRE_FALSE(first);  // one block: the other receive is not answered yet
                first = o;
            }
        }
        REQUIRE(first);
        REQUIRE(first->result == 3);
        REQUIRE(first->buffer_id >= 0);
        second = first == &on_p ? &on_q : &on_p;
    }
    std::string text_of(const coronet::operation& op) const {
        return {reinterpret_cast<const char*>(op.buffer.data()), op.buffer.size()};
    }
};

}  // namespace

TEST_CASE("readiness: a provided receive ready while every block is out gets the next one back",
          "[readiness]") {
    // A burst of readable fds beyond the pool: the receive left without a block
    // waits for the next wait(), where the block consumed in between is its.
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool pool(1, 64);
    auto b = make(kind, pool);
    starved_pair s(*b);
    const std::string first_text = s.first == &s.on_p ? "one" : "two";
    const std::string second_text = s.first == &s.on_p ? "two" : "one";
    REQUIRE(s.text_of(*s.first) == first_text);
    pool.give_back(static_cast<std::uint16_t>(s.first->buffer_id));

    coronet::op_list done;
    b->wait(10s, done);  // the starved receive runs first, without waiting for an event
    REQUIRE(done.pop_front() == s.second);
    REQUIRE(done.empty());
    REQUIRE(s.second->result == 3);
    REQUIRE(s.second->buffer_id >= 0);
    REQUIRE(s.text_of(*s.second) == second_text);
    pool.give_back(static_cast<std::uint16_t>(s.second->buffer_id));
    REQUIRE(pool.in_use() == 0);
}

TEST_CASE(
    "readiness: a burst of ready provided receives beyond the pool is served a block at a time",
    "[readiness]") {
    // Five readable fds and one block, given back after every turn: each
    // receive gets its bytes in a block in turn, none is refused (ENOBUFS).
    // On select the turns after the first serve the starved receives without
    // a new select().
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool pool(1, 64);
    auto b = make(kind, pool);
    constexpr int n = 5;
    std::array<pair, n> pairs;
    std::array<coronet::operation, n> ops;
    for (int i = 0; i < n; ++i) {
        ops[i].fd = pairs[i].fd[0];
        ops[i].code = coronet::op_code::recv_provided;
        REQUIRE_FALSE(b->start(ops[i]));
    }
    for (int i = 0; i < n; ++i)
        pairs[i].write("message " + std::to_string(i));
    std::array<int, n> seen{};
    int answered = 0;
    for (int turn = 0; turn < 100 && answered < n; ++turn) {
        coronet::op_list done;
        b->wait(100ms, done);
        int this_turn = 0;
        while (coronet::operation* o = done.pop_front()) {
            ++this_turn;
            ++answered;
            auto i = o - ops.data();
            REQUIRE(i >= 0);
            REQUIRE(i < n);
            REQUIRE(o->result > 0);  // bytes in a block, not ENOBUFS
            REQUIRE(o->buffer_id >= 0);
            REQUIRE(std::string(reinterpret_cast<const char*>(o->buffer.data()),
                                o->buffer.size()) == "message " + std::to_string(i));
            ++seen[i];
            pool.give_back(static_cast<std::uint16_t>(o->buffer_id));
        }
        REQUIRE(this_turn <= 1);  // one block
    }
    REQUIRE(answered == n);
    for (int i = 0; i < n; ++i)
        REQUIRE(seen[i] == 1);
    REQUIRE(pool.in_use() == 0);
}

TEST_CASE("readiness: a starved provided receive gets ENOBUFS when no block came back",
          "[readiness]") {
    // Blocks held by connections that never consume must not stall the others:
    // after a turn with none given back the receive says ENOBUFS, nothing read,
    // and a plain receive then finds its bytes at once.
    const auto kind = GENERATE(coronet::backend_kind::epoll, coronet::backend_kind::select);
    INFO("backend: " << coronet::to_string(kind));
    coronet::buffer_pool pool(1, 64);
    auto b = make(kind, pool);
    starved_pair s(*b);

    coronet::op_list done;
    b->wait(10s, done);
    REQUIRE(done.pop_front() == s.second);
    REQUIRE(s.second->result == -ENOBUFS);
    REQUIRE(s.second->buffer_id < 0);
    REQUIRE(pool.in_use() == 1);  // still the first receive's

    recv_op plain(s.second->fd);
    REQUIRE(b->start(plain.op));
    REQUIRE(plain.text() == (s.second == &s.on_q ? "two" : "one"));
    pool.give_back(static_cast<std::uint16_t>(s.first->buffer_id));
    REQUIRE(pool.in_use() == 0);
}

TEST_CASE("readiness: round trips in two parts all arrive, then the end of stream", "[readiness]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    constexpr int rounds = 500;
    auto [ok, echoed] = r.run(coronet::when_all(talk(r, a, rounds), echo(b)));
    REQUIRE(ok);
    std::size_t expected = 0;
    for (int i = 0; i < rounds; ++i)
        expected += ("message " + std::to_string(i) + ";").size();
    REQUIRE(echoed == expected);
}
