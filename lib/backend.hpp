#pragma once
// The backend seam: how the reactor talks to the kernel.
//
// The interface is completion-shaped (io_uring's model). The readiness backends
// (epoll, select) emulate it: start() tries the system call at once and parks
// the operation on its fd when it would block; wait() learns readiness and
// retries. Timers, the channel registry and logging stay in the reactor.
// Medusa ancestor: asyncore.poll() / poll2(), the only place that blocks.
//
// Contract, for every backend:
//  - start(op): op.state is pending when called. Returns true when op finished
//    at once (op.result set; the caller delivers it); false when it will be
//    delivered by a later wait().
//  - cancel(op): a request. Returns true when op finished now with -ECANCELED
//    (the caller delivers it); false when its completion (ECANCELED, or its
//    real result if it raced) will come from a later wait(). Either way the op
//    finishes exactly once, and its buffers stay in use until then.
//  - wait(timeout, done): the only call that may block, for at most timeout
//    (0 = poll). Appends finished operations to done, with result set.
//  - wake(): thread-safe; makes a blocked or the next wait() return soon.
//  - close_datagrams(q): q's socket is closing: ends the multishot receive armed
//    for q, waiting until the kernel has let go of it and of q's buffer ring, then
//    frees what the backend set up for q. A recvmsg still waiting in q finishes with
//    -ECANCELED at a later wait(). q may then die. Backends that never use q do nothing.
//  - forget(fd): fd is about to be closed and has no pending operation.
//  - provide_buffers(count, size): called once, before any start(): the blocks
//    recv_provided receives into (count 0: none, every recv_provided finishes
//    with -ENOBUFS). recycle(id) gives a block back; buffers_in_use() counts
//    the blocks handed out by finished operations and not yet recycled.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <coronet/lib/operation.hpp>

namespace coronet {

class backend {
public:
    virtual ~backend() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual bool start(operation& op) = 0;
    virtual bool cancel(operation& op) = 0;
    virtual void wait(std::chrono::nanoseconds timeout, op_list& done) = 0;
    virtual void wake() noexcept = 0;
    virtual void close_datagrams(datagram_queue&) noexcept {}
    virtual void forget(int fd) noexcept = 0;

    // --- provided buffers (op_code::recv_provided) ---
    virtual void provide_buffers(unsigned count, std::size_t size) = 0;
    virtual void recycle(std::uint16_t id) noexcept = 0;
    virtual std::size_t buffers_in_use() const noexcept = 0;
    // True when a recv_provided given a recv_queue is served by one multishot
    // receive (io_uring with a buffer ring and IORING_RECV_MULTISHOT).
    virtual bool multishot_receive() const noexcept { return false; }
};

}  // namespace coronet
