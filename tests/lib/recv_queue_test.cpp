#include <coronet/lib/recv_queue.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <coronet/coro/net.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/buffer_pool.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>
#include <coronet/lib/uring_backend.hpp>

#include "tests/support/backends.hpp"

// A recv_provided() given a recv_queue: on io_uring (with a buffer ring and a
// kernel with IORING_RECV_MULTISHOT) one multishot receive serves many calls
// and queues what arrives; elsewhere the queue is unused. Every test runs on
// every backend with the same assertions on the bytes; where the multishot is
// in use, q.arms and q.size() show that it was.

using coronet::backend_kind;
using coronet::provided_bytes;
using coronet::reactor;
using coronet::recv_queue;
using coronet::task;
using namespace std::chrono_literals;

namespace {

// True when this machine's io_uring receives through a multishot receive.
bool multishot_recv_here() {
    if (!coronet::backend_available(backend_kind::io_uring)) return false;
    coronet::buffer_pool pool(4, 4096);
    coronet::uring_backend b(pool);
    return b.capabilities().multishot_receive;
}

bool multishot(backend_kind kind) {
    static const bool here = multishot_recv_here();
    return kind == backend_kind::io_uring && here;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return s;
}

std::string text_of(const provided_bytes& got) {
    return {reinterpret_cast<const char*>(got.bytes.data()), got.bytes.size()};
}

void put(coronet::socket& s, std::string_view text) {
    REQUIRE(::send(s.native_handle(), text.data(), text.size(), MSG_NOSIGNAL) ==
            ssize_t(text.size()));
}

task<void> nap(reactor& r) { co_await coronet::sleep_for(r, 1ms); }

// Turns the loop (a millisecond at a time, so a multishot's CQEs are reaped)
// until cond holds; a generous bound keeps a broken run from hanging.
template <class Cond>
bool run_until(reactor& r, Cond cond) {
    for (int i = 0; i < 20'000 && !cond(); ++i)
        r.run(nap(r));
    return cond();
}

task<provided_bytes> recv_queued(coronet::socket& s, recv_queue& q) {
    co_return co_await coronet::detail::recv_provided(s, q);
}

// Receives one result; no_buffer falls back to a plain receive, as the channel does.
task<std::string> recv_text(reactor& r, coronet::socket& s, recv_queue& q,
                            int* fallbacks = nullptr) {
    provided_bytes got = co_await coronet::detail::recv_provided(s, q);
    if (got.no_buffer) {
        if (fallbacks) ++*fallbacks;
        std::vector<std::byte> buf(64 * 1024);
        std::size_t n = co_await s.recv(buf);
        co_return std::string(reinterpret_cast<const char*>(buf.data()), n);
    }
    std::string text = text_of(got);
    r.recycle(got.buffer_id);
    co_return text;
}

struct received {
    std::string data;
    int receives = 0;
    int fallbacks = 0;
    std::size_t most_in_use = 0;
};

// Receives until `total` bytes (or end of stream), recycling each block at once.
task<void> receive_all(reactor& r, coronet::socket* s, recv_queue* q, std::size_t total,
                       received* out) {
    while (out->data.size() < total) {
        provided_bytes got = co_await coronet::detail::recv_provided(*s, *q);
        out->most_in_use = std::max(out->most_in_use, r.buffers_in_use());
        ++out->receives;
        if (got.no_buffer) {
            ++out->fallbacks;
            std::vector<std::byte> buf(64 * 1024);
            std::size_t n = co_await s->recv(buf);
            if (n == 0) co_return;
            out->data.append(reinterpret_cast<const char*>(buf.data()), n);
            continue;
        }
        if (got.bytes.empty()) co_return;  // end of stream
        out->data += text_of(got);
        r.recycle(got.buffer_id);
    }
}

// Sends `data` in small writes of 1 to 200 bytes, then closes.
task<void> send_small(coronet::socket s, std::string data) {
    for (std::size_t at = 0, i = 0; at < data.size(); ++i) {
        std::size_t n = std::min<std::size_t>(1 + (i * 37) % 200, data.size() - at);
        co_await coronet::send_all(s, std::string_view(data).substr(at, n));
        at += n;
    }
    s.close();
}

// A connected TCP pair over loopback: (accepted side, blocking client fd).
std::pair<coronet::socket, int> tcp_pair(reactor& r) {
    coronet::socket listener = coronet::socket::listen(r, coronet::address::parse("127.0.0.1:0"));
    coronet::address at = listener.local_address();
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    REQUIRE(::connect(fd, at.data(), at.size()) == 0);
    coronet::socket accepted = r.run([](coronet::socket* l) -> task<coronet::socket> {
        co_return co_await l->accept();
    }(&listener));
    return {std::move(accepted), fd};
}

}  // namespace

TEST_CASE("recv_queue: io_uring probes multishot_recv once it has a buffer ring", "[recv_queue]") {
    if (!coronet::backend_available(backend_kind::io_uring)) {
        WARN("io_uring unavailable here, skipped");
        return;
    }
    coronet::buffer_pool none;
    coronet::uring_backend without(none);
    CHECK(without.features().find("multishot_recv") == std::string::npos);  // no ring, no multishot
    CHECK_FALSE(without.capabilities().multishot_receive);
    coronet::buffer_pool pool(4, 4096);
    coronet::uring_backend b(pool);
    const std::string& f = b.features();
    INFO("features: " << f);
    CHECK(b.capabilities().multishot_receive == (f.find("multishot_recv") != std::string::npos));
    utsname u{};
    REQUIRE(::uname(&u) == 0);
    int major = std::atoi(u.release);
    if (f.find("buf_ring") != std::string::npos && major >= 6)  // IORING_RECV_MULTISHOT: 6.0
        CHECK(f.find("multishot_recv") != std::string::npos);
    else
        WARN("kernel " << u.release << " without multishot receive into a buffer ring");
}

TEST_CASE("recv_queue: bytes sent in many small writes arrive complete and in order",
          "[recv_queue]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    recv_queue q;
    const std::string sent = pattern(300 * 1024);
    received got;
    r.run(
        coronet::when_all(send_small(std::move(b), sent), receive_all(r, &a, &q, SIZE_MAX, &got)));
    coronet::detail::close_receiver(r, q);
    REQUIRE(got.data.size() == sent.size());
    CHECK(got.data == sent);
    CHECK(got.fallbacks == 0);
    CHECK(r.buffers_in_use() == 0);
    INFO("receives " << got.receives << ", multishot arms " << q.arms << ", most blocks out "
                     << got.most_in_use);
    if (multishot(kind)) {
        CHECK(q.arms >= 1);
        CHECK(q.arms < std::uint32_t(got.receives));  // one arm served many receives
    } else {
        CHECK(q.arms == 0);
    }
}

TEST_CASE("recv_queue: a peer that sends while nobody receives loses nothing and holds few blocks",
          "[recv_queue]") {
    // The connection received once (its multishot receive stays armed), then
    // stops reading while its peer sends 1 MiB. The multishot fills the queue,
    // is cancelled, and the rest waits in the socket: the connection holds the
    // queued blocks, not the reactor's 64. Then every byte arrives in order.
    CORONET_FOR_EACH_BACKEND(kind);
    constexpr unsigned blocks = 64;
    reactor r{{.backend = kind, .provided_buffers = blocks, .provided_buffer_size = 16 * 1024}};
    auto [a, b] = coronet::socket::pair(r);
    recv_queue q;
    const std::string sent = pattern(1024 * 1024 + 5);
    put(b, std::string_view(sent).substr(0, 5));
    REQUIRE(r.run(recv_text(r, a, q)) == sent.substr(0, 5));

    bool sender_done = false;
    auto sender = [](coronet::socket* s, std::string data, bool* done) -> task<void> {
        co_await coronet::send_all(*s, data);
        *done = true;
    };
    received got;
    got.data = sent.substr(0, 5);
    auto receiver = [](reactor& r, coronet::socket* s, recv_queue* q, std::size_t total,
                       received* out, bool is_multishot, std::size_t* held,
                       std::size_t* queued) -> task<void> {
        // Nobody receives until the multishot has stopped (or, elsewhere, a while).
        for (int i = 0; i < 20'000; ++i) {
            if (is_multishot ? !q->armed && q->size() >= recv_queue::capacity : i >= 20) break;
            co_await coronet::sleep_for(r, 1ms);
        }
        *held = r.buffers_in_use();
        *queued = q->size();
        co_await receive_all(r, s, q, total, out);
    };
    std::size_t held = 0, queued = 0;
    r.run(
        coronet::when_all(sender(&b, sent.substr(5), &sender_done),
                          receiver(r, &a, &q, sent.size(), &got, multishot(kind), &held, &queued)));
    coronet::detail::close_receiver(r, q);
    CHECK(sender_done);
    REQUIRE(got.data.size() == sent.size());
    CHECK(got.data == sent);
    CHECK(r.buffers_in_use() == 0);
    INFO("held " << held << " blocks with " << queued << " results queued");
    if (multishot(kind)) {
        CHECK(queued >= recv_queue::capacity);
        CHECK(held == queued);  // every block out is a queued result
        CHECK(held < blocks);   // and not every block the reactor has
    } else {
        CHECK(queued == 0);
        CHECK(held == 0);
    }
}

TEST_CASE("recv_queue: an exhausted ring gives no_buffer without losing bytes, then re-arms",
          "[recv_queue]") {
    // Two blocks for three connections: the first holds both, the others get
    // no_buffer and receive the plain way; once the blocks are back, their next
    // recv_provided arms the multishot again and receives into a block.
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind, .provided_buffers = 2}};
    auto [a1, b1] = coronet::socket::pair(r);
    auto [a2, b2] = coronet::socket::pair(r);
    auto [a3, b3] = coronet::socket::pair(r);
    recv_queue q1, q2, q3;

    put(b1, "one-1");
    provided_bytes x = r.run(recv_queued(a1, q1));
    put(b1, "one-2");
    provided_bytes y = r.run(recv_queued(a1, q1));
    CHECK(text_of(x) == "one-1");
    CHECK(text_of(y) == "one-2");
    CHECK(r.buffers_in_use() == 2);

    int fallbacks = 0;
    put(b2, "two-1");
    CHECK(r.run(recv_text(r, a2, q2, &fallbacks)) == "two-1");
    put(b3, "three-1");
    CHECK(r.run(recv_text(r, a3, q3, &fallbacks)) == "three-1");
    CHECK(fallbacks == 2);

    r.recycle(x.buffer_id);
    r.recycle(y.buffer_id);
    CHECK(r.buffers_in_use() == 0);
    put(b2, "two-2");
    CHECK(r.run(recv_text(r, a2, q2, &fallbacks)) == "two-2");
    put(b3, "three-2");
    CHECK(r.run(recv_text(r, a3, q3, &fallbacks)) == "three-2");
    put(b1, "one-3");
    CHECK(r.run(recv_text(r, a1, q1, &fallbacks)) == "one-3");
    CHECK(fallbacks == 2);  // blocks again

    for (recv_queue* q : {&q1, &q2, &q3})
        coronet::detail::close_receiver(r, *q);
    CHECK(r.buffers_in_use() == 0);
    if (multishot(kind)) {
        CHECK(q1.arms == 1);  // still armed from the start: the ring never ran dry while it waited
        CHECK(q2.arms == 2);  // -ENOBUFS ended the first; the next recv_provided armed again
        CHECK(q3.arms == 2);
    } else {
        CHECK(q1.arms + q2.arms + q3.arms == 0);
    }
}

