#include <coronet/lib/uring_backend.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <string>
#include <system_error>

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <coronet/lib/accept_queue.hpp>
#include <coronet/lib/datagram_queue.hpp>
#include <coronet/lib/recv_queue.hpp>

#include <coronet/lib/error.hpp>
#include <coronet/lib/perform.hpp>

namespace coronet {
namespace {

// Opcodes coronet issues; a kernel without one of them gets another backend.
constexpr int required_opcodes[] = {IORING_OP_ACCEPT, IORING_OP_CONNECT,     IORING_OP_RECV,
                                    IORING_OP_SEND,   IORING_OP_SENDMSG,     IORING_OP_POLL_ADD,
                                    IORING_OP_READ,   IORING_OP_ASYNC_CANCEL};

// An operation's io_uring phase (operation::phase, op_phase in lib/operation.hpp):
// a POLL_ADD before the call again (rearm_poll), a multishot arm the kernel holds
// (multishot_armed, lib/uring_multishot.cpp), a zero-copy send between its CQEs
// (zc_sent, zc_notif) or one to send again without it (zc_refused), a
// recv_provided waiting for readability before it receives (provided_poll: no
// buffer ring, or the ring recv said -EAGAIN).

// A feature probe: submits `armed` (a multishot operation prepared on an fd
// with nothing to do) and a cancel of it, and waits for both CQEs. True when
// the operation ended with -ECANCELED, i.e. the kernel accepted and armed it
// (one without the flag refuses it with -EINVAL). Every CQE carries `ignored`
// user_data, so nothing left over can reach an operation; CQEs of others
// (the wake read) are left alone. A fresh ring has room for both SQEs.
bool armed_then_cancelled(io_uring* ring, io_uring_sqe* armed) {
    io_uring_sqe_set_data64(armed, uring_backend::ignored);
    io_uring_sqe* cancel = io_uring_get_sqe(ring);
    if (!cancel)
        return false;  // never reached on a fresh ring; `armed` is then never submitted alone
    io_uring_prep_cancel64(cancel, uring_backend::ignored, 0);
    io_uring_sqe_set_data64(cancel, uring_backend::ignored);
    bool supported = false;
    int want = 2;
    if (io_uring_submit(ring) >= 2) {
        for (int tries = 0; want > 0 && tries < 4; ++tries) {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 250'000'000};
            if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) < 0 || !cqe) continue;
            if (cqe->user_data != uring_backend::ignored)
                break;  // someone else's: leave it for wait()
            if (cqe->res == -ECANCELED) supported = true;
            io_uring_cqe_seen(ring, cqe);
            --want;
        }
    }
    return supported;
}

// True when the kernel takes IORING_ACCEPT_MULTISHOT (5.19): armed on a
// listening socket with nothing to accept, then cancelled, the accept ends with
// -ECANCELED; a kernel without the flag refuses it with -EINVAL. Both CQEs
// carry `uring_backend::ignored` user_data, so nothing left over can reach an operation.
bool probe_multishot_accept(io_uring* ring) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    bool supported = false;
    // Binding only the family autobinds an abstract name: no file to clean up.
    if (::bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(sa_family_t)) == 0 &&
        ::listen(fd, 1) == 0) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
        supported = armed_then_cancelled(ring, sqe);
    }
    ::close(fd);
    return supported;
}

// --- multishot receive ---
// True when the kernel takes IORING_RECV_MULTISHOT (6.0) into the buffer
// ring: armed on an empty socket, then cancelled, the receive ends with
// -ECANCELED (the block it looked at goes back to the ring unused); a kernel
// without the flag refuses it with -EINVAL. As for the accept probe, every
// CQE carries `uring_backend::ignored` user_data. Runs once the ring's wake read is queued:
// it is submitted too, and cannot complete before anyone has the reactor.
bool probe_multishot_recv(io_uring* ring) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return false;
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = uring_backend::buffer_group;
    bool supported = armed_then_cancelled(ring, sqe);
    ::close(sv[0]);
    ::close(sv[1]);
    return supported;
}

