#pragma once
// The io_uring backend: completions, one io_uring_enter per loop turn.
//
// start() only fills an SQE (user_data = the operation, or for a multishot
// receive its recv_queue's address with the low bit set); wait() submits every
// queued SQE and waits for completions in one call, then drains the CQ with
// io_uring_for_each_cqe and advances once. A full SQ is flushed and retried.
// cancel() queues an ASYNC_CANCEL; the cancelled operation still delivers its
// own CQE (-ECANCELED, or its real result if it raced), so its buffers stay in
// use until then. A listener's accept() keeps one multishot accept armed and
// takes connections from its accept_queue (lib/accept_queue.hpp), and a
// recv_provided() given a recv_queue keeps one multishot receive armed into the
// buffer ring (lib/recv_queue.hpp); both live in lib/uring_multishot.cpp.
// Features (SINGLE_ISSUER, DEFER_TASKRUN, the registered ring fd, multishot accept, multishot
// receive, SEND_ZC when asked for) are probed at start and dropped quietly where the kernel lacks
// them. The reactor's buffer_pool is registered as the buffer ring, its blocks re-added to the ring
// as they are given back (buffer_ring::put_back). A zero-copy send finishes only when the kernel's
// notification says the buffer is free again, not at its first CQE. A datagram socket's recv_from()
// keeps one multishot recvmsg armed into the socket's own buffer ring (lib/datagram_queue.hpp,
// lib/uring_datagram.cpp; probed at start: multishot_datagram in the features). Medusa ancestor:
// asyncore.poll(), turned from readiness into completion.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <coronet/lib/backend.hpp>
#include <coronet/lib/buffer_pool.hpp>

struct io_uring;
struct io_uring_cqe;
struct io_uring_sqe;
struct io_uring_buf_ring;

namespace coronet {

struct accept_queue;
struct datagram_entry;
struct datagram_queue;
struct recv_queue;
struct recv_result;

// How a uring_backend is set up.
struct uring_options {
    unsigned entries = 256;       // SQ size (the CQ is twice that)
    std::size_t send_zc_min = 0;  // send/sendmsg of at least this many bytes use SEND_ZC; 0 = never
};

class uring_backend final : public backend, private buffer_ring {
public:
    // user_data of CQEs nobody waits for (the ASYNC_CANCEL requests themselves).
    static constexpr std::uint64_t ignored = 0;
    // The buffer group the stream pool's ring is registered as (each datagram queue has its own).
    static constexpr unsigned short buffer_group = 0;
    // recv_provided receives into pool's blocks (pool outlives the backend):
    // registered as a buffer ring (recv with IOSQE_BUFFER_SELECT), the pool
    // attached to it; without one (kernel < 5.19), a POLL_ADD and then a recv
    // from the pool's free stack. Throws std::system_error
    // (errc::backend_unavailable, or the setup errno) when a ring cannot be set
    // up or lacks an opcode coronet needs.
    explicit uring_backend(buffer_pool& pool, uring_options options = {});
    ~uring_backend() override;
    uring_backend(const uring_backend&) = delete;
    uring_backend& operator=(const uring_backend&) = delete;

    std::string_view name() const noexcept override { return "io_uring"; }
    bool start(operation& op) override;
    bool cancel(operation& op) override;
    void wait(std::chrono::nanoseconds timeout, op_list& done) override;
    void wake() noexcept override;
    void forget(int, op_list&) noexcept override {}
    void close_datagrams(datagram_queue& q) noexcept override;  // lib/uring_datagram.cpp
    bool end_receiver(recv_queue& q) noexcept override;         // lib/uring_multishot.cpp

