// The io_uring backend's multishot recvmsg for datagram sockets (lib/datagram_queue.hpp).
//
// A datagram_queue gets its own buffer ring at its first receive: one mapping
// holds the ring and `blocks` blocks, each big enough for a whole UDP datagram
// behind the kernel's io_uring_recvmsg_out header and the sender's address, and
// the ring is registered as a buffer group of its own (never the stream pool's).
// One IORING_OP_RECVMSG with IORING_RECV_MULTISHOT stays armed on it; every CQE
// is one datagram (or the error that ends the receive). The payload is copied
// into the recv_from() call's own buffer and the block goes straight back to the
// ring, so the kernel never writes into memory a caller holds, and a caller that
// goes away (cancelled, timed out) leaves nothing behind in the kernel.
// The kernel ends a multishot recvmsg by itself (a CQE without IORING_CQE_F_MORE)
// after an empty datagram (its length 0 reads as "finished"), an error, or
// -ENOBUFS (every block holds a datagram nobody has taken: the bound). After an
// empty datagram it is armed again at once; after the others, by the next
// recv_from() that finds the queue empty.
// Medusa ancestor: asyncore.dispatcher.handle_read, once per datagram.

#include <coronet/lib/uring_backend.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <coronet/lib/datagram_queue.hpp>