// --- multishot recvmsg (datagram sockets: lib/uring_datagram.cpp) ---
// True when the kernel takes IORING_RECV_MULTISHOT on IORING_OP_RECVMSG (6.0):
// armed on an empty datagram socket, then cancelled, it ends with -ECANCELED; a
// kernel without it refuses the flag with -EINVAL. IORING_RECVSEND_POLL_FIRST makes
// the kernel wait for a datagram before it picks a buffer, so the probe needs no
// buffer ring (the group named is never registered). As for the accept probe,
// every CQE carries `ignored` user_data.
bool probe_multishot_recvmsg(io_uring* ring) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return false;
    sockaddr_storage name{};
    msghdr msg{};
    msg.msg_name = &name;
    msg.msg_namelen = sizeof name;
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_recvmsg_multishot(sqe, sv[0], &msg, MSG_TRUNC);
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0xffff;
    bool supported = armed_then_cancelled(ring, sqe);
    ::close(sv[0]);
    ::close(sv[1]);
    return supported;
}

// --- zero-copy send ---
// A SEND_ZC / SENDMSG_ZC is zc_sent before its result CQE and zc_notif between
// that result (IORING_CQE_F_MORE) and the notification; zc_refused when it is
// to be sent again without zero-copy (the socket type lacks it: Unix sockets
// answer -EOPNOTSUPP).

std::size_t msg_bytes(const msghdr& m) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < m.msg_iovlen; ++i)
        n += m.msg_iov[i].iov_len;
    return n;
}

}  // namespace

uring_backend::uring_backend(buffer_pool& pool, uring_options options)
    : ring_(std::make_unique<io_uring>()), pool_(pool) {
    unsigned entries = options.entries;
    io_uring_params p{};
    // Newest flags first; each refusal (EINVAL on older kernels) drops one.
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    int rc = io_uring_queue_init_params(entries, ring_.get(), &p);
    if (rc == -EINVAL) {
        p = {};
        p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
        rc = io_uring_queue_init_params(entries, ring_.get(), &p);
    }
    if (rc == -EINVAL) {
        p = {};
        rc = io_uring_queue_init_params(entries, ring_.get(), &p);
    }
    if (rc < 0) throw std::system_error(-rc, std::system_category(), "io_uring_queue_init");
    if (!(p.features & IORING_FEAT_NODROP)) {
        // Without it (before 5.5) a full CQ drops completions: an operation
        // would never finish. Every kernel with the opcodes below has it.
        io_uring_queue_exit(ring_.get());
        throw std::system_error(
            make_error_code(errc::backend_unavailable),
            "io_uring drops completions when its CQ is full (no IORING_FEAT_NODROP)");
    }
    if (p.flags & IORING_SETUP_SINGLE_ISSUER) features_ += "single_issuer ";
    if (p.flags & IORING_SETUP_DEFER_TASKRUN) features_ += "defer_taskrun ";
    if (p.flags & IORING_SETUP_COOP_TASKRUN) features_ += "coop_taskrun ";
    defer_taskrun_ = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;

    io_uring_probe* probe = io_uring_get_probe_ring(ring_.get());
    bool complete = probe != nullptr;
    for (int opcode : required_opcodes)
        if (complete && !io_uring_opcode_supported(probe, opcode)) complete = false;
    if (complete && options.send_zc_min > 0 &&
        io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
        io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC))
        send_zc_min_ = options.send_zc_min;
    if (probe) io_uring_free_probe(probe);
    if (!complete) {
        io_uring_queue_exit(ring_.get());
        throw std::system_error(make_error_code(errc::backend_unavailable),
                                "io_uring lacks an opcode coronet needs");
    }
    if (io_uring_register_ring_fd(ring_.get()) == 1) features_ += "ring_fd ";
    multishot_accept_ = probe_multishot_accept(ring_.get());
    if (multishot_accept_) features_ += "multishot_accept ";
    multishot_recvmsg_ = probe_multishot_recvmsg(ring_.get());
    if (multishot_recvmsg_) features_ += "multishot_datagram ";
    if (send_zc_min_ > 0) features_ += "send_zc>=" + std::to_string(send_zc_min_) + " ";
    if (!features_.empty()) features_.pop_back();

    wakefd_ = ::eventfd(0, EFD_CLOEXEC);
    if (wakefd_ < 0) {
        int err = errno;
        io_uring_queue_exit(ring_.get());
        throw std::system_error(err, std::system_category(), "eventfd");
    }
    arm_wake();
    register_buffers();  // last: nothing after it throws, so the pool is never left attached
}

