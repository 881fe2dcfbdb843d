#pragma once
// coronet::socket: a non-blocking stream socket owned by one reactor.
//
// Every I/O call returns an awaiter (accept, connect, recv, send, sendv,
// wait_readable/writable); the socket closes itself when it dies (RAII) and is
// counted in its reactor's channel registry while open. Sends never raise
// SIGPIPE (MSG_NOSIGNAL): a reset peer is an error value. End of stream is
// recv() returning 0. Medusa ancestor: asyncore.dispatcher.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include <sys/uio.h>

#include <coronet/lib/accept_queue.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/recv_queue.hpp>

namespace coronet {

// How socket::listen() sets up a listener.
struct listen_options {
    int backlog = 1024;
    bool reuse_addr = true;   // SO_REUSEADDR (asyncore's set_reuse_addr)
    bool reuse_port = false;  // SO_REUSEPORT: one listener per reactor thread
    bool nodelay = true;      // TCP_NODELAY, inherited by every accepted connection
};

// How socket::connect() sets up a connection.
struct connect_options {
    bool nodelay = true;  // TCP_NODELAY on TCP sockets
};

// How socket::sendv() sends.
struct send_options {
    // MSG_MORE: more follows at once (a sendfile of the body after its head), so the
    // kernel may hold these bytes back to leave with it, in one segment (when nothing
    // follows, Linux sends them after about 200 ms).
    bool more = false;
};

class socket;

// co_await: the accepted socket; throws std::system_error (EMFILE, ...) on failure.
class [[nodiscard]] accept_awaiter : public op_awaiter {
public:
    // q: the listener's queue of connections accepted ahead (io_uring), or nullptr.
    accept_awaiter(reactor& r, int fd, accept_queue* q = nullptr) noexcept;
    socket await_resume();

private:
    address peer_;
};

// co_await: the connected socket; throws std::system_error (ECONNREFUSED, ...).
class [[nodiscard]] connect_awaiter : public op_awaiter {
public:
    connect_awaiter(reactor& r, const address& to, connect_options options);
    ~connect_awaiter();
    socket await_resume();

private:
    address to_;
    connect_options options_;
    int fd_ = -1;
};

// co_await: bytes received, 0 at end of stream; throws std::system_error on errors.
class [[nodiscard]] recv_awaiter : public op_awaiter {
public:
    recv_awaiter(reactor& r, int fd, std::span<std::byte> buffer) noexcept : op_awaiter(r) {
        op_.code = op_code::recv;
        op_.fd = fd;
        op_.buffer = buffer;
    }
    std::size_t await_resume() {
        return static_cast<std::size_t>(throw_if_error(finish(), "recv"));
    }
};

// What socket::recv_provided() gives: bytes in a block of the reactor's provided buffers.
struct provided_bytes {
    std::span<std::byte> bytes;  // empty at end of stream (or when no_buffer)
    int buffer_id = -1;          // give it back with reactor::recycle() once the bytes are used
    bool no_buffer = false;      // every block was out and nothing was received: use recv()
};

// co_await: bytes received into a block the backend picked when they arrived
// (none is held while waiting); throws std::system_error on errors.
class [[nodiscard]] recv_provided_awaiter : public op_awaiter {
public:
    // q: the receiver's queue for a multishot receive (io_uring), or nullptr.
    recv_provided_awaiter(reactor& r, int fd, std::size_t max, recv_queue* q = nullptr) noexcept
        : op_awaiter(r) {
        op_.code = op_code::recv_provided;
        op_.fd = fd;
        op_.provided_max = max;
        op_.receiver = q;
    }
    provided_bytes await_resume() {
        int n = finish();
        if (n == -ENOBUFS) return {.bytes = {}, .buffer_id = -1, .no_buffer = true};
        throw_if_error(n, "recv");
        provided_bytes got{.bytes = op_.buffer.first(static_cast<std::size_t>(n)),
                           .buffer_id = op_.buffer_id,
                           .no_buffer = false};
        op_.buffer_id = -1;  // the caller owns the block now
        if (n == 0) {        // no bytes: nothing to hold
            reactor_.recycle(got.buffer_id);
            got = {};
        }
        return got;
    }
};

// co_await: bytes sent (maybe fewer than asked); throws std::system_error on errors.
class [[nodiscard]] send_awaiter : public op_awaiter {
public:
    send_awaiter(reactor& r, int fd, std::span<const std::byte> data) noexcept : op_awaiter(r) {
        op_.code = op_code::send;
        op_.fd = fd;
        op_.buffer = {const_cast<std::byte*>(data.data()), data.size()};  // never written
    }
    std::size_t await_resume() {
        return static_cast<std::size_t>(throw_if_error(finish(), "send"));
    }
};

// co_await: bytes sent from the gathered buffers (maybe fewer than all of them).
class [[nodiscard]] sendv_awaiter : public op_awaiter {
public:
    sendv_awaiter(reactor& r, int fd, std::span<const iovec> iov, send_options o = {}) noexcept
        : op_awaiter(r) {
        // A send never reads msg_flags: it carries MSG_MORE to the backends (perform.cpp).
        msg_.msg_flags = o.more ? MSG_MORE : 0;
        msg_.msg_iov = const_cast<iovec*>(iov.data());
        msg_.msg_iovlen = iov.size();
        op_.code = op_code::sendmsg;
        op_.fd = fd;
        op_.msg = &msg_;
    }
    std::size_t await_resume() {
        return static_cast<std::size_t>(throw_if_error(finish(), "sendmsg"));
    }

private:
    msghdr msg_{};
};

// co_await: bytes sent straight from a file (sendfile: no copy through user
// space), maybe fewer than asked; 0 when the file ends at offset. With a head,
// the head's bytes are sent first (in a send of their own, right before the
// file's) and counted in the result: fewer than the head's size means only that
// much of the head left. Throws std::system_error on errors. The file descriptor
// and the head must stay valid until the co_await ends.
class [[nodiscard]] sendfile_awaiter : public op_awaiter {
public:
    sendfile_awaiter(reactor& r, int fd, int file_fd, std::uint64_t offset, std::size_t count,
                     std::span<const std::byte> head = {}) noexcept
        : op_awaiter(r) {
        op_.code = op_code::sendfile;
        op_.fd = fd;
        op_.buffer = {const_cast<std::byte*>(head.data()), head.size()};  // never written
        op_.file_fd = file_fd;
        op_.file_offset = offset;
        op_.file_bytes = count;
    }
    std::size_t await_resume() {
        return static_cast<std::size_t>(throw_if_error(finish(), "sendfile"));
    }
};

// co_await: the poll revents once the fd is ready (POLLIN / POLLOUT / POLLERR ...).
class [[nodiscard]] poll_awaiter : public op_awaiter {
public:
    poll_awaiter(reactor& r, int fd, short mask) noexcept : op_awaiter(r) {
        op_.code = op_code::poll;
        op_.fd = fd;
        op_.poll_mask = mask;
    }
    int await_resume() { return throw_if_error(finish(), "poll"); }
};

// Says that an fd is non-blocking already (made with SOCK_NONBLOCK): adopting it needs no
// fcntl() to check, a syscall per accepted connection saved.
struct already_nonblocking_t {
    explicit already_nonblocking_t() = default;
};
inline constexpr already_nonblocking_t already_nonblocking{};

class socket {
public:
    socket() noexcept = default;
    // Adopts fd (made non-blocking) and registers it with r. kind names it in the
    // reactor's log; the socket keeps the pointer, so it is a string literal.
    socket(reactor& r, int fd, const char* kind = "socket");
    // Adopts fd, non-blocking already, and registers it with r.
    socket(reactor& r, int fd, already_nonblocking_t, const char* kind = "socket");
    ~socket() { close(); }
    socket(socket&& o) noexcept
        : reactor_(std::exchange(o.reactor_, nullptr)),
          kind_(o.kind_),
          acceptor_(std::move(o.acceptor_)),
          fd_(std::exchange(o.fd_, -1)) {}
    socket& operator=(socket&& o) noexcept {
        if (this != &o) {
            close();
            reactor_ = std::exchange(o.reactor_, nullptr);
            fd_ = std::exchange(o.fd_, -1);
            kind_ = o.kind_;
            acceptor_ = std::move(o.acceptor_);
        }
        return *this;
    }

