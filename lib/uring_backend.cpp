#include <coronet/lib/uring_backend.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <system_error>

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <coronet/lib/error.hpp>
#include <coronet/lib/perform.hpp>

namespace coronet {
namespace {

// Opcodes coronet issues; a kernel without one of them gets another backend.
constexpr int required_opcodes[] = {IORING_OP_ACCEPT, IORING_OP_CONNECT,      IORING_OP_RECV,
                                    IORING_OP_SEND,   IORING_OP_SENDMSG,      IORING_OP_POLL_ADD,
                                    IORING_OP_READ,   IORING_OP_ASYNC_CANCEL};

// user_data of CQEs nobody waits for (the ASYNC_CANCEL requests themselves).
constexpr std::uint64_t ignored = 0;

// operation::phase of an operation waiting on a POLL_ADD before its retry.
constexpr std::uint8_t rearm_poll = 2;

// --- provided buffers ---
// The buffer group coronet registers its ring as.
constexpr unsigned short buffer_group = 0;
// operation::phase of a recv_provided waiting for readability (no buffer ring,
// or the ring recv said -EAGAIN), before it receives.
constexpr std::uint8_t provided_poll = 3;

}  // namespace

uring_backend::uring_backend(unsigned entries) : ring_(std::make_unique<io_uring>()) {
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
    if (p.flags & IORING_SETUP_SINGLE_ISSUER) features_ += "single_issuer ";
    if (p.flags & IORING_SETUP_DEFER_TASKRUN) features_ += "defer_taskrun ";
    if (p.flags & IORING_SETUP_COOP_TASKRUN) features_ += "coop_taskrun ";
    defer_taskrun_ = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;

    io_uring_probe* probe = io_uring_get_probe_ring(ring_.get());
    bool complete = probe != nullptr;
    for (int opcode : required_opcodes)
        if (complete && !io_uring_opcode_supported(probe, opcode)) complete = false;
    if (probe) io_uring_free_probe(probe);
    if (!complete) {
        io_uring_queue_exit(ring_.get());
        throw std::system_error(make_error_code(errc::backend_unavailable),
                                "io_uring lacks an opcode coronet needs");
    }
    if (io_uring_register_ring_fd(ring_.get()) == 1) features_ += "ring_fd ";
    if (!features_.empty()) features_.pop_back();

    wakefd_ = ::eventfd(0, EFD_CLOEXEC);
    if (wakefd_ < 0) {
        int err = errno;
        io_uring_queue_exit(ring_.get());
        throw std::system_error(err, std::system_category(), "eventfd");
    }
    arm_wake();
}

uring_backend::~uring_backend() {
    // Every operation coronet started has finished by now (the reactor drains
    // them before it destroys its backend), except the internal wake read.
    io_uring_queue_exit(ring_.get());  // unregisters the buffer ring too
    if (buf_ring_) ::munmap(buf_ring_, buf_ring_bytes_);
    ::close(wakefd_);
}

io_uring_sqe* uring_backend::get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    while (!sqe) {  // SQ full: hand what is queued to the kernel, then retry
        io_uring_submit(ring_.get());
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
    op.phase = 0;
    if (op.code == op_code::sendfile) return start_sendfile(op);
    if (op.code == op_code::recv_provided && pool_.count() == 0) {
        op.buffer_id = -1;
        op.result = -ENOBUFS;
        return true;
    }
    io_uring_sqe* sqe = get_sqe();
    switch (op.code) {
    case op_code::accept:
        op.addrlen = op.addr ? op.addrlen : 0;
        io_uring_prep_accept(sqe, op.fd, op.addr, op.addr ? &op.addrlen : nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case op_code::connect: io_uring_prep_connect(sqe, op.fd, op.addr, op.addrlen); break;
    case op_code::recv: io_uring_prep_recv(sqe, op.fd, op.buffer.data(), op.buffer.size(), 0); break;
    case op_code::send:
        io_uring_prep_send(sqe, op.fd, op.buffer.data(), op.buffer.size(), MSG_NOSIGNAL);
        break;
    case op_code::sendmsg: io_uring_prep_sendmsg(sqe, op.fd, op.msg, MSG_NOSIGNAL); break;
    case op_code::poll: io_uring_prep_poll_add(sqe, op.fd, static_cast<unsigned>(op.poll_mask)); break;
    case op_code::sendfile: break;  // start_sendfile
    case op_code::timeout:
        io_uring_prep_nop(sqe);  // the reactor keeps timers; never reached
        op.result = -EINVAL;
        break;
    case op_code::recv_provided: start_provided(op, sqe); break;
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
    op.phase = rearm_poll;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_add(sqe, op.fd, POLLOUT);
    io_uring_sqe_set_data(sqe, &op);
    return false;
}

bool uring_backend::cancel(operation& op) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data64(sqe, ignored);
    return false;  // op's own CQE follows
}

void uring_backend::wait(std::chrono::nanoseconds timeout, op_list& done) {
    io_uring* ring = ring_.get();
    io_uring_cqe* cqe = nullptr;
    if (timeout.count() == 0) {
        if (defer_taskrun_) io_uring_submit_and_get_events(ring);
        else io_uring_submit(ring);
    } else {
        __kernel_timespec ts{.tv_sec = timeout.count() / 1'000'000'000,
                             .tv_nsec = timeout.count() % 1'000'000'000};
        // Submits and waits in one io_uring_enter; -ETIME / -EINTR just end the turn.
        io_uring_submit_and_wait_timeout(ring, &cqe, 1, timeout.count() < 0 ? nullptr : &ts, nullptr);
    }
    unsigned head, seen = 0;
    bool rearm = false;
    io_uring_for_each_cqe(ring, head, cqe) {
        ++seen;
        auto* op = static_cast<operation*>(io_uring_cqe_get_data(cqe));
        if (!op) continue;
        if (op == &wake_op_) {
            rearm = true;
            continue;
        }
        if (op->code == op_code::recv_provided) {
            if (finish_provided(*op, *cqe)) done.push_back(*op);
            continue;
        }
        if (op->phase == rearm_poll) {  // the readiness wait below ended: retry the call
            if (cqe->res >= 0) {
                if (start(*op)) done.push_back(*op);  // a sendfile may finish at once
                continue;
            }
            op->result = cqe->res;  // poll failed or was cancelled
        } else if (cqe->res == -EAGAIN && op->code != op_code::poll) {
            // io_uring may complete a call on a non-blocking socket with -EAGAIN
            // instead of waiting (seen with sendmsg when the peer has shut down
            // its sending side): wait for readiness ourselves, then retry. The
            // operation stays in flight under the same user_data, so a cancel
            // still finds it.
            op->phase = rearm_poll;
            io_uring_sqe* sqe = get_sqe();
            io_uring_prep_poll_add(sqe, op->fd, wants_read(*op) ? POLLIN : POLLOUT);
            io_uring_sqe_set_data(sqe, op);
            continue;
        } else {
            op->result = cqe->res;
        }
        done.push_back(*op);
    }
    io_uring_cq_advance(ring, seen);
    if (rearm) arm_wake();
}

// --- provided buffers -------------------------------------------------------

void uring_backend::provide_buffers(unsigned count, std::size_t size) {
    if (count == 0 || size == 0) return;
    count = std::min(count, 32768u);  // the kernel's limit on a ring's entries
    size = std::min<std::size_t>(size, 1u << 30);
    pool_.init(count, size);
    // The ring: page-aligned memory of ours that the kernel reads buffer
    // addresses from. A kernel without buffer rings (< 5.19) refuses the
    // registration: recv_provided then polls and receives from the free stack.
    unsigned entries = std::bit_ceil(count);
    std::size_t bytes = entries * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = buffer_group;
    if (io_uring_register_buf_ring(ring_.get(), &reg, 0) < 0) {
        ::munmap(mem, bytes);
        return;
    }
    buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
    buf_ring_bytes_ = bytes;
    buf_ring_entries_ = entries;
    io_uring_buf_ring_init(buf_ring_);
    int mask = io_uring_buf_ring_mask(entries);
    for (unsigned i = 0; i < count; ++i)
        io_uring_buf_ring_add(buf_ring_, pool_.data(static_cast<std::uint16_t>(i)),
                              static_cast<unsigned>(size), static_cast<unsigned short>(i), mask,
                              static_cast<int>(i));
    io_uring_buf_ring_advance(buf_ring_, static_cast<int>(count));
    features_ += features_.empty() ? "buf_ring" : " buf_ring";
}

void uring_backend::recycle(std::uint16_t id) noexcept {
    if (!buf_ring_) return pool_.give_back(id);
    --pool_.in_use;
    io_uring_buf_ring_add(buf_ring_, pool_.data(id), static_cast<unsigned>(pool_.size()), id,
                          io_uring_buf_ring_mask(buf_ring_entries_), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
}

void uring_backend::start_provided(operation& op, io_uring_sqe* sqe) {
    op.buffer_id = -1;
    if (buf_ring_ && op.phase != provided_poll) {
        // The kernel picks a buffer only when bytes are there to receive.
        std::size_t want = op.provided_max ? std::min(op.provided_max, pool_.size()) : pool_.size();
        io_uring_prep_recv(sqe, op.fd, nullptr, want, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffer_group;
    } else {
        op.phase = provided_poll;
        io_uring_prep_poll_add(sqe, op.fd, POLLIN);
    }
    io_uring_sqe_set_data(sqe, &op);
}

// One CQE of a recv_provided; true when the operation has finished.
bool uring_backend::finish_provided(operation& op, const io_uring_cqe& cqe) {
    if (op.phase == provided_poll) {
        if (cqe.res < 0) {  // poll failed or was cancelled
            op.result = cqe.res;
            return true;
        }
        if (buf_ring_) {  // readable again after -EAGAIN: back to the ring recv
            op.phase = 0;
            start_provided(op, get_sqe());
            return false;
        }
        if (perform_provided(op, pool_)) return true;
        start_provided(op, get_sqe());  // a spurious wakeup: poll again
        return false;
    }
    if (cqe.flags & IORING_CQE_F_BUFFER) {
        auto id = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        ++pool_.in_use;
        if (cqe.res > 0) {
            op.buffer = {pool_.data(id), static_cast<std::size_t>(cqe.res)};
            op.buffer_id = id;
        } else {
            recycle(id);  // end of stream took a buffer and left it empty
        }
    }
    if (cqe.res == -EAGAIN) {  // as for the other calls (see wait()): poll, then retry
        op.phase = provided_poll;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_add(sqe, op.fd, POLLIN);
        io_uring_sqe_set_data(sqe, &op);
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
