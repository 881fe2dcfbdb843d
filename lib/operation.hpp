#pragma once
// An operation: one system call in flight, shaped like an io_uring SQE/CQE pair.
//
// The awaiter that starts an operation owns it (nothing is allocated per
// operation). The backend fills `result` as a CQE's `res` (bytes or fd >= 0,
// -errno < 0) and the reactor resumes its waiter (or calls its on_done, for an
// operation a longer-lived object owns, like a channel's receive), exactly
// once, on the reactor's thread. While `state == pending` the kernel or a backend may still write
// into the operation and its buffers: its owner must not die before it finishes. Medusa ancestor:
// the readable()/writable() + handle_read()/handle_write() pair of asyncore.dispatcher, folded into
// one object per call.

#include <chrono>
#include <compare>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include <sys/socket.h>
#include <sys/uio.h>

namespace coronet {

struct accept_queue;
struct datagram_queue;
struct recv_queue;
class op_performer;

// What the operation does; the verbs match the system calls.
enum class op_code : std::uint8_t {
    accept,    // accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC)
    connect,   // connect(fd, addr, addrlen)
    recv,      // recv(fd, buffer)
    send,      // send(fd, buffer, MSG_NOSIGNAL)
    sendmsg,   // sendmsg(fd, msg, MSG_NOSIGNAL): gathered output
    poll,      // wait until fd is readable (poll_mask POLLIN) or writable (POLLOUT)
    sendfile,  // sendfile(fd, file_fd, &file_offset, file_bytes): file bytes, no copy; a
               // non-empty `buffer` (a response head) is sent first, in a send of its own
               // (no MSG_MORE), and counted in the result
    timeout,   // fires at `deadline`; kept by the reactor, never by a backend
    // --- provided buffers ---
    recv_provided,  // recv(fd) into a buffer the backend picks when bytes arrive (buffer_pool):
                    // on success `buffer` views the bytes and `buffer_id` names the block,
                    // which the owner gives back with reactor::recycle(); -ENOBUFS when
                    // every block is out (nothing was received: retry with a plain recv).
                    // With `receiver` set, io_uring serves it from a multishot receive
                    // (lib/recv_queue.hpp), which fills whole blocks: provided_max is then
                    // not applied
    // --- datagrams ---
    recvmsg,  // recvmsg(fd, msg, MSG_TRUNC): one datagram and its sender (msg->msg_name);
              // the result is the datagram's full length, more than the buffers when it
              // was truncated. With `datagrams` set, io_uring serves it from a multishot
              // receive (lib/datagram_queue.hpp), with the same results
};

// Where an operation is in its life. `held`: pending in an op_performer (a
// transport: TLS, an in-memory pipe) rather than in the backend.
enum class op_state : std::uint8_t { idle, pending, done, held };

// What a backend is waiting for on a pending operation's behalf, beyond the
// call itself. Backend-private: only the backend that holds the operation reads
// or writes it, and only while it is pending. A new operation starts at `none`
// (io_uring's start() also resets it); a finished one may keep its last phase,
// which means nothing then.
enum class op_phase : std::uint8_t {
    none,  // the call itself (or nothing in progress)
    // --- the readiness backends (lib/perform.cpp) ---
    connecting,  // a non-blocking connect said EINPROGRESS: wait for writability, read SO_ERROR
    // --- io_uring (lib/uring_backend.cpp, lib/uring_multishot.cpp) ---
    rearm_poll,       // a POLL_ADD for readiness, then the call again (after -EAGAIN; sendfile)
    multishot_armed,  // an accept_queue's `arm` while the kernel holds it
    zc_sent,          // a SEND_ZC / SENDMSG_ZC before its result CQE
    zc_notif,         // ... between that result (IORING_CQE_F_MORE) and the notification
    zc_refused,       // a send to start again without zero-copy (the socket refused it)
    provided_poll,    // a recv_provided waiting for readability before it receives
};

// A steady_clock time point that may live in a union (its default constructor
// is trivial, unlike time_point's): converts to and from one, and compares.
struct op_time {
    using time_point = std::chrono::steady_clock::time_point;
    std::chrono::steady_clock::duration since_epoch;

    op_time() = default;
    op_time(time_point t) noexcept : since_epoch(t.time_since_epoch()) {}
    operator time_point() const noexcept { return time_point(since_epoch); }
    friend auto operator<=>(op_time, op_time) noexcept = default;
};

struct operation {
    op_code code = op_code::recv;
    op_state state = op_state::idle;
    op_phase phase = op_phase::none;  // backend-private: see op_phase
    bool in_timer_heap : 1 = false;   // timeout: in the reactor's timer heap (lib/timer_heap.hpp)
    // Private in spirit (set_waiter / set_on_done / notify): public so that
    // operation stays standard-layout (a channel finds itself from its receive).
    bool calls_back_ : 1 = false;  // on_done_ is set, not waiter_
    int fd = -1;
    int result = 0;  // as cqe->res: >= 0 bytes/fd, < 0 -errno
    // Four bytes only two codes use: read only the member of the op's own code.
    __extension__ union {
        int buffer_id = -1;        // recv_provided: the block holding the bytes, or -1
        std::uint32_t heap_index;  // timeout: position in the reactor's timer heap
    };

    // What finishes the operation: a coroutine to resume, or a function to call
    // (when its owner is no coroutine frame, like a channel's receive); one or
    // the other, as calls_back_ says. Set with set_waiter() or set_on_done().
    __extension__ union {
        void* waiter_;  // a coroutine_handle<>'s address (a union member must be trivial)
        void (*on_done_)(operation&) = nullptr;
    };

    operation* next = nullptr;    // intrusive: parked on an fd or queued as done
    std::span<std::byte> buffer;  // recv / send / sendfile's head; recv_provided: bytes in

