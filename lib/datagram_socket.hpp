#pragma once
// coronet::datagram_socket: a non-blocking UDP socket owned by one reactor.
//
// Every datagram is one message: send_to() sends one, recv_from() receives one
// whole (boundaries kept) with its sender's address, and says when it was
// longer than the buffer (the rest is lost, as with recvfrom: `truncated`).
// connect() only names the default peer (no handshake); on a connected socket
// the ICMP "port unreachable" a send provokes comes back as ECONNREFUSED from
// a later receive or send. Works on every backend: receives are recvmsg
// operations, which the readiness backends never treat as a stream's. On
// io_uring (kernel 6.0+) an IPv4/IPv6 socket keeps one multishot recvmsg armed
// into a buffer ring of its own, which takes up to datagram_options::receive_queue
// datagrams ahead of recv_from() (lib/datagram_queue.hpp); the results are the same.
// Medusa ancestor: asyncore.dispatcher with create_socket(AF_INET, SOCK_DGRAM).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include <sys/socket.h>
#include <sys/uio.h>

#include <coronet/lib/address.hpp>
#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/datagram_queue.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

// One datagram received: how many bytes landed in the buffer, and from whom.
struct datagram {
    std::size_t size = 0;       // bytes in the buffer (0 is a valid, empty datagram)
    bool truncated = false;     // the datagram was longer than the buffer; the rest was dropped
    std::size_t full_size = 0;  // the datagram's length as sent
    address from;               // the sender
};

// co_await: the next datagram; throws std::system_error (ECONNREFUSED, ...).
class [[nodiscard]] recv_from_awaiter : public op_awaiter {
public:
    // q: the socket's multishot queue (io_uring), or nullptr.
    recv_from_awaiter(reactor& r, int fd, std::span<std::byte> buffer, datagram_queue* q) noexcept;
    datagram await_resume();

private:
    std::span<std::byte> buffer_;
    iovec iov_{};
    msghdr msg_{};
    address from_;
};

// co_await: bytes sent (the whole datagram); throws std::system_error.
class [[nodiscard]] send_to_awaiter : public op_awaiter {
public:
    // to == nullptr: the connected peer.
    send_to_awaiter(reactor& r, int fd, std::span<const std::byte> data,
                    const address* to) noexcept;
    std::size_t await_resume() {
        return static_cast<std::size_t>(throw_if_error(finish(), "sendmsg"));
    }

private:
    iovec iov_{};
    msghdr msg_{};
    address to_;
};

// How a datagram socket receives.
struct datagram_options {
    // io_uring (kernel 6.0+), IPv4 and IPv6: keep one multishot recvmsg armed that
    // takes datagrams ahead of recv_from() into the socket's own buffer ring;
    // false: one recvmsg per recv_from(), as on epoll and select.
    bool multishot_recv = true;
    // ... taking at most this many ahead (68 KiB of address space each, resident
    // only where datagrams were written; at most 4096). Past it the datagrams wait
    // in the socket's receive buffer (SO_RCVBUF), which drops what does not fit.
    unsigned receive_queue = 32;
};

class datagram_socket {
public:
    datagram_socket() noexcept = default;
    ~datagram_socket() { close(); }
    datagram_socket(datagram_socket&& o) noexcept
        : reactor_(std::exchange(o.reactor_, nullptr)),
          fd_(std::exchange(o.fd_, -1)),
          rxq_(std::move(o.rxq_)) {}
    datagram_socket& operator=(datagram_socket&& o) noexcept {
        if (this != &o) {
            close();
            reactor_ = std::exchange(o.reactor_, nullptr);
            fd_ = std::exchange(o.fd_, -1);
            rxq_ = std::move(o.rxq_);
        }
        return *this;
    }

    // A socket bound to addr (port 0 picks a free port: see local_address()).
    [[nodiscard]] static datagram_socket bind(reactor& r, const address& addr,
                                              datagram_options options = {});
    // An unbound socket of family (AF_INET or AF_INET6); the first send binds it.
    [[nodiscard]] static datagram_socket open(reactor& r, int family,
                                              datagram_options options = {});

    // Makes to the default peer: send() goes there, and only its datagrams are received.
    void connect(const address& to);
    // Sends data as one datagram to `to`.
    send_to_awaiter send_to(std::span<const std::byte> data, const address& to) noexcept {
        return {*reactor_, fd_, data, &to};
    }
    send_to_awaiter send_to(std::string_view data, const address& to) noexcept {
        return send_to(std::as_bytes(std::span(data)), to);
    }
    // Sends data as one datagram to the connected peer.
    send_to_awaiter send(std::span<const std::byte> data) noexcept {
        return {*reactor_, fd_, data, nullptr};
    }
    send_to_awaiter send(std::string_view data) noexcept {
        return send(std::as_bytes(std::span(data)));
    }
    // Receives one datagram into buffer, with its sender.
    recv_from_awaiter recv_from(std::span<std::byte> buffer) noexcept {
        return {*reactor_, fd_, buffer, rxq_.get()};
    }

    // Closes now (idempotent). No operation may be pending on it. A multishot
    // receive is cancelled first, and waited for until the kernel has let go of
    // the socket's buffer ring.
    void close() noexcept;
    // SO_RCVBUF / SO_SNDBUF, in bytes.
    void set_receive_buffer(int bytes);
    void set_send_buffer(int bytes);

    address local_address() const;
    int native_handle() const noexcept { return fd_; }
    reactor& context() const noexcept { return *reactor_; }
    bool is_open() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    // io_uring's multishot receive: how many times it was armed (0: every receive
    // was a plain recvmsg; one arm serves many datagrams), and the datagrams it has
    // taken that wait for recv_from().
    std::uint32_t multishot_arms() const noexcept { return rxq_ ? rxq_->arms : 0; }
    std::size_t queued() const noexcept { return rxq_ ? rxq_->size() : 0; }

private:
    datagram_socket(reactor& r, int fd, int family, const datagram_options& options);
    reactor* reactor_ = nullptr;
    int fd_ = -1;
    std::unique_ptr<datagram_queue>
        rxq_;  // io_uring: the multishot queue (the kernel holds its address)
};

}  // namespace coronet
