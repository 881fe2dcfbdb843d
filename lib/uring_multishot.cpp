// The io_uring backend's multishot accept and stream receive (lib/accept_queue.hpp,
// lib/recv_queue.hpp); the datagram one is in lib/uring_datagram.cpp.
//
// A listener's accept() keeps one IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT
// armed, and a recv_provided() given a recv_queue one IORING_OP_RECV with
// IORING_RECV_MULTISHOT into the buffer ring. The accept's arm is the queue's own
// operation (phase op_phase::multishot_armed while the kernel holds it); the
// receive has none: its user data is the recv_queue's address with the low bit
// set (operations are 8-byte aligned and `ignored` is 0), and the queue says
// whether it is armed. Each CQE goes to the oldest call waiting or is queued. A
// CQE without IORING_CQE_F_MORE ends it; the next call re-arms. Too much queued
// (backpressure) cancels it. Re-arming and cancelling submit, so after a CQE they
// wait until the CQ has been advanced (schedule_settle, then settle from wait()):
// an accept queue's arm in restart_, a receive queue in settle_.
// Medusa ancestor: asyncore.dispatcher.handle_accept / handle_read, once per CQE.

#include <coronet/lib/uring_backend.hpp>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include <fcntl.h>
#include <liburing.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <coronet/lib/accept_queue.hpp>
#include <coronet/lib/datagram_queue.hpp>
#include <coronet/lib/recv_queue.hpp>

namespace coronet {
// --- multishot accept ---

bool uring_backend::take_accepted(operation& op) {
    accept_queue& q = *op.acceptor;
    op.addrlen = 0;  // one multishot accept serves many: no peer address per call
    if (!q.ready.empty()) {
        op.result = pop_ready(q);
        // At the descriptor limit: stop accepting ahead, the rest wait in the backlog.
        if (q.held && q.arm.state == op_state::pending) cancel_arm(q);
        return true;
    }
    q.waiters.push_back(op);
    if (q.arm.state != op_state::pending && !q.queued) {
        q.arm.fd = op.fd;
        arm(q);
    }
    return false;
}

int uring_backend::pop_ready(accept_queue& q) {
    // The kernel checks RLIMIT_NOFILE as it was when the multishot accept was
    // armed, so a limit lowered since then (prlimit on a running server) lets it
    // accept past the limit. An accept() must still fail with EMFILE there, as
    // a single-shot accept would, without losing the connection: a descriptor
    // at or above the current limit moves below it (F_DUPFD) or stays held at
    // the front of the queue until one is free.
    // The limit is read at most every 100 ms (fd_limit), and again for a descriptor at or
    // above it (the limit may have been raised since).
    int res = q.ready.front();
    q.held = false;
    if (res >= 0 && std::uint64_t(res) >= fd_limit(false)) {
        std::uint64_t limit = fd_limit(true);
        if (std::uint64_t(res) >= limit) {
            int low = ::fcntl(res, F_DUPFD_CLOEXEC, 0);
            if (low < 0 || std::uint64_t(low) >= limit) {
                if (low >= 0) ::close(low);
                q.held = true;
                return -EMFILE;
            }
            ::close(res);
            res = low;
        }
    }
    q.ready.pop_front();
    return res;
}

// RLIMIT_NOFILE's soft limit as of at most 100 ms ago (fresh: now). One getrlimit per accept
// was a syscall per connection; a limit lowered on a running server (prlimit) now counts
// within 100 ms rather than at once. No limit to read: none is enforced here.
std::uint64_t uring_backend::fd_limit(bool fresh) noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    std::int64_t ns = std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
    if (fresh || fd_limit_read_ < 0 || ns - fd_limit_read_ >= 100'000'000) {
        rlimit limit{};
        fd_limit_ = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? std::uint64_t(limit.rlim_cur)
                                                            : std::uint64_t(RLIM_INFINITY);
        fd_limit_read_ = ns;
    }
    return fd_limit_;
}

void uring_backend::arm(accept_queue& q) {
    q.arm.code = op_code::accept;
    q.arm.acceptor = &q;
    q.arm.state = op_state::pending;
    q.arm.phase = op_phase::multishot_armed;
    q.cancelling = false;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, q.arm.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &q.arm);
}

void uring_backend::on_accepted(accept_queue& q, int res, bool more, op_list& done) {
    if (!more) {  // the kernel let go of it
        q.arm.state = op_state::idle;
        q.arm.phase = op_phase::none;
    }
    // The -ECANCELED that ends a cancel we asked for is no one's error.
    bool ours = res == -ECANCELED && q.cancelling;
    if (!more) q.cancelling = false;
    if (!ours) q.ready.push_back(res);
    while (!q.waiters.empty() && !q.ready.empty()) {
        operation* w = q.waiters.pop_front();
        w->result = pop_ready(q);
        done.push_back(*w);
    }
    // Not re-armed after an error: the next accept() does, as a single-shot
    // accept would retry.
    schedule_settle(q, more);
}

// Too much accepted ahead: past the soft limit, or at the descriptor limit.
bool uring_backend::too_full(const accept_queue& q) noexcept {
    return q.held || q.ready.size() >= accept_queue::soft_limit;
}

// After a multishot CQE: re-arm for calls still waiting once the kernel has let
// go of the arm, or cancel it when too much waits. Both submit, so they wait in
// restart_ until the CQ has been advanced (settle() then acts). (Queue: the
// accept_queue; the recv_queue has its own, below.)
template <class Queue>
void uring_backend::schedule_settle(Queue& q, bool more) {
    bool rearm = !more && !q.waiters.empty();
    bool trim = more && !q.cancelling && too_full(q);
    if ((rearm || trim) && !q.queued) {
        q.queued = true;
        restart_.push_back(q.arm);
    }
}

