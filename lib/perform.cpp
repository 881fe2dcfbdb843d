#include <coronet/lib/perform.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

namespace coronet {
namespace {

// A would-block errno means "park"; anything else is the op's result.
bool finish_or_park(operation& op, long n) noexcept {
    if (n >= 0) {
        op.result = static_cast<int>(n);
        return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    op.result = -errno;
    return true;
}

bool perform_connect(operation& op) noexcept {
    if (op.phase == op_phase::none) {
        if (::connect(op.fd, op.addr, op.addrlen) == 0) {
            op.result = 0;
            return true;
        }
        if (errno == EINPROGRESS || errno == EINTR) {
            op.phase = op_phase::connecting;  // wait for writability, then read SO_ERROR
            return false;
        }
        op.result = -errno;
        return true;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == EINPROGRESS || err == EALREADY) return false;
    op.result = -err;
    return true;
}

// sendfile(2) has no MSG_NOSIGNAL: a send to a reset peer raises SIGPIPE,
// whose default action kills the process. Block it on this thread around the
// call and take the one the call raised, leaving the process's disposition
// alone (the way libraries that cannot own signal handling do it).
//
// The call raises it not only when it fails with EPIPE: a sendfile that has
// sent a chunk and then meets the reset (the peer had closed: it answers the
// chunk with a reset) returns the short count, its SIGPIPE already raised.
// Restoring the mask then delivered it, and http_server died (exit 141) at the
// end of wrk runs. So whatever the call returns, a SIGPIPE pending afterwards
// that was not pending before is ours and is taken. With SIGPIPE unblocked
// before the call none can have been pending (it would have been delivered),
// so the common path is block, sendfile, sigpending, restore.
long sendfile_nosignal(operation& op) noexcept {
    // A process that ignores SIGPIPE (servers commonly do: nginx, redis, http_server) cannot
    // be killed by the call (a thread that blocks it keeps it pending, to be ignored when
    // delivered): one query instead of the guard's three calls. Asked every call, never
    // cached, so a program that restores the default action later is guarded again at once.
    struct ::sigaction action {};
    if (::sigaction(SIGPIPE, nullptr, &action) == 0 && action.sa_handler == SIG_IGN) {
        auto offset = static_cast<off_t>(op.file_offset);
        long n = ::sendfile(op.fd, op.file_fd, &offset, op.file_bytes);
        if (n > 0) op.file_offset = static_cast<std::uint64_t>(offset);
        return n;
    }
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    const bool blocked_before = sigismember(&old, SIGPIPE) == 1;
    bool was_pending = false;
    if (blocked_before) {
        ::sigpending(&pending);
        was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    auto offset = static_cast<off_t>(op.file_offset);
    long n = ::sendfile(op.fd, op.file_fd, &offset, op.file_bytes);
    int err = errno;
    if (n > 0) op.file_offset = static_cast<std::uint64_t>(offset);
    if (!was_pending) {
        bool raised = n < 0 && err == EPIPE;
        if (!raised) {
            ::sigpending(&pending);
            raised = sigismember(&pending, SIGPIPE) == 1;
        }
        if (raised) {
            timespec now{};
            while (::sigtimedwait(&pipe_only, nullptr, &now) < 0 && errno == EINTR) {
            }
        }
    }
    if (!blocked_before) ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = err;
    return n;
}

// sendfile with a head (op.buffer): the head first, by a plain send without
// MSG_MORE, so that it leaves in a segment of its own, and the file right
// behind it in the same call. Sent back to back, no segment of the peer's can
// come between them: the file's first full segment echoes the same timestamp
// as the head, so the peer's receive-window tuning takes no RTT sample from
// the time this side spent answering (see benchmarks/STEPS.md, issue 16 item 3).
// A head sent short (or not at all) is the result; a head sent whole counts
// with what the file then gives, whose would-block or error shows next time.
long sendfile_with_head(operation& op) noexcept {
    const std::size_t head = op.buffer.size();
    if (head == 0) return sendfile_nosignal(op);
    long n = ::send(op.fd, op.buffer.data(), head, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 || static_cast<std::size_t>(n) < head) return n;
    // The result is an int (a CQE's res): the head and the file's part must fit.
    constexpr std::size_t max_result = 0x7ffff000;  // Linux's most per read or write call
    const std::size_t asked = op.file_bytes;
    op.file_bytes = std::min(asked, max_result - std::min(head, max_result));
    long m = sendfile_nosignal(op);
    op.file_bytes = asked;
    return m > 0 ? n + m : n;
}

bool perform_poll(operation& op) noexcept {
    pollfd p{.fd = op.fd, .events = op.poll_mask, .revents = 0};
    int n = ::poll(&p, 1, 0);
    if (n < 0) {
        op.result = -errno;
        return true;
    }
    if (n == 0) return false;
    op.result = p.revents;
    return true;
}

}  // namespace

bool wants_read(const operation& op) noexcept {
    switch (op.code) {
    case op_code::accept:
    case op_code::recv:
    case op_code::recv_provided:
    case op_code::recvmsg: return true;
    case op_code::poll: return (op.poll_mask & POLLIN) != 0;
    default: return false;
    }
}

bool perform(operation& op) noexcept {
    for (;;) {
        long n = 0;
        switch (op.code) {
        case op_code::accept: {
            socklen_t len = op.addrlen;
            n = ::accept4(op.fd, op.addr, op.addr ? &len : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (n >= 0) op.addrlen = len;
            break;
        }
        case op_code::recv:
            n = ::recv(op.fd, op.buffer.data(), op.buffer.size(), MSG_DONTWAIT);
            break;
        case op_code::send:
            n = ::send(op.fd, op.buffer.data(), op.buffer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            break;
        case op_code::sendmsg:
            n = ::sendmsg(op.fd, op.msg, MSG_DONTWAIT | MSG_NOSIGNAL | send_more(*op.msg));
            break;
        case op_code::sendfile: n = sendfile_with_head(op); break;
        case op_code::connect: return perform_connect(op);
        case op_code::poll: return perform_poll(op);
        case op_code::timeout: op.result = -EINVAL; return true;        // the reactor's, never here
        case op_code::recv_provided: op.result = -EINVAL; return true;  // perform_provided()
        case op_code::recvmsg: n = ::recvmsg(op.fd, op.msg, MSG_DONTWAIT | MSG_TRUNC); break;
        }
        if (n < 0 && errno == EINTR) continue;
        return finish_or_park(op, n);
    }
}

std::size_t provided_size(const operation& op, const buffer_pool& pool) noexcept {
    return op.provided_max ? std::min(op.provided_max, pool.size()) : pool.size();
}

bool perform_provided(operation& op, buffer_pool& pool) noexcept {
    op.buffer_id = -1;
    int id = pool.take();
    if (id < 0) {
        op.result = -ENOBUFS;
        return true;
    }
    std::byte* into = pool.data(static_cast<std::uint16_t>(id));
    std::size_t want = provided_size(op, pool);
    for (;;) {
        long n = ::recv(op.fd, into, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) {
            op.result = static_cast<int>(n);
            op.buffer = {into, static_cast<std::size_t>(n)};
            op.buffer_id = id;
            return true;
        }
        pool.untake(static_cast<std::uint16_t>(id));  // nothing received: no block held
        return finish_or_park(op, n);
    }
}

}  // namespace coronet