    // A listening socket bound to addr (port 0 picks a free port: see local_address()).
    // unix:PATH: a stale socket file (nobody answers a connect) is replaced; a path
    // where a server still listens, or that is not a socket, throws EADDRINUSE.
    [[nodiscard]] static socket listen(reactor& r, const address& addr,
                                       listen_options options = {});
    // Connects to addr.
    static connect_awaiter connect(reactor& r, const address& addr, connect_options options = {}) {
        return {r, addr, options};
    }
    // A connected pair of Unix stream sockets (tests, in-process pipes).
    static std::pair<socket, socket> pair(reactor& r);

    // On io_uring the first call arms a multishot accept that keeps accepting
    // into a queue this socket owns (closed with it); elsewhere one accept4 per call.
    accept_awaiter accept();
    recv_awaiter recv(std::span<std::byte> buffer) noexcept { return {*reactor_, fd_, buffer}; }
    // Receives up to max bytes (at most a block) into one of the reactor's provided buffers
    // (reactor_options::provided_buffers).
    recv_provided_awaiter recv_provided(std::size_t max = SIZE_MAX) noexcept {
        return {*reactor_, fd_, max};
    }
    send_awaiter send(std::span<const std::byte> data) noexcept { return {*reactor_, fd_, data}; }
    send_awaiter send(std::string_view data) noexcept {
        return {*reactor_, fd_, std::as_bytes(std::span(data))};
    }
    // Gathered send; the iovecs must outlive the co_await.
    sendv_awaiter sendv(std::span<const iovec> iov, send_options o = {}) noexcept {
        return {*reactor_, fd_, iov, o};
    }
    // Up to count bytes of file_fd from offset (the file's own position is not used or moved),
    // after head's bytes if any (see sendfile_awaiter).
    sendfile_awaiter sendfile(int file_fd, std::uint64_t offset, std::size_t count,
                              std::span<const std::byte> head = {}) noexcept {
        return {*reactor_, fd_, file_fd, offset, count, head};
    }
    poll_awaiter wait_readable() noexcept;
    poll_awaiter wait_writable() noexcept;

