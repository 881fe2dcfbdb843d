#include <coronet/lib/uring_backend.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

// io_uring-specific by nature: these tests are about the ring itself (its
// sizes, a completion queue that overflows, a submission queue that fills), so
// they run on io_uring only and are skipped where it is unavailable.

using coronet::reactor;
using coronet::task;
using namespace std::chrono_literals;

namespace {

// Missing io_uring fails the test unless CORONET_TEST_ALLOW_MISSING_BACKENDS allows it.
bool uring_here() {
    return coronet::testing::backend_or_allowed_skip(coronet::backend_kind::io_uring);
}

// What one operation saw: how many times it finished, and what it got.
struct outcome {
    int finished = 0;
    std::string data;
};

task<void> recv_once(coronet::socket& s, outcome* out) {
    std::array<std::byte, 64> buf{};
    std::size_t n = co_await s.recv(buf);
    out->data.assign(reinterpret_cast<const char*>(buf.data()), n);
    ++out->finished;
}

task<void> send_once(coronet::socket& s, std::string text, outcome* out) {
    std::size_t n = co_await s.send(text);
    out->data = std::to_string(n);
    ++out->finished;
}

task<void> sleep_once(reactor& r, outcome* out) {
    bool expired = co_await coronet::sleep_for(r, 1ms);
    out->data = expired ? "expired" : "cancelled";
    ++out->finished;
}

bool all_finished(const std::vector<outcome>& v) {
    for (const auto& o : v)
        if (o.finished == 0) return false;
    return true;
}

}  // namespace

TEST_CASE("uring_backend: the completion queue is twice the submission queue", "[uring_backend]") {
    if (!uring_here()) return;
    coronet::buffer_pool none;
    coronet::uring_backend b(none, {.entries = 4});
    CHECK(b.sq_entries() == 4);
    CHECK(b.cq_entries() == 8);
}

TEST_CASE("uring_backend: wait() takes completions from the overflow list instead of sleeping",
          "[uring_backend]") {
    // Two hundred receives finish in the kernel at once; the CQ holds 8, the
    // kernel keeps the rest in its overflow list (IORING_FEAT_NODROP). Each
    // wait() with a long timeout must then return at once with more of them:
    // one that slept would come back empty after 10 s, and a test that needed
    // its timeout would fail, not hang.
    if (!uring_here()) return;
    constexpr int n = 200;
    coronet::buffer_pool none;
    coronet::uring_backend b(none, {.entries = 4});
    std::vector<std::array<int, 2>> fds(n);
    std::vector<std::array<std::byte, 16>> bufs(n);
    std::vector<coronet::operation> ops(n);
    for (int i = 0; i < n; ++i) {
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                             fds[i].data()) == 0);
        ops[i].code = coronet::op_code::recv;
        ops[i].state = coronet::op_state::pending;
        ops[i].fd = fds[i][0];
        ops[i].buffer = bufs[i];
        CHECK_FALSE(b.start(ops[i]));
    }
    coronet::op_list done;
    b.wait(0ns, done);  // every receive reaches the kernel and finds nothing yet
    REQUIRE(done.empty());
    for (int i = 0; i < n; ++i) {
        std::string text = std::to_string(i);
        REQUIRE(::write(fds[i][1], text.data(), text.size()) == ssize_t(text.size()));
    }
    std::vector<int> seen(n, 0);
    int total = 0, waits = 0;
    while (total < n) {
        coronet::op_list got;
        b.wait(10s, got);
        ++waits;
        INFO("wait " << waits << " after " << total << " completions");
        REQUIRE_FALSE(got.empty());
        if (waits == 1) CHECK(total == 0);
        while (coronet::operation* op = got.pop_front()) {
            int i = int(op - ops.data());
            REQUIRE((i >= 0 && i < n));
            ++seen[i];
            ++total;
            std::string want = std::to_string(i);
            CHECK(op->result == int(want.size()));
            CHECK(std::string(reinterpret_cast<const char*>(bufs[i].data()), want.size()) == want);
        }
    }
    // More turns than the CQ holds: the rest came through the overflow list.
    CHECK(waits >= n / int(b.cq_entries()));
    for (int i = 0; i < n; ++i) {
        INFO("recv " << i);
        CHECK(seen[i] == 1);
        ::close(fds[i][0]);
        ::close(fds[i][1]);
    }
}

