#pragma once
// transport: the byte stream under a channel — a plain socket, TLS, or an
// in-memory pipe.
//
// A channel speaks asynchat's semantics over a transport. The plain socket is
// the fast path and needs no transport object at all (the channel drives the
// socket's operations itself: gathered sends, sendfile, the multishot
// receive). Anything else implements this interface: it takes the channel's
// receive and send operations, performs them however it must (decrypting,
// copying from a test's script), and ends each one exactly once through its
// reactor (reactor::hold, then reactor::finish), so deadlines, with_timeout
// and abandoning work on every transport as they do on a socket.
// Medusa ancestor: the socket object under asyncore.dispatcher, made pluggable.

#include <cstddef>
#include <span>
#include <string>
#include <system_error>

#include <sys/uio.h>

#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/operation.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

class socket;

class transport : public op_performer {
public:
    virtual ~transport() = default;

    // The reactor whose thread performs this transport's operations.
    virtual reactor& context() const noexcept = 0;
    // Receives into op.buffer (op.code == recv). True: finished now, op.result
    // set (bytes; 0 at end of stream; < 0 an error). Else held until it finishes.
    virtual bool start_recv(operation& op) = 0;
    // Sends the iovecs of op.msg (op.code == sendmsg), the same way; op.result
    // is the bytes taken, maybe fewer than offered.
    virtual bool start_send(operation& op) = 0;
    // What a result of result_of(errc::transport_failed) stands for (a TLS
    // alert, a failed verification), else empty.
    virtual std::error_code error() const noexcept { return {}; }
    // Ends this side's output: the peer sees end of stream (TLS: close_notify),
    // without waiting for anything. Reading may go on.
    virtual void shutdown_send() noexcept = 0;
    // Aborts the connection: held operations finish now with what they have.
    virtual void close() noexcept = 0;
    // A hint: the owner closes (or shuts down the send side) once what it sends from now
    // on has gone, and the peer sends nothing more. A transport may then let the kernel
    // hold its last bytes back (MSG_MORE) so that its own end leaves in the same segment
    // (TLS: the reply and close_notify); shutdown_send() and close() release them.
    virtual void closing_after_output() noexcept {}
    // The socket underneath, if there is one (nullptr for an in-memory pipe).
    virtual socket* underlying_socket() noexcept { return nullptr; }
    // How logs name the other end ("127.0.0.1:5000", "memory").
    virtual std::string peer_name() const = 0;
};

// co_await: bytes a transport received into buffer, 0 at end of stream; throws
// std::system_error on errors (a truncated TLS stream among them).
class [[nodiscard]] transport_recv_awaiter : public op_awaiter {
public:
    transport_recv_awaiter(transport& t, std::span<std::byte> buffer) noexcept
        : op_awaiter(t.context()), via_(t) {
        op_.code = op_code::recv;
        op_.buffer = buffer;
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        return !via_.start_recv(op_);
    }
    std::size_t await_resume() {
        int n = finish();
        if (n == result_of(errc::transport_failed) && via_.error())
            throw std::system_error(via_.error(), "recv");
        return static_cast<std::size_t>(throw_if_error(n, "recv"));
    }

private:
    transport& via_;
};

// co_await: bytes a transport took from the gathered buffers (maybe fewer than
// all of them); throws std::system_error on errors. The iovecs must outlive it.
class [[nodiscard]] transport_send_awaiter : public op_awaiter {
public:
    transport_send_awaiter(transport& t, std::span<const iovec> iov) noexcept
        : op_awaiter(t.context()), via_(t) {
        msg_.msg_iov = const_cast<iovec*>(iov.data());
        msg_.msg_iovlen = iov.size();
        op_.code = op_code::sendmsg;
        op_.msg = &msg_;
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        return !via_.start_send(op_);
    }
    std::size_t await_resume() {
        int n = finish();
        if (n == result_of(errc::transport_failed) && via_.error())
            throw std::system_error(via_.error(), "send");
        return static_cast<std::size_t>(throw_if_error(n, "send"));
    }

private:
    transport& via_;
    msghdr msg_{};
};

}  // namespace coronet