    // Closes now (idempotent). No operation may be pending on it.
    void close() noexcept;
    // shutdown(SHUT_WR): the peer sees end of stream, reading goes on.
    void shutdown_send() noexcept;
    // TCP_NODELAY (no effect on Unix sockets).
    void set_nodelay(bool enabled);
    // SO_SNDBUF / SO_RCVBUF, in bytes (tests use small ones).
    void set_send_buffer(int bytes);
    void set_receive_buffer(int bytes);

    address local_address() const;
    address peer_address() const;
    int native_handle() const noexcept { return fd_; }
    reactor& context() const noexcept { return *reactor_; }
    bool is_open() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    // 32 B: every connection's channel holds one.
    reactor* reactor_ = nullptr;
    const char* kind_ = "socket";  // a string literal (the reactor's log names it)
    std::unique_ptr<accept_queue>
        acceptor_;  // a listener's, on io_uring (its address is in the kernel)
    int fd_ = -1;
};

namespace detail {

// socket::recv_provided receiving ahead through q: on io_uring with a buffer
// ring one multishot receive stays armed and queues what arrives in q (whole
// blocks: max is not applied there; elsewhere q is unused and max applies).
// The caller owns q, uses it with this socket only, and calls
// detail::close_receiver(r, q) before q dies and when the socket closes (the
// armed receive keeps the connection open in the kernel until then). Not
// public API: a connection receives through a receive_room
// (lib/receive_room.hpp), which keeps the queue; recv_queue's tests use this.
inline recv_provided_awaiter recv_provided(socket& s, recv_queue& q,
                                           std::size_t max = SIZE_MAX) noexcept {
    return {s.context(), s.native_handle(), max, &q};
}

}  // namespace detail

}  // namespace coronet