    // What only some codes use shares the same bytes (an operation lives in
    // every awaiter and up to three times per channel: its receive, its read
    // deadline, its sender's send): read only the member of the op's own
    // code, which its starter sets. Zero until then.
    __extension__ union {
        __extension__ struct {         // recv_provided
            std::size_t provided_max;  // most bytes to take (0: a whole block)
            recv_queue* receiver;      // the connection's multishot queue, or nullptr
        };
        __extension__ struct {          // sendmsg, recvmsg; and recv/sendmsg held by a performer
            msghdr* msg;                // sendmsg / recvmsg
            op_performer* performer;    // held: who performs it (reactor::hold)
            datagram_queue* datagrams;  // recvmsg: the socket's multishot queue, or nullptr
        };
        __extension__ struct {       // accept / connect
            sockaddr* addr;          // accept (out) / connect (in)
            socklen_t addrlen;       // accept: capacity in, length out
            accept_queue* acceptor;  // accept: the listener's multishot queue, or nullptr
        };
        short poll_mask;                // poll: POLLIN or POLLOUT
        __extension__ struct {          // sendfile
            int file_fd;                // the file read from
            std::uint64_t file_offset;  // where in it (advanced by the bytes sent)
            std::size_t file_bytes;     // at most this many
        };
        op_time deadline;           // timeout: when it fires
        std::byte per_code_[24]{};  // zeroes all of the above
    };

    // The coroutine to resume exactly once when the operation finishes.
    void set_waiter(std::coroutine_handle<> h) noexcept {
        waiter_ = h.address();
        calls_back_ = false;
    }
    // The function to call instead (its owner is no coroutine frame).
    void set_on_done(void (*f)(operation&)) noexcept {
        on_done_ = f;
        calls_back_ = true;
    }
    // The reactor, once the operation finished: resumes the waiter or calls on_done.
    void notify() {
        if (calls_back_)
            on_done_(*this);
        else
            std::coroutine_handle<>::from_address(waiter_).resume();
    }
};

// What an idle connection keeps per receive (its channel's, and on io_uring its
// multishot queue's arm): keep it from growing unnoticed.
static_assert(sizeof(operation) <= 72);
// A channel finds itself from its receive operation's address (coro/channel.hpp).
static_assert(std::is_standard_layout_v<operation>);

// Performs operations outside the backend (a transport: TLS, an in-memory pipe;
// lib/transport.hpp). It takes an operation with reactor::hold() and ends it
// with reactor::finish(), exactly once, as a backend would.
class op_performer {
public:
    // Requests cancellation of op if it is still held here: op still finishes,
    // once (-ECANCELED, or what it got). Ignores an op it no longer holds.
    virtual void cancel(operation& op) noexcept = 0;
    // op's owner is dying: forget op now and never touch it or its buffers again.
    virtual void abandon(operation& op) noexcept = 0;

protected:
    ~op_performer() = default;
};

// An intrusive FIFO of operations, linked through operation::next.
class op_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    operation* front() const noexcept { return head_; }

    // Appends op at the back.
    void push_back(operation& op) noexcept {
        op.next = nullptr;
        if (tail_)
            tail_->next = &op;
        else
            head_ = &op;
        tail_ = &op;
    }

    // Removes and returns the front (nullptr when empty).
    operation* pop_front() noexcept {
        operation* op = head_;
        if (op) {
            head_ = op->next;
            if (!head_) tail_ = nullptr;
            op->next = nullptr;
        }
        return op;
    }

    // Unlinks op if present; true when it was found.
    bool remove(operation& op) noexcept {
        operation* prev = nullptr;
        for (operation* p = head_; p; prev = p, p = p->next) {
            if (p != &op) continue;
            if (prev)
                prev->next = p->next;
            else
                head_ = p->next;
            if (tail_ == p) tail_ = prev;
            p->next = nullptr;
            return true;
        }
        return false;
    }

    // Moves every operation of other to the back of this list.
    void splice(op_list& other) noexcept {
        if (other.empty()) return;
        if (tail_)
            tail_->next = other.head_;
        else
            head_ = other.head_;
        tail_ = other.tail_;
        other.head_ = other.tail_ = nullptr;
    }

private:
    operation* head_ = nullptr;
    operation* tail_ = nullptr;
};

// An intrusive FIFO of operations in one pointer, half an op_list: its back,
// whose `next` links round to the front (a ring through operation::next). For
// lists kept per connection that rarely hold more than one operation (parked
// on a descriptor, waiting on a multishot queue).
class op_ring {
public:
    bool empty() const noexcept { return back_ == nullptr; }
    operation* front() const noexcept { return back_ ? back_->next : nullptr; }

    // Appends op at the back.
    void push_back(operation& op) noexcept {
        if (back_) {
            op.next = back_->next;
            back_->next = &op;
        } else {
            op.next = &op;
        }
        back_ = &op;
    }

    // Removes and returns the front (nullptr when empty).
    operation* pop_front() noexcept {
        if (!back_) return nullptr;
        operation* op = back_->next;
        if (op == back_)
            back_ = nullptr;
        else
            back_->next = op->next;
        op->next = nullptr;
        return op;
    }

    // Unlinks op if present; true when it was found.
    bool remove(operation& op) noexcept {
        if (!back_) return false;
        operation* prev = back_;
        do {
            operation* p = prev->next;
            if (p == &op) {
                if (p == prev)  // the only one
                    back_ = nullptr;
                else {
                    prev->next = p->next;
                    if (back_ == p) back_ = prev;
                }
                p->next = nullptr;
                return true;
            }
            prev = p;
        } while (prev != back_);
        return false;
    }

private:
    operation* back_ = nullptr;
};

}  // namespace coronet