template <class Queue>
void uring_backend::settle(Queue& q) {
    q.queued = false;
    if (q.arm.state != op_state::pending) {
        if (!q.waiters.empty()) arm(q);
    } else if (!q.cancelling && too_full(q)) {
        cancel_arm(q);
    }
}

template <class Queue>
bool uring_backend::cancel_arm(Queue& q) {
    if (q.queued) {
        restart_.remove(q.arm);
        q.queued = false;
    }
    if (q.arm.state != op_state::pending) return true;  // not in the kernel
    if (!q.cancelling) {
        q.cancelling = true;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, &q.arm, 0);
        io_uring_sqe_set_data64(sqe, ignored);
    }
    return false;  // its last CQE (-ECANCELED, no F_MORE) follows
}

// --- multishot receive --------------------------------------------------------

std::uint64_t uring_backend::tag(const recv_queue& q) noexcept {
    return reinterpret_cast<std::uintptr_t>(&q) | 1;
}

bool uring_backend::take_received(operation& op) {
    recv_queue& q = *op.receiver;
    if (!q.empty()) {
        finish_with(op, q.pop());
        return true;
    }
    op.buffer_id = -1;
    q.waiters.push_back(op);
    if (!q.armed && !q.queued) {
        q.fd = op.fd;
        arm(q);
    }
    return false;
}

// op finishes with r: its bytes are viewed in their block, which op's owner now holds.
void uring_backend::finish_with(operation& op, recv_result r) noexcept {
    op.result = r.result;
    op.buffer_id = r.buffer_id;
    op.buffer = {};
    if (r.buffer_id >= 0)
        op.buffer = {pool_.data(static_cast<std::uint16_t>(r.buffer_id)),
                     static_cast<std::size_t>(r.result)};
}

void uring_backend::arm(recv_queue& q) {
    q.armed = true;
    q.cancelling = false;
    ++q.arms;
    io_uring_sqe* sqe = get_sqe();
    // Length 0: each receive fills at most one whole block.
    io_uring_prep_recv_multishot(sqe, q.fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
    io_uring_sqe_set_data64(sqe, tag(q));
}

// Enough results wait (backpressure: a connection that does not read must not
// take every block).
bool uring_backend::too_full(const recv_queue& q) noexcept {
    return q.size() >= recv_queue::capacity;
}

// As for the accept queue's arm (schedule_settle above), with the queue itself
// waiting in settle_ (a list through next_settle, newest first). Inline: once per
// CQE, from on_received only.
inline void uring_backend::schedule_settle(recv_queue& q, bool more) {
    bool rearm = !more && !q.waiters.empty();
    bool trim = more && !q.cancelling && too_full(q);
    if ((rearm || trim) && !q.queued) {
        q.queued = true;
        q.next_settle = settle_;
        settle_ = &q;
    }
}

// One CQE of a recv_queue's multishot receive. Every CQE that carries bytes
// (even one that raced our cancel) is handed on or queued: none is lost.
void uring_backend::on_received(recv_queue& q, const io_uring_cqe& cqe, op_list& done) {
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    recv_result got{.result = cqe.res, .buffer_id = -1};
    if (cqe.flags & IORING_CQE_F_BUFFER) {
        auto id = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        pool_.lend(id);
        if (cqe.res > 0)
            got.buffer_id = id;
        else
            pool_.give_back(id);  // end of stream or an error left the block empty
    } else if (cqe.res > 0) {
        got.result = -EIO;  // bytes without a block: never posted by a kernel with buffer rings
    }
    if (!more) q.armed = false;  // the kernel let go of it: no CQE of it follows
    // Not results of the stream: the -ECANCELED that ends a cancel we asked
    // for, an -EAGAIN (the next receive arms again), and -ENOBUFS when nobody
    // waits (it ends the multishot having taken nothing; the next
    // recv_provided() arms again and learns whether blocks are back).
    bool ours = cqe.res == -ECANCELED && q.cancelling;
    if (!more) q.cancelling = false;
    bool drop = ours || cqe.res == -EAGAIN || (cqe.res == -ENOBUFS && q.waiters.empty());
    if (!drop) {
        if (operation* w = q.waiters.pop_front()) {  // waiters exist only while the queue is empty
            finish_with(*w, got);
            done.push_back(*w);
        } else {
            q.push(got);
        }
    }
    schedule_settle(q, more);
}

// wait() calls it once the CQ has been advanced, for each queue in settle_ (taken off it).
void uring_backend::settle(recv_queue& q) {
    q.queued = false;
    q.next_settle = nullptr;
    if (!q.armed) {
        if (!q.waiters.empty()) arm(q);
    } else if (!q.cancelling && too_full(q)) {
        cancel_arm(q);
    }
}

bool uring_backend::cancel_arm(recv_queue& q) {
    if (q.queued) {  // out of settle_: q may die once the kernel has let go of it
        recv_queue** p = &settle_;
        while (*p != &q)
            p = &(*p)->next_settle;
        *p = q.next_settle;
        q.next_settle = nullptr;
        q.queued = false;
    }
    if (!q.armed) return true;  // not in the kernel
    if (!q.cancelling) {
        q.cancelling = true;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel64(sqe, tag(q), 0);
        io_uring_sqe_set_data64(sqe, ignored);
    }
    return false;  // its last CQE (-ECANCELED, or a result that raced the cancel; no F_MORE)
}

bool uring_backend::end_receiver(recv_queue& q) noexcept { return cancel_arm(q); }

// wait() and cancel() (lib/uring_backend.cpp) settle and cancel the arms.
template void uring_backend::settle(accept_queue& q);
template bool uring_backend::cancel_arm(accept_queue& q);
template bool uring_backend::cancel_arm(datagram_queue& q);

}  // namespace coronet