TEST_CASE(
    "uring_backend: far more completions than the CQ holds all arrive once, with their results",
    "[uring_backend]") {
    // A ring of 4 SQEs has a CQ of 8. Two hundred receives pending at once,
    // completed by one burst of writes, overflow the CQ (the kernel keeps the
    // rest in its overflow list, IORING_FEAT_NODROP); starting the next batch
    // of sends fills the SQ on every fifth call. Every operation must finish
    // exactly once with its own data, and the loop must not sleep while
    // completions wait in the overflow list (that would hang: nothing else
    // would ever wake it).
    if (!uring_here()) return;
    constexpr int n = 200;
    reactor r{{.backend = coronet::backend_kind::io_uring, .uring_entries = 4}};
    std::vector<std::pair<coronet::socket, coronet::socket>> pairs;
    for (int i = 0; i < n; ++i)
        pairs.push_back(coronet::socket::pair(r));

    std::vector<outcome> recvs(n), sends(n), replies(n), sleeps(n);
    for (int i = 0; i < n; ++i)
        coronet::spawn(r, recv_once(pairs[i].first, &recvs[i]));
    // Let every receive reach the kernel.
    for (int turn = 0; turn < 1000 && r.pending_count() < std::size_t(n); ++turn)
        r.run_once();
    REQUIRE(r.pending_count() == std::size_t(n));

    // One burst: every receive completes before the loop looks again.
    for (int i = 0; i < n; ++i) {
        std::string text = "to " + std::to_string(i);
        REQUIRE(::write(pairs[i].second.native_handle(), text.data(), text.size()) ==
                ssize_t(text.size()));
    }
    // Then sends, receives of their data and timers, all started in one turn.
    for (int i = 0; i < n; ++i) {
        coronet::spawn(r, send_once(pairs[i].first, "from " + std::to_string(i), &sends[i]));
        coronet::spawn(r, recv_once(pairs[i].second, &replies[i]));
        coronet::spawn(r, sleep_once(r, &sleeps[i]));
    }
    auto deadline = reactor::clock::now() + 60s;  // generous: a hang fails, it does not block
    while (!(all_finished(recvs) && all_finished(sends) && all_finished(replies) &&
             all_finished(sleeps)) &&
           reactor::clock::now() < deadline)
        r.run_for(1s);

    for (int i = 0; i < n; ++i) {
        INFO("pair " << i);
        CHECK(recvs[i].finished == 1);
        CHECK(recvs[i].data == "to " + std::to_string(i));
        CHECK(sends[i].finished == 1);
        CHECK(sends[i].data == std::to_string(("from " + std::to_string(i)).size()));
        CHECK(replies[i].finished == 1);
        CHECK(replies[i].data == "from " + std::to_string(i));
        CHECK(sleeps[i].finished == 1);
        CHECK(sleeps[i].data == "expired");
    }
    CHECK(r.pending_count() == 0);
}

TEST_CASE(
    "test support: CORONET_TEST_ALLOW_MISSING_BACKENDS names the backends that may be missing",
    "[uring][support]") {
    using coronet::backend_kind;
    using coronet::testing::missing_backend_allowed;
    const char* saved = std::getenv("CORONET_TEST_ALLOW_MISSING_BACKENDS");
    std::string keep = saved ? saved : "";
    ::unsetenv("CORONET_TEST_ALLOW_MISSING_BACKENDS");
    CHECK_FALSE(missing_backend_allowed(backend_kind::io_uring));
    ::setenv("CORONET_TEST_ALLOW_MISSING_BACKENDS", "epoll, io_uring", 1);
    CHECK(missing_backend_allowed(backend_kind::io_uring));
    CHECK(missing_backend_allowed(backend_kind::epoll));
    CHECK_FALSE(missing_backend_allowed(backend_kind::select));
    ::setenv("CORONET_TEST_ALLOW_MISSING_BACKENDS", "io_uring_x", 1);
    CHECK_FALSE(missing_backend_allowed(backend_kind::io_uring));
    ::setenv("CORONET_TEST_ALLOW_MISSING_BACKENDS", "all", 1);
    CHECK(missing_backend_allowed(backend_kind::select));
    if (saved)
        ::setenv("CORONET_TEST_ALLOW_MISSING_BACKENDS", keep.c_str(), 1);
    else
        ::unsetenv("CORONET_TEST_ALLOW_MISSING_BACKENDS");
}
