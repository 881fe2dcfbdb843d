#pragma once
// recv_queue: what a connection's multishot receive has taken ahead of recv_provided().
//
// On io_uring with a buffer ring, a recv_provided given a queue keeps one
// multishot receive armed (IORING_RECV_MULTISHOT): the kernel receives into a
// provided block whenever bytes arrive and posts one CQE for each
// (IORING_CQE_F_MORE while it stays armed). The backend hands each result to
// the oldest recv_provided() waiting, else appends it here for the next one;
// the next recv_provided() that finds the queue empty arms it again. When
// `capacity` results wait, the multishot is cancelled, so a connection that
// stops reading holds a bounded number of blocks and the rest of its bytes
// wait in the socket. The receiver (a receive_room, lib/receive_room.hpp)
// owns the queue and must call detail::close_receiver() before it dies. The readiness backends (and
// io_uring without a buffer ring or multishot receives) ignore it: one
// receive per recv_provided(), as without a queue.
// Medusa ancestor: asyncore.dispatcher.handle_read, called once per arrival.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <coronet/lib/operation.hpp>

namespace coronet {

// One queued completion: bytes in a block, end of stream (0), or -errno.
struct recv_result {
    int result = 0;      // as cqe->res
    int buffer_id = -1;  // the block holding `result` bytes, or -1
};

struct recv_queue {
    // Queued results past which the backend cancels the multishot receive.
    static constexpr std::size_t capacity = 2;

    // No operation of its own (one would double an idle connection's share of
    // it): the multishot receive's CQEs carry the queue's address with the low
    // bit set (lib/uring_multishot.cpp), and `armed` says the kernel holds it.
    op_ring waiters;  // recv_provided() calls waiting for bytes, oldest first
    std::array<recv_result, capacity> fifo{};  // results, oldest at fifo[head]
    recv_queue* next_settle = nullptr;         // in the backend's list of queues to settle (queued)
    int fd = -1;                               // the socket the multishot receive was armed on
    std::uint8_t head = 0;
    std::uint8_t count = 0;
    bool armed = false;       // the kernel holds the multishot receive (its last CQE is to come)
    bool cancelling = false;  // a cancel of the multishot receive is on its way
    bool queued = false;      // waits in the backend's list of queues to settle (re-arm or cancel)
    std::uint32_t arms = 0;   // times the multishot receive was armed (one serves many receives)
    // Results the kernel posted after the fifo filled, before the cancel took
    // effect: made at the first (most connections never need it), then keeps
    // its capacity until close_receiver(). Bounded by the provided blocks (each
    // such result holds one; a ring with none left ends the multishot).
    std::unique_ptr<std::vector<recv_result>> overflow;

    std::size_t size() const noexcept { return count + (overflow ? overflow->size() : 0); }
    bool empty() const noexcept { return size() == 0; }

    // Appends a result at the back.
    void push(recv_result r) {
        if (count < capacity && (!overflow || overflow->empty())) {
            fifo[(head + count) % capacity] = r;
            ++count;
        } else {
            if (!overflow) overflow = std::make_unique<std::vector<recv_result>>();
            overflow->push_back(r);
        }
    }

    // Removes and returns the oldest result (the queue must not be empty).
    recv_result pop() noexcept {
        recv_result r = fifo[head];
        head = static_cast<std::uint8_t>((head + 1) % capacity);
        --count;
        if (overflow && !overflow->empty()) {  // keep the order: the oldest overflow moves in
            fifo[(head + count) % capacity] = overflow->front();
            ++count;
            overflow->erase(overflow->begin());
        }
        return r;
    }
};
// A 64-byte heap block per connection (malloc adds 8 bytes), and the low bit of
// its address free for the multishot receive's tag.
static_assert(sizeof(recv_queue) <= 56);
static_assert(alignof(recv_queue) >= 2);

}  // namespace coronet