uring_backend::~uring_backend() {
    // Every operation coronet started has finished by now (the reactor drains
    // them before it destroys its backend), except the internal wake read.
    if (buf_ring_) pool_.detach();     // blocks given back from now on go to its free stack
    io_uring_queue_exit(ring_.get());  // unregisters the buffer ring too
    if (buf_ring_) ::munmap(buf_ring_, buf_ring_bytes_);
    ::close(wakefd_);
}

unsigned uring_backend::sq_entries() const noexcept { return ring_->sq.ring_entries; }
unsigned uring_backend::cq_entries() const noexcept { return ring_->cq.ring_entries; }

io_uring_sqe* uring_backend::get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    while (!sqe) {  // SQ full: hand what is queued to the kernel, then retry
        int rc = io_uring_submit(ring_.get());
        // Kernels before 5.19 refuse new submissions (-EBUSY) while completions
        // wait in the overflow list: reap the CQ so the kernel can flush it (what
        // is reaped is delivered by the next wait()), then retry.
        if (rc == -EBUSY || rc == -EAGAIN) reap(reaped_);
        sqe = io_uring_get_sqe(ring_.get());
    }
    return sqe;
}

void uring_backend::arm_wake() {
    wake_op_.code = op_code::recv;
    wake_op_.state = op_state::pending;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data(sqe, &wake_op_);
}

