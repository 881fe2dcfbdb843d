// Regression: on io_uring, a send that would block on a socket whose peer has
// shut down its sending side completed with -EAGAIN instead of waiting (seen
// on kernel 6.18 with sendmsg over TCP and AF_UNIX). The channel took that for
// a failed connection and dropped its queued output, so a server answering a
// client that had half-closed lost the answer. uring_backend now waits for
// readiness itself and retries.
#include <coronet/lib/socket.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <sys/socket.h>

#include <coronet/coro/net.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using namespace coronet;

namespace {

constexpr std::size_t total = 4 * 1024 * 1024;  // far more than the socket buffers hold

task<std::size_t> send_everything(coronet::socket& s) {
    std::vector<char> data(total);
    for (std::size_t i = 0; i < total; ++i)
        data[i] = static_cast<char>(i * 7 + i / 251);
    std::size_t sent = 0;
    while (sent < total) {
        iovec iov[2] = {
            {data.data() + sent, (total - sent) / 2},
            {data.data() + sent + (total - sent) / 2, total - sent - (total - sent) / 2}};
        sent += co_await s.sendv(iov);
    }
    co_return sent;
}

task<std::size_t> read_slowly(reactor& r, coronet::socket& s) {
    // Until the sender has filled every buffer and its send waits (loop turns, 1,000 at most).
    for (int i = 0; i < 1000 && r.pending_count() == 0; ++i)
        co_await sleep_for(r, std::chrono::milliseconds(0));
    std::vector<char> buf(64 * 1024);
    std::size_t got = 0;
    bool ok = true;
    while (std::size_t n = co_await s.recv(std::as_writable_bytes(std::span(buf)))) {
        for (std::size_t i = 0; i < n; ++i)
            if (buf[i] != static_cast<char>((got + i) * 7 + (got + i) / 251)) ok = false;
        got += n;
        if (got == total) break;
    }
    co_return ok ? got : 0;
}

}  // namespace

TEST_CASE("socket: a send to a half-closed peer waits instead of failing", "[socket]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    a.set_send_buffer(4096);
    ::shutdown(b.native_handle(), SHUT_WR);  // the peer will send nothing more
    auto [sent, received] = r.run(when_all(send_everything(a), read_slowly(r, b)));
    REQUIRE(sent == total);
    REQUIRE(received == total);
}