    // The setup features in use, e.g. "single_issuer defer_taskrun ring_fd buf_ring
    // multishot_recv".
    const std::string& features() const noexcept { return features_; }
    // The ring's sizes: the kernel makes the CQ twice the SQ.
    unsigned sq_entries() const noexcept;
    unsigned cq_entries() const noexcept;

private:
    ::io_uring_sqe* get_sqe();
    void arm_wake();
    bool start_sendfile(operation& op);
    void poll_then_retry(operation& op);
    void reap(op_list& done);
    void restart(operation& op, op_list& done);
    // --- multishot accept (lib/uring_multishot.cpp, as are the two sections below) ---
    bool take_accepted(operation& op);
    int pop_ready(accept_queue& q);
    std::uint64_t fd_limit(bool fresh) noexcept;
    void arm(accept_queue& q);
    void on_accepted(accept_queue& q, int res, bool more, op_list& done);
    // --- settling and cancelling an arm (Queue: accept_queue; cancel_arm: datagram_queue too) ---
    static bool too_full(const accept_queue& q) noexcept;
    template <class Queue>
    void schedule_settle(Queue& q, bool more);
    template <class Queue>
    void settle(Queue& q);
    template <class Queue>
    bool cancel_arm(Queue& q);
    // --- multishot receive: the same three for a recv_queue, which has no operation ---
    // The multishot receive's user data: q's address with the low bit set.
    static std::uint64_t tag(const recv_queue& q) noexcept;
    bool take_received(operation& op);
    void finish_with(operation& op, recv_result r) noexcept;
    void arm(recv_queue& q);
    void on_received(recv_queue& q, const io_uring_cqe& cqe, op_list& done);
    static bool too_full(const recv_queue& q) noexcept;
    void schedule_settle(recv_queue& q, bool more);
    void settle(recv_queue& q);
    bool cancel_arm(recv_queue& q);
    recv_queue* settle_ = nullptr;  // queues to re-arm or trim after this reap (next_settle)

    // --- multishot recvmsg for datagram sockets (lib/uring_datagram.cpp) ---
    bool datagrams_ready(datagram_queue& q);
    bool take_datagram(operation& op);
    bool cancel_datagram(operation& op) noexcept;
    void arm(datagram_queue& q);
    void rearm(datagram_queue& q);
    void on_datagram(datagram_queue& q, const io_uring_cqe& cqe, op_list& done);
    void deliver(operation& op, datagram_queue& q, datagram_entry e) noexcept;
    void give_back(datagram_queue& q, int block) noexcept;
    bool multishot_recvmsg_ = false;          // IORING_RECV_MULTISHOT on IORING_OP_RECVMSG (6.0)
    std::vector<std::uint16_t> free_groups_;  // buffer groups datagram sockets gave back
    unsigned next_group_ = 1;                 // group 0 is the stream pool's

    std::unique_ptr<io_uring> ring_;
    std::string features_;
    bool defer_taskrun_ = false;
    bool multishot_accept_ = false;    // IORING_ACCEPT_MULTISHOT (5.19)
    std::uint64_t fd_limit_ = 0;       // RLIMIT_NOFILE's soft limit, as read at fd_limit_read_
    std::int64_t fd_limit_read_ = -1;  // CLOCK_MONOTONIC_COARSE, ns (-1: never read)
    std::size_t send_zc_min_ = 0;      // 0: no zero-copy sends (off, or the kernel lacks them)
    int wakefd_ = -1;
    std::uint64_t wake_value_ = 0;
    operation wake_op_;  // the read on wakefd_, always in flight

    // --- provided buffers ---
    void register_buffers();
    // A buffer ring of `entries` slots (a power of two) at the start of `bytes` of fresh
    // page-aligned memory, registered as buffer group `group`: the ring, or nullptr when the
    // memory or the registration (a kernel before 5.19) was refused. Freed by munmap(ring,
    // bytes) after io_uring_unregister_buf_ring (or the ring's exit).
    io_uring_buf_ring* map_buf_ring(unsigned entries, std::size_t bytes,
                                    std::uint16_t group) noexcept;
    // Offers `size` bytes at `data` to the kernel as block `id` of a ring of `entries` slots.
    static void buf_ring_put(io_uring_buf_ring* ring, unsigned entries, void* data,
                             std::size_t size, std::uint16_t id) noexcept;
    void put_back(std::uint16_t id, std::byte* data, std::size_t size) noexcept override;
    void start_provided(operation& op, io_uring_sqe* sqe);
    bool finish_provided(operation& op, const io_uring_cqe& cqe);
    buffer_pool& pool_;
    io_uring_buf_ring* buf_ring_ = nullptr;  // nullptr: no buffer ring, the poll-then-recv path
    std::size_t buf_ring_bytes_ = 0;
    unsigned buf_ring_entries_ = 0;
    // capabilities_.multishot_receive: IORING_RECV_MULTISHOT into the buffer ring (6.0)
    bool rearm_wake_ = false;
    op_list reaped_;   // completions reaped outside wait(), delivered by the next one
    op_list restart_;  // operations to hand to the kernel again (a retry after EAGAIN)
};

}  // namespace coronet
