#pragma once
// receive_room: one connection's received and unread bytes, and the memory they are in.
//
// The room owns everything a receiver holds: the reactor's provided block the
// last bytes arrived in (borrowed, given back once its bytes are consumed),
// the multishot queue (io_uring: one receive stays armed and queues what
// arrives) and its own fallback buffer (for bytes that must wait behind
// unread ones, when every provided block is out, and for a transport that
// receives into memory it is given). A receiver reads bytes(), consumes what
// it used, and fills its receive operation with prepare(); when that
// operation finishes, take() adds what it got to the room.
//
// Memory exists only while there are unread bytes: release_if_empty() (the
// next read begins, the last read's view has expired) gives the block back
// and returns the own buffer to a per-thread cache, so an idle receiver
// holds nothing but the queue of an armed multishot receive.
// Medusa ancestor: asynchat.async_chat.ac_in_buffer, with the socket's buffer under it.

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <coronet/lib/operation.hpp>
#include <coronet/lib/poison.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/recv_queue.hpp>

namespace coronet {

// What the next receive is for.
struct receive_request {
    int fd = -1;                   // the socket received from (op.fd)
    std::size_t size = 16 * 1024;  // bytes asked of one receive
    std::size_t need = 0;          // bytes the reader waits for in all (read_exactly), else 0
    bool provided = true;          // false: into the room's own buffer only (a transport fills it)
    bool multishot = true;         // io_uring: may keep one multishot receive armed
};

class receive_room {
public:
    // take(): every provided block was out and nothing was received; prepare
    // the next receive, which goes into the room's own buffer.
    static constexpr int again = INT_MIN;
    // The most unread bytes a room holds (its positions are 32-bit: every connection has a
    // room, so it is kept small). A receive never asks for more than fits.
    static constexpr std::size_t max_size = UINT32_MAX;

    explicit receive_room(reactor& r) noexcept : r_(&r) {}
    // Ends the multishot receive and gives back every block (close()).
    ~receive_room();
    receive_room(const receive_room&) = delete;
    receive_room& operator=(const receive_room&) = delete;

    reactor& context() const noexcept { return *r_; }

    // The unread bytes: valid until the next prepare(), take() or release.
    std::string_view bytes() const noexcept { return {data_ + rpos_, wpos_ - rpos_}; }
    std::size_t size() const noexcept { return wpos_ - rpos_; }
    bool empty() const noexcept { return rpos_ == wpos_; }
    // The first n unread bytes were used.
    void consume(std::size_t n) noexcept { rpos_ += static_cast<std::uint32_t>(n); }
    // Bytes of receive memory held (the own buffer, and a borrowed block).
    std::size_t capacity() const noexcept {
        return in_cap_ + (borrowed_ >= 0 ? r_->provided_buffer_size() : 0);
    }

    // A reader's next read begins: views of what earlier reads consumed expire.
    // With nothing unread, all receive memory goes back; else, in
    // AddressSanitizer builds, the consumed bytes are poisoned (lib/poison.hpp).
    void release_if_empty() noexcept {
        if (rpos_ == wpos_ && (in_ || borrowed_ >= 0))
            release();
        else if (rpos_ > 0)
            detail::poison(data_, rpos_);
    }

    // Fills op (code, fd, buffer or provided block) for the next receive:
    // with nothing unread it waits holding no memory, a provided block arriving
    // with the bytes; bytes that must join unread ones go into the own buffer
    // (or, on io_uring, through the multishot queue, and are copied there).
    // The room must hold fewer than max_size unread bytes (a receive must fit; the
    // channel fails a read_until whose bytes fill a room, and a read_exactly's count is
    // at most max_size).
    void prepare(operation& op, const receive_request& req);
    // Takes in what op (filled by prepare) finished with. Returns op's result:
    // > 0 bytes added to the room, 0 end of stream, < 0 -errno, or `again`;
    // -EMSGSIZE when bytes a multishot receive queued would take the room past
    // max_size (they are dropped: the stream cannot go on).
    int take(operation& op);

    // Ends the multishot receive (waiting until the kernel has let go of it)
    // and gives back every block and the own buffer. Abandon a receive still
    // pending first. The room can be used again.
    void close() noexcept;

private:
    void release() noexcept;
    void return_block() noexcept;
    void make_room(std::size_t room);

    // 48 B on x86-64 (every connection's channel holds one): the pointers, then
    // 32-bit positions and a 16-bit block id (the reactor's ids are 16-bit).
    reactor* r_;
    // The unread bytes are data_[rpos_, wpos_): in our own buffer in_, or in
    // the provided block borrowed_ (>= 0) they arrived in.
    char* in_ = nullptr;
    char* data_ = nullptr;
    // io_uring's multishot receive, made at the first receive that may use
    // one. While it may be armed, every receive goes through it (a plain recv
    // could overtake bytes it holds).
    std::unique_ptr<recv_queue> rxq_;
    std::uint32_t in_cap_ = 0, rpos_ = 0, wpos_ = 0;  // at most max_size
    std::int16_t borrowed_ = -1;
    bool fallback_ = false;  // every provided block was out: the next receive uses our buffer
};
static_assert(sizeof(receive_room) <= 48, "every connection's channel holds a receive_room");

}  // namespace coronet
