#include <coronet/lib/receive_room.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include <coronet/coro/task.hpp>
#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

#include "tests/support/backends.hpp"

// The receive room on its own: what a channel does with it, by hand. Every
// test runs on every backend; the room picks provided blocks, the multishot
// queue or its own buffer, and the bytes come out the same.

using coronet::backend_kind;
using coronet::reactor;
using coronet::receive_request;
using coronet::receive_room;
using coronet::task;

namespace {

// co_await: one receive into the room; its result as take() gives it.
class room_receive : public coronet::op_awaiter {
public:
    room_receive(receive_room& room, const receive_request& req)
        : op_awaiter(room.context()), room_(room) {
        room_.prepare(op_, req);
    }
    int await_resume() {
        finish();
        return room_.take(op_);
    }

private:
    receive_room& room_;
};

void put(coronet::socket& s, std::string_view text) {
    REQUIRE(::send(s.native_handle(), text.data(), text.size(), MSG_NOSIGNAL) ==
            ssize_t(text.size()));
}

// Receives until the room holds at least n unread bytes (or the stream ends).
task<int> fill(receive_room& room, receive_request req, std::size_t n) {
    int res = 1;
    while (room.size() < n) {
        res = co_await room_receive(room, req);
        if (res <= 0 && res != receive_room::again) break;
    }
    co_return res;
}

}  // namespace

TEST_CASE("receive_room: bytes arrive, are consumed, and the memory goes back when empty",
          "[receive_room]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    receive_room room(r);
    CHECK(room.capacity() == 0);
    const receive_request req{.fd = a.native_handle()};

    put(b, "hello world");
    CHECK(r.run(fill(room, req, 11)) > 0);
    CHECK(room.bytes() == "hello world");
    room.consume(6);
    CHECK(room.bytes() == "world");
    room.release_if_empty();  // not empty: kept
    CHECK(room.size() == 5);

    // Bytes behind unread ones join them.
    put(b, "!\r\n");
    CHECK(r.run(fill(room, req, 8)) > 0);
    CHECK(room.bytes() == "world!\r\n");
    room.consume(room.size());
    room.release_if_empty();
    CHECK(room.capacity() == 0);
    CHECK(r.buffers_in_use() == 0);

    b.close();
    CHECK(r.run(fill(room, req, 1)) == 0);  // end of stream
    room.close();
    CHECK(r.buffers_in_use() == 0);
}

TEST_CASE("receive_room: a transport's receive fills the room's own buffer", "[receive_room]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [a, b] = coronet::socket::pair(r);
    receive_room room(r);
    const receive_request req{.fd = a.native_handle(), .size = 4096, .provided = false};
    put(b, "abc");
    CHECK(r.run(fill(room, req, 3)) == 3);
    CHECK(room.bytes() == "abc");
    CHECK(room.capacity() >= 4096);
    CHECK(r.buffers_in_use() == 0);  // no provided block
    room.consume(3);
    room.release_if_empty();
    CHECK(room.capacity() == 0);
}

TEST_CASE("receive_room: with every block out the next receive uses the own buffer",
          "[receive_room]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind, .provided_buffers = 0}};
    auto [a, b] = coronet::socket::pair(r);
    receive_room room(r);
    const receive_request req{.fd = a.native_handle()};
    put(b, "xyz");
    CHECK(r.run(fill(room, req, 3)) == 3);
    CHECK(room.bytes() == "xyz");
    room.close();
    CHECK(room.size() == 0);
    CHECK(room.capacity() == 0);
}

TEST_CASE("receive_room: a read_exactly's count is received whole into the own buffer",
          "[receive_room]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind, .provided_buffers = 8, .provided_buffer_size = 256}};
    auto [a, b] = coronet::socket::pair(r);
    receive_room room(r);
    const std::string sent(3000, 'q');
    put(b, sent);
    const receive_request req{.fd = a.native_handle(), .size = 256, .need = sent.size()};
    CHECK(r.run(fill(room, req, sent.size())) > 0);
    CHECK(room.bytes() == sent);
    room.close();
    CHECK(r.buffers_in_use() == 0);
}
