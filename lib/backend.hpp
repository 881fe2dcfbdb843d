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
//  - end_receiver(q): q's receiver is closing: ends the multishot receive armed for q.
//    True when the backend holds nothing of q's any more; false when a cancel is on
//    its way: q.armed stays true until a later wait() has taken the receive's last
//    completion, and q must live until then. Backends that never arm q return true.
//  - forget(fd, ended): fd is about to be closed; operations still parked on it end with
//    -ECANCELED into ended (a listener closed under a waiting accept).
//
// Provided buffers are not the backend's: the reactor owns the buffer_pool
// (lib/buffer_pool.hpp) and lends it to the backend it builds, for the
// backend's life. recv_provided receives into its blocks (none: every
// recv_provided finishes with -ENOBUFS); the owner of the finished operation
// gives the block back to the pool (reactor::recycle), never to the backend.
// A backend that keeps free blocks elsewhere (io_uring's buffer ring) attaches
// to the pool as its buffer_ring and is told of each block given back.
// capabilities() says, once the backend is built, what it offers beyond this
// contract (a multishot receive).

#include <chrono>
#include <string_view>

#include <coronet/lib/operation.hpp>

namespace coronet {

// What a backend offers beyond the contract.
struct backend_capabilities {
    // A recv_provided given a recv_queue is served by one multishot receive
    // (io_uring with a buffer ring and IORING_RECV_MULTISHOT).
    bool multishot_receive = false;
};

class backend {
public:
    virtual ~backend() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual bool start(operation& op) = 0;
    virtual bool cancel(operation& op) = 0;
    virtual void wait(std::chrono::nanoseconds timeout, op_list& done) = 0;
    virtual void wake() noexcept = 0;
    virtual void close_datagrams(datagram_queue&) noexcept {}
    virtual bool end_receiver(recv_queue&) noexcept { return true; }
    // fd is about to be closed (its number may come back as another descriptor). Operations
    // still parked on it would never complete: a backend that parks them ends them with
    // -ECANCELED into `ended` (resumed on the next turn).
    virtual void forget(int fd, op_list& ended) noexcept = 0;

    // Fixed when the backend is built; read without a virtual call.
    const backend_capabilities& capabilities() const noexcept { return capabilities_; }

protected:
    backend_capabilities capabilities_;
};

}  // namespace coronet