TEST_CASE("recv_queue: a cancelled recv_provided finishes at once and the queue goes on",
          "[recv_queue]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    recv_queue q;
    put(b, "first");
    CHECK(r.run(recv_text(r, a, q)) == "first");
    auto ec = coronet::testing::error_thrown_by(
        [&] { r.run(coronet::with_timeout(r, recv_queued(a, q), 20ms)); });
    CHECK(ec == coronet::errc::timed_out);
    CHECK(q.waiters.empty());
    CHECK(r.pending_count() == 0);
    if (multishot(kind)) CHECK(q.armed);  // the arm stays
    put(b, "second");
    CHECK(r.run(recv_text(r, a, q)) == "second");
    coronet::detail::close_receiver(r, q);
    CHECK(r.buffers_in_use() == 0);
    CHECK(q.arms == (multishot(kind) ? 1u : 0u));
}

TEST_CASE("recv_queue: close_receiver gives every block back and lets go of the socket",
          "[recv_queue]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    recv_queue q;

    SECTION("with nothing armed") {
        coronet::detail::close_receiver(r, q);
        CHECK(!q.armed);
        CHECK(r.pending_count() == 0);
    }

    SECTION("with results queued") {
        put(b, "arm");
        CHECK(r.run(recv_text(r, a, q)) == "arm");
        // As many arrivals as the queue holds, each queued before the next is sent (one block
        // each).
        for (std::size_t i = 0; i < recv_queue::capacity; ++i) {
            put(b, "queued-" + std::to_string(i));
            if (multishot(kind)) REQUIRE(run_until(r, [&] { return q.size() == i + 1; }));
        }
        if (multishot(kind)) CHECK(r.buffers_in_use() == recv_queue::capacity);
        coronet::detail::close_receiver(r, q);
        CHECK(q.empty());
        CHECK(r.buffers_in_use() == 0);
        CHECK(!q.armed);
        if (!multishot(kind)) {  // nothing was taken ahead: the bytes wait in the socket
            std::string all;
            for (std::size_t i = 0; i < recv_queue::capacity; ++i)
                all += "queued-" + std::to_string(i);
            CHECK(r.run(recv_text(r, a, q)) == all);
            coronet::detail::close_receiver(r, q);
        }
    }

    SECTION("with the multishot armed and nothing queued: later bytes stay in the socket") {
        put(b, "arm");
        CHECK(r.run(recv_text(r, a, q)) == "arm");
        if (multishot(kind)) CHECK(q.armed);
        coronet::detail::close_receiver(r, q);
        CHECK(!q.armed);
        put(b, "after");
        std::vector<std::byte> buf(64);
        std::size_t n =
            r.run([](coronet::socket* s, std::span<std::byte> into) -> task<std::size_t> {
                co_return co_await s->recv(into);
            }(&a, buf));
        CHECK(std::string(reinterpret_cast<const char*>(buf.data()), n) == "after");
        // The queue can be used again after close_receiver.
        put(b, "again");
        CHECK(r.run(recv_text(r, a, q)) == "again");
        coronet::detail::close_receiver(r, q);
    }

    SECTION("as bytes arrive, each queue freed at once and a new one in its place") {
        // The bytes sent just before the close race the cancel: taken by the multishot
        // (then recycled by the close) or left in the socket; in odd rounds the multishot
        // has queued them first. Each queue is freed as soon as close_receiver returns,
        // so a CQE still tagged with its address would reach freed memory (a report under
        // AddressSanitizer); the next queue may be allocated at the same address.
        for (int round = 0; round < 50; ++round) {
            auto q2 = std::make_unique<recv_queue>();
            const std::string text = "round-" + std::to_string(round);
            put(b, text);
            CHECK(r.run(recv_text(r, a, *q2)) == text);
            put(b, "late");
            const bool taken = round % 2 == 1 && multishot(kind);
            if (taken) REQUIRE(run_until(r, [&] { return q2->size() == 1; }));
            coronet::detail::close_receiver(r, *q2);
            CHECK(!q2->armed);
            CHECK(!q2->queued);
            CHECK(q2->empty());
            q2.reset();
            char rest[16];
            ssize_t n = ::recv(a.native_handle(), rest, sizeof rest, MSG_DONTWAIT);
            if (taken)
                CHECK((n < 0 && errno == EAGAIN));
            else
                CHECK((n == 4 ? std::string(rest, 4) == "late" : n < 0 && errno == EAGAIN));
            CHECK(r.buffers_in_use() == 0);
            CHECK(r.pending_count() == 0);
        }
    }

    SECTION("after the waiting recv_provided was cancelled") {
        put(b, "arm");
        CHECK(r.run(recv_text(r, a, q)) == "arm");
        auto ec = coronet::testing::error_thrown_by(
            [&] { r.run(coronet::with_timeout(r, recv_queued(a, q), 5ms)); });
        CHECK(ec == coronet::errc::timed_out);
        coronet::detail::close_receiver(r, q);
        CHECK(!q.armed);
        CHECK(r.pending_count() == 0);
    }
    CHECK(r.buffers_in_use() == 0);
}