bool uring_backend::start(operation& op) {
    bool zc = send_zc_min_ > 0 && op.phase != op_phase::zc_refused;
    op.phase = op_phase::none;
    if (op.code == op_code::sendfile) return start_sendfile(op);
    if (op.code == op_code::recv_provided && pool_.count() == 0) {
        op.buffer_id = -1;
        op.result = -ENOBUFS;
        return true;
    }
    if (op.code == op_code::recvmsg && op.datagrams && multishot_recvmsg_ &&
        datagrams_ready(*op.datagrams))
        return take_datagram(op);  // lib/uring_datagram.cpp
    if (op.code == op_code::accept && op.acceptor && multishot_accept_) return take_accepted(op);
    if (op.code == op_code::recv_provided && op.receiver && capabilities_.multishot_receive)
        return take_received(op);
    io_uring_sqe* sqe = get_sqe();
    switch (op.code) {
    case op_code::accept:
        op.addrlen = op.addr ? op.addrlen : 0;
        io_uring_prep_accept(sqe, op.fd, op.addr, op.addr ? &op.addrlen : nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case op_code::connect: io_uring_prep_connect(sqe, op.fd, op.addr, op.addrlen); break;
    case op_code::recv:
        io_uring_prep_recv(sqe, op.fd, op.buffer.data(), op.buffer.size(), 0);
        break;
    case op_code::send:
        if (zc && op.buffer.size() >= send_zc_min_) {
            io_uring_prep_send_zc(sqe, op.fd, op.buffer.data(), op.buffer.size(), MSG_NOSIGNAL, 0);
            op.phase = op_phase::zc_sent;
        } else {
            io_uring_prep_send(sqe, op.fd, op.buffer.data(), op.buffer.size(), MSG_NOSIGNAL);
        }
        break;
    case op_code::sendmsg:
        // Never zero-copy with MSG_MORE: the send ends only at the kernel's release notice,
        // which the tail MSG_MORE holds back cannot give before the next send (the file
        // behind it) starts, so each such response would wait for the cork timer.
        if (zc && !send_more(*op.msg) && msg_bytes(*op.msg) >= send_zc_min_) {
            io_uring_prep_sendmsg_zc(sqe, op.fd, op.msg, MSG_NOSIGNAL | send_more(*op.msg));
            op.phase = op_phase::zc_sent;
        } else {
            io_uring_prep_sendmsg(sqe, op.fd, op.msg, MSG_NOSIGNAL | send_more(*op.msg));
        }
        break;
    case op_code::poll:
        io_uring_prep_poll_add(sqe, op.fd, static_cast<unsigned>(op.poll_mask));
        break;
    case op_code::sendfile: break;  // start_sendfile
    case op_code::timeout:
        io_uring_prep_nop(sqe);  // the reactor keeps timers; never reached
        op.result = -EINVAL;
        break;
    case op_code::recv_provided: start_provided(op, sqe); break;
    case op_code::recvmsg: io_uring_prep_recvmsg(sqe, op.fd, op.msg, MSG_TRUNC); break;
    }
    io_uring_sqe_set_data(sqe, &op);
    return false;
}

// io_uring has no sendfile opcode (its splice needs a pipe per transfer):
// try sendfile(2) on the non-blocking socket now, and when the socket is full,
// wait for POLLOUT in the ring and try again (the rearm_poll path in wait()).
// The file is read synchronously from the page cache, as the readiness backends do.
bool uring_backend::start_sendfile(operation& op) {
    if (perform(op)) return true;
    poll_then_retry(op);
    return false;
}

// Waits in the ring for op's fd to be ready in op's direction; the POLL_ADD's
// CQE (phase rearm_poll, same user_data, so a cancel finds it) starts op again.
void uring_backend::poll_then_retry(operation& op) {
    op.phase = op_phase::rearm_poll;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_add(sqe, op.fd, wants_read(op) ? POLLIN : POLLOUT);
    io_uring_sqe_set_data(sqe, &op);
}

bool uring_backend::cancel(operation& op) {
    // acceptor and receiver are read only for their own codes (operation's union).
    if (accept_queue* q = op.code == op_code::accept ? op.acceptor : nullptr) {
        if (&op == &q->arm) return cancel_arm(*q);
        if (q->waiters.remove(op)) {  // waiting for the multishot accept, not in the kernel
            op.result = -ECANCELED;
            return true;
        }
    }
    if (recv_queue* q = op.code == op_code::recv_provided ? op.receiver : nullptr) {
        if (q->waiters.remove(op)) {  // waiting for the multishot receive, not in the kernel
            op.result = -ECANCELED;
            return true;
        }
    }
    if (cancel_datagram(op)) return true;  // waiting for the multishot recvmsg, not in the kernel
    if (restart_.remove(op)) {             // between two kernel calls (see reap): not in flight
        op.result = -ECANCELED;
        return true;
    }
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data64(sqe, ignored);
    return false;  // op's own CQE follows
}

void uring_backend::wait(std::chrono::nanoseconds timeout, op_list& done) {
    io_uring* ring = ring_.get();
    done.splice(reaped_);
    // Never sleep while completions are ready: reaped early, already in the CQ,
    // or parked in the kernel's overflow list after the CQ filled up
    // (IORING_SQ_CQ_OVERFLOW; those reach the CQ only on an io_uring_enter with
    // GETEVENTS, which io_uring_get_events makes).
    // Nor while a reap outside wait() (get_sqe with the SQ full) left a queue to settle or an
    // operation to restart: they are handed to the kernel only below, after this turn's wait.
    if (!done.empty() || settle_ || !restart_.empty() || io_uring_cq_ready(ring) > 0 ||
        io_uring_cq_has_overflow(ring))
        timeout = std::chrono::nanoseconds(0);
    if (timeout.count() == 0) {
        if (defer_taskrun_) {
            io_uring_submit_and_get_events(ring);
        } else {
            io_uring_submit(ring);
            if (io_uring_cq_has_overflow(ring)) io_uring_get_events(ring);
        }
    } else {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{.tv_sec = timeout.count() / 1'000'000'000,
                             .tv_nsec = timeout.count() % 1'000'000'000};
        // Submits and waits in one io_uring_enter; -ETIME / -EINTR just end the turn.
        io_uring_submit_and_wait_timeout(ring, &cqe, 1, timeout.count() < 0 ? nullptr : &ts,
                                         nullptr);
    }
    reap(done);
    // Now that the CQ has room again, queue the retries reap() found. Any of them
    // may reap again (get_sqe with the SQ full) and so add to either list.
    for (;;) {
        if (recv_queue* q = settle_) {
            settle_ = q->next_settle;
            settle(*q);
        } else if (operation* op = restart_.pop_front()) {
            restart(*op, done);
        } else {
            break;
        }
    }
    if (rearm_wake_) {
        rearm_wake_ = false;
        arm_wake();
    }
}

// An operation reap() queued in restart_, handed to the kernel again.
void uring_backend::restart(operation& op, op_list& done) {
    if (op.code == op_code::accept && op.acceptor && &op == &op.acceptor->arm) {
        settle(*op.acceptor);
    } else if (op.code == op_code::recvmsg && op.datagrams && &op == &op.datagrams->arm) {
        rearm(*op.datagrams);
    } else if (op.code == op_code::recv_provided) {
        start_provided(op, get_sqe());  // the ring recv, or (phase provided_poll) the poll
    } else if (op.phase == op_phase::rearm_poll) {
        poll_then_retry(op);
    } else if (start(op)) {  // a sendfile (or a recv_provided without buffers) may finish at once
        done.push_back(op);
    }
}

void uring_backend::reap(op_list& done) {
    // Takes what the CQ holds and advances once. Submits nothing (a submission
    // could need this very reap first, see get_sqe): retries go to restart_.
    io_uring* ring = ring_.get();
    io_uring_cqe* cqe = nullptr;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
        ++seen;
        if (cqe->user_data & 1) {  // a recv_queue's multishot receive (uring_multishot.cpp)
            on_received(*reinterpret_cast<recv_queue*>(cqe->user_data - 1), *cqe, done);
            continue;
        }
        auto* op = static_cast<operation*>(io_uring_cqe_get_data(cqe));
        if (!op) continue;
        if (op == &wake_op_) {
            rearm_wake_ = true;
            continue;
        }
        if (op->code == op_code::recvmsg && op->datagrams && op == &op->datagrams->arm) {
            on_datagram(*op->datagrams, *cqe, done);  // lib/uring_datagram.cpp
            continue;
        }
        if (op->phase == op_phase::multishot_armed) {  // an accept_queue's arm
            on_accepted(*op->acceptor, cqe->res, (cqe->flags & IORING_CQE_F_MORE) != 0, done);
            continue;
        }
        if (op->phase == op_phase::zc_sent || op->phase == op_phase::zc_notif) {
            // A zero-copy send posts its result (with IORING_CQE_F_MORE), then a
            // notification (IORING_CQE_F_NOTIF) once the kernel no longer reads
            // the buffer. Only then may the caller reuse it: finish at the
            // notification. A result without F_MORE has no notification.
            if (cqe->flags & IORING_CQE_F_NOTIF) {
                op->phase = op_phase::none;
            } else {
                op->result = cqe->res;
                if (cqe->flags & IORING_CQE_F_MORE) {
                    op->phase = op_phase::zc_notif;
                    continue;
                }
                op->phase = op_phase::none;
            }
            if (op->result == -EAGAIN || op->result == -EOPNOTSUPP) {
                // EAGAIN: as below, wait for readiness and send again.
                op->phase = op->result == -EAGAIN ? op_phase::rearm_poll : op_phase::zc_refused;
                restart_.push_back(*op);
                continue;
            }
            done.push_back(*op);
            continue;
        }
        if (op->code == op_code::recv_provided) {
            if (finish_provided(*op, *cqe)) done.push_back(*op);
            continue;
        }
        if (op->phase == op_phase::rearm_poll) {  // the readiness wait below ended: retry the call
            if (cqe->res >= 0) {
                op->phase = op_phase::none;
                restart_.push_back(*op);
                continue;
            }
            op->result = cqe->res;  // poll failed or was cancelled
        } else if (cqe->res == -EAGAIN && op->code != op_code::poll) {
            // io_uring may complete a call on a non-blocking socket with -EAGAIN
            // instead of waiting (seen with sendmsg when the peer has shut down
            // its sending side): wait for readiness ourselves, then retry. Until
            // the poll is queued the operation waits in restart_, where cancel()
            // finds it.
            op->phase = op_phase::rearm_poll;
            restart_.push_back(*op);
            continue;
        } else {
            op->result = cqe->res;
        }
        done.push_back(*op);
    }
    io_uring_cq_advance(ring, seen);
}

// --- provided buffers -------------------------------------------------------

// Called once, at the end of the constructor: nothing after it may throw
// (the pool would stay attached to a backend that never finished building).
void uring_backend::register_buffers() {
    unsigned count = pool_.count();
    if (count == 0) return;
    features_.reserve(features_.size() + sizeof " buf_ring multishot_recv");
    // The ring: page-aligned memory of ours that the kernel reads buffer
    // addresses from. A kernel without buffer rings (< 5.19) refuses the
    // registration: recv_provided then polls and receives from the free stack.
    unsigned entries = std::bit_ceil(count);
    std::size_t bytes = entries * sizeof(io_uring_buf);
    buf_ring_ = map_buf_ring(entries, bytes, buffer_group);
    if (!buf_ring_) return;
    buf_ring_bytes_ = bytes;
    buf_ring_entries_ = entries;
    features_ += features_.empty() ? "buf_ring" : " buf_ring";
    pool_.attach(*this);  // every free block into the ring (put_back below)
    // The probe needs blocks in the ring: the kernel picks one before it finds the socket empty.
    capabilities_.multishot_receive = probe_multishot_recv(ring_.get());
    if (capabilities_.multishot_receive) features_ += " multishot_recv";
}

io_uring_buf_ring* uring_backend::map_buf_ring(unsigned entries, std::size_t bytes,
                                               std::uint16_t group) noexcept {
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = group;
    if (io_uring_register_buf_ring(ring_.get(), &reg, 0) < 0) {
        ::munmap(mem, bytes);
        return nullptr;
    }
    auto* ring = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(ring);
    return ring;
}

void uring_backend::buf_ring_put(io_uring_buf_ring* ring, unsigned entries, void* data,
                                 std::size_t size, std::uint16_t id) noexcept {
    io_uring_buf_ring_add(ring, data, static_cast<unsigned>(size), id,
                          io_uring_buf_ring_mask(entries), 0);
    io_uring_buf_ring_advance(ring, 1);
}

// The pool's block id is free again (attach, or given back): the kernel may pick it.
void uring_backend::put_back(std::uint16_t id, std::byte* data, std::size_t size) noexcept {
    buf_ring_put(buf_ring_, buf_ring_entries_, data, size, id);
}

void uring_backend::start_provided(operation& op, io_uring_sqe* sqe) {
    op.buffer_id = -1;
    if (buf_ring_ && op.phase != op_phase::provided_poll) {
        // The kernel picks a buffer only when bytes are there to receive.
        std::size_t want = op.provided_max ? std::min(op.provided_max, pool_.size()) : pool_.size();
        io_uring_prep_recv(sqe, op.fd, nullptr, want, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffer_group;
    } else {
        op.phase = op_phase::provided_poll;
        io_uring_prep_poll_add(sqe, op.fd, POLLIN);
    }
    io_uring_sqe_set_data(sqe, &op);
}

// One CQE of a recv_provided; true when the operation has finished.
bool uring_backend::finish_provided(operation& op, const io_uring_cqe& cqe) {
    if (op.phase == op_phase::provided_poll) {
        if (cqe.res < 0) {  // poll failed or was cancelled
            op.result = cqe.res;
            return true;
        }
        // Called while reaping: nothing is submitted here; restart_ re-arms it.
        if (buf_ring_) {  // readable again after -EAGAIN: back to the ring recv
            op.phase = op_phase::none;
            restart_.push_back(op);
            return false;
        }
        if (perform_provided(op, pool_)) return true;
        restart_.push_back(op);  // a spurious wakeup: poll again (phase stays provided_poll)
        return false;
    }
    if (cqe.flags & IORING_CQE_F_BUFFER) {
        auto id = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        pool_.lend(id);
        if (cqe.res > 0) {
            op.buffer = {pool_.data(id), static_cast<std::size_t>(cqe.res)};
            op.buffer_id = id;
        } else {
            pool_.give_back(id);  // end of stream took a buffer and left it empty
        }
    }
    if (cqe.res == -EAGAIN) {  // as for the other calls (see reap()): poll, then retry
        op.phase = op_phase::provided_poll;
        restart_.push_back(op);
        return false;
    }
    op.result = cqe.res;
    return true;
}

void uring_backend::wake() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wakefd_, &one, sizeof one);
}

}  // namespace coronet