namespace coronet {
namespace {

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

// Sets up q's buffer ring at its first receive. False when that failed (no memory,
// no buffer group left, a kernel without buffer rings): q then receives single-shot.
bool uring_backend::datagrams_ready(datagram_queue& q) {
    if (q.mapping) return true;
    if (q.single_shot || q.blocks == 0) return false;
    q.single_shot = true;  // until the ring is set up
    int group;
    if (!free_groups_.empty()) {
        group = free_groups_.back();
        free_groups_.pop_back();
    } else if (next_group_ < 0xffff) {  // 0xffff: the probe's group, never registered
        // Room for every group ever taken, so close_datagrams() can give one back
        // without allocating.
        try {
            if (free_groups_.capacity() < next_group_) free_groups_.reserve(2 * next_group_);
        } catch (...) {
            return false;
        }
        group = static_cast<int>(next_group_++);
    } else {
        return false;
    }
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const unsigned entries = std::bit_ceil(q.blocks);
    const std::size_t ring_bytes = round_up(entries * sizeof(io_uring_buf), page);
    const std::size_t block_size = round_up(
        sizeof(io_uring_recvmsg_out) + q.msg.msg_namelen + datagram_queue::max_payload, page);
    const std::size_t bytes = ring_bytes + q.blocks * block_size;
    try {
        q.fifo.assign(q.blocks + 1, datagram_entry{});
    } catch (...) {
        free_groups_.push_back(static_cast<std::uint16_t>(group));
        return false;
    }
    io_uring_buf_ring* ring = map_buf_ring(entries, bytes, static_cast<std::uint16_t>(group));
    if (!ring) {
        free_groups_.push_back(static_cast<std::uint16_t>(group));
        q.fifo.clear();
        return false;
    }
    q.mapping = ring;
    q.mapping_bytes = bytes;
    q.block_base = reinterpret_cast<std::byte*>(ring) + ring_bytes;
    q.block_size = block_size;
    q.ring_entries = entries;
    q.group = group;
    q.head = q.count = 0;
    for (unsigned i = 0; i < q.blocks; ++i)  // one at a time: a few dozen, once per queue
        buf_ring_put(ring, entries, q.block_base + i * block_size, block_size,
                     static_cast<std::uint16_t>(i));
    q.single_shot = false;
    return true;
}

// A recv_from() on a queue in use: the oldest datagram taken ahead, else it waits
// (and arms the multishot receive if nothing is armed).
bool uring_backend::take_datagram(operation& op) {
    datagram_queue& q = *op.datagrams;
    if (!q.empty()) {
        deliver(op, q, q.pop());
        return true;
    }
    q.waiters.push_back(op);
    if (q.arm.state != op_state::pending && !q.queued) {
        q.arm.fd = op.fd;
        arm(q);
    }
    return false;
}

// A recv_from() waiting in its queue is not in the kernel: it finishes now.
bool uring_backend::cancel_datagram(operation& op) noexcept {
    datagram_queue* q = op.code == op_code::recvmsg ? op.datagrams : nullptr;
    if (!q || !q->waiters.remove(op)) return false;
    op.result = -ECANCELED;
    return true;
}

void uring_backend::arm(datagram_queue& q) {
    q.arm.code = op_code::recvmsg;
    q.arm.datagrams = &q;
    q.arm.msg = &q.msg;
    q.arm.state = op_state::pending;  // reap() knows its CQEs by their user_data, &q.arm
    q.cancelling = false;
    ++q.arms;
    io_uring_sqe* sqe = get_sqe();
    // MSG_TRUNC: the header's payloadlen is the datagram's whole length, as
    // recvmsg(MSG_TRUNC) returns on the single-shot path. No iovec: each
    // datagram fills at most one whole block.
    io_uring_prep_recvmsg_multishot(sqe, q.arm.fd, &q.msg, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = static_cast<std::uint16_t>(q.group);
    io_uring_sqe_set_data(sqe, &q.arm);
}

// From the backend's restart list (on_datagram), once the CQ has been advanced.
void uring_backend::rearm(datagram_queue& q) {
    q.queued = false;
    if (q.arm.state != op_state::pending) arm(q);
}

// One CQE of q's multishot recvmsg. Every datagram in it (even one that raced a
// cancel) goes to a waiting call or into the queue: none is lost.
void uring_backend::on_datagram(datagram_queue& q, const io_uring_cqe& cqe, op_list& done) {
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    datagram_entry got{.result = cqe.res, .block = -1};
    if (cqe.flags & IORING_CQE_F_BUFFER) {
        int id = static_cast<int>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        if (cqe.res > 0) {
            got.block = id;
            ++q.received;
        } else {
            give_back(q, id);  // an error left the block empty
        }
    } else if (cqe.res > 0) {
        got.result = -EIO;  // bytes without a block: never posted by a kernel with buffer rings
    }
    if (!more) q.arm.state = op_state::idle;  // the kernel let go of it
    // Not results of the socket: the -ECANCELED that ends a cancel we asked for,
    // -EAGAIN, and -ENOBUFS (every block holds a datagram: the bound; the next
    // recv_from() that finds the queue empty arms again, with every block back).
    const bool ours = cqe.res == -ECANCELED && q.cancelling;
    if (!more) q.cancelling = false;
    if (!ours && cqe.res != -EAGAIN && cqe.res != -ENOBUFS) {
        if (operation* w = q.waiters.pop_front()) {  // waiters exist only while the queue is empty
            deliver(*w, q, got);
            done.push_back(*w);
        } else if (!q.full()) {
            q.push(got);
        } else {  // never: each datagram holds one of `blocks` blocks, and one error ends an arm
            if (got.block >= 0) give_back(q, got.block);
        }
    }
    // Armed again at once when calls wait, or when the kernel ended it after a
    // datagram (an empty one) with blocks to spare: datagrams keep being taken
    // ahead. Not after -ENOBUFS (the bound) or an error (until it is delivered):
    // then the next recv_from() that finds the queue empty arms it. Arming
    // submits, so it waits in restart_ until the CQ has been advanced.
    const bool again = !q.waiters.empty() || (got.block >= 0 && q.size() < q.blocks);
    if (!more && !ours && again && !q.queued) {
        q.queued = true;
        restart_.push_back(q.arm);
    }
}

// op (a recv_from's recvmsg) finishes with e: the datagram is copied into op's
// buffers and its sender into op's msg_name, its block goes back to the ring,
// and the result, msg_namelen and msg_flags are what recvmsg(MSG_TRUNC) into
// those buffers would have given (the whole length; MSG_TRUNC when cut).
void uring_backend::deliver(operation& op, datagram_queue& q, datagram_entry e) noexcept {
    if (e.block < 0) {
        op.result = e.result;
        return;
    }
    std::byte* block = q.block_base + static_cast<std::size_t>(e.block) * q.block_size;
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(block, e.result, &q.msg);
    if (!out) {  // shorter than its header: never written by a kernel that has the opcode
        give_back(q, e.block);
        op.result = -EIO;
        return;
    }
    msghdr& m = *op.msg;
    if (m.msg_name) {
        std::size_t name = std::min<std::size_t>({out->namelen, q.msg.msg_namelen, m.msg_namelen});
        std::memcpy(m.msg_name, io_uring_recvmsg_name(out), name);
    }
    m.msg_namelen = out->namelen;
    const auto* payload = static_cast<const std::byte*>(io_uring_recvmsg_payload(out, &q.msg));
    std::size_t left = io_uring_recvmsg_payload_length(out, e.result, &q.msg);
    std::size_t copied = 0;
    for (std::size_t i = 0; i < m.msg_iovlen && left > 0; ++i) {
        std::size_t n = std::min(left, m.msg_iov[i].iov_len);
        std::memcpy(m.msg_iov[i].iov_base, payload + copied, n);
        copied += n;
        left -= n;
    }
    m.msg_controllen = 0;  // the multishot path carries no control messages
    m.msg_flags = static_cast<int>(out->flags);
    if (out->payloadlen > copied) m.msg_flags |= MSG_TRUNC;
    op.result = static_cast<int>(out->payloadlen);
    give_back(q, e.block);
}

// Block id back into q's ring, for the kernel to fill again.
void uring_backend::give_back(datagram_queue& q, int block) noexcept {
    buf_ring_put(static_cast<io_uring_buf_ring*>(q.mapping), q.ring_entries,
                 q.block_base + static_cast<std::size_t>(block) * q.block_size, q.block_size,
                 static_cast<std::uint16_t>(block));
}

// Why wait here: the kernel holds q.arm (user_data) and may write into any free
// block until the multishot receive's last CQE (one without F_MORE) is posted,
// even after a cancel was asked for. Only then may the ring be unregistered and
// the mapping, and q, be freed. Completions of other operations reaped meanwhile
// are delivered by the next wait().
void uring_backend::close_datagrams(datagram_queue& q) noexcept {
    while (operation* w = q.waiters.pop_front()) {
        w->datagrams = nullptr;  // forgets q, which may die before it is resumed
        w->result = -ECANCELED;
        reaped_.push_back(*w);
    }
    if (!cancel_arm(q)) {
        while (q.arm.state == op_state::pending) {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 10'000'000};
            io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
            reap(reaped_);
        }
    }
    // The arm's last CQE may have been a datagram (the kernel ends a multishot
    // recvmsg after an empty one) rather than the cancel's: on_datagram() then
    // queued it in restart_ to arm again. q dies after this call: out it goes.
    if (q.queued) {
        restart_.remove(q.arm);
        q.queued = false;
    }
    q.head = q.count = 0;  // datagrams never taken go with the mapping
    if (q.mapping) {
        io_uring_unregister_buf_ring(ring_.get(), q.group);
        ::munmap(q.mapping, q.mapping_bytes);
        free_groups_.push_back(static_cast<std::uint16_t>(q.group));
        q.mapping = nullptr;
        q.block_base = nullptr;
        q.group = -1;
    }
}

}  // namespace coronet