TEST_CASE("recv_queue: end of stream and a reset reach the receiver behind the bytes before them",
          "[recv_queue]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};

    SECTION("end of stream") {
        auto [a, b] = coronet::socket::pair(r);
        recv_queue q;
        put(b, "arm");
        CHECK(r.run(recv_text(r, a, q)) == "arm");
        put(b, "last words");
        b.close();
        if (multishot(kind)) {  // queued while nobody receives: the bytes, then the end
            REQUIRE(run_until(r, [&] { return !q.armed; }));
            CHECK(q.size() == 2);
        }
        CHECK(r.run(recv_text(r, a, q)) == "last words");
        provided_bytes end = r.run(recv_queued(a, q));
        CHECK(end.bytes.empty());
        CHECK_FALSE(end.no_buffer);
        provided_bytes again = r.run(recv_queued(a, q));  // and again, as recv() keeps returning 0
        CHECK(again.bytes.empty());
        CHECK_FALSE(again.no_buffer);
        coronet::detail::close_receiver(r, q);
    }

    SECTION("reset") {
        auto [a, client] = tcp_pair(r);
        recv_queue q;
        REQUIRE(::send(client, "arm", 3, MSG_NOSIGNAL) == 3);
        CHECK(r.run(recv_text(r, a, q)) == "arm");
        REQUIRE(::send(client, "last words", 10, MSG_NOSIGNAL) == 10);
        linger hard{.l_onoff = 1, .l_linger = 0};  // close sends RST
        REQUIRE(::setsockopt(client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
        ::close(client);
        if (multishot(kind)) {
            REQUIRE(run_until(r, [&] { return !q.armed; }));
            CHECK(q.size() == 2);
        }
        CHECK(r.run(recv_text(r, a, q)) == "last words");
        auto ec = coronet::testing::error_thrown_by([&] { r.run(recv_queued(a, q)); });
        CHECK(ec == std::errc::connection_reset);
        coronet::detail::close_receiver(r, q);
    }
    CHECK(r.buffers_in_use() == 0);
}

TEST_CASE("recv_queue: without provided buffers a queued recv_provided says no_buffer at once",
          "[recv_queue]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind, .provided_buffers = 0}};
    auto [a, b] = coronet::socket::pair(r);
    recv_queue q;
    provided_bytes got = r.run(recv_queued(a, q));
    CHECK(got.no_buffer);
    CHECK(q.arms == 0);
    coronet::detail::close_receiver(r, q);
    CHECK(r.pending_count() == 0);
}
