#include <coronet/lib/datagram_socket.hpp>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <unistd.h>

namespace coronet {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::system_category(), what);
}

}  // namespace

recv_from_awaiter::recv_from_awaiter(reactor& r, int fd, std::span<std::byte> buffer,
                                     datagram_queue* q) noexcept
    : op_awaiter(r), buffer_(buffer) {
    iov_ = {.iov_base = buffer.data(), .iov_len = buffer.size()};
    msg_.msg_name = from_.data();
    msg_.msg_namelen = address::capacity();
    msg_.msg_iov = &iov_;
    msg_.msg_iovlen = 1;
    op_.code = op_code::recvmsg;
    op_.fd = fd;
    op_.msg = &msg_;
    op_.datagrams = q;
}

datagram recv_from_awaiter::await_resume() {
    // recvmsg with MSG_TRUNC returns the datagram's real length, on every backend.
    auto n = static_cast<std::size_t>(throw_if_error(finish(), "recvmsg"));
    from_.resize(msg_.msg_namelen);
    return {.size = std::min(n, buffer_.size()),
            .truncated = n > buffer_.size() || (msg_.msg_flags & MSG_TRUNC) != 0,
            .full_size = n,
            .from = from_};
}

send_to_awaiter::send_to_awaiter(reactor& r, int fd, std::span<const std::byte> data,
                                 const address* to) noexcept
    : op_awaiter(r) {
    iov_ = {.iov_base = const_cast<std::byte*>(data.data()),
            .iov_len = data.size()};  // never written
    if (to) {
        to_ = *to;
        msg_.msg_name = to_.data();
        msg_.msg_namelen = to_.size();
    }
    msg_.msg_iov = &iov_;
    msg_.msg_iovlen = 1;
    op_.code = op_code::sendmsg;
    op_.fd = fd;
    op_.msg = &msg_;
}

void detail::close_datagrams(reactor& r, datagram_queue& q) noexcept {
    r.backend_->close_datagrams(q);
}

datagram_socket::datagram_socket(reactor& r, int fd, int family, const datagram_options& options)
    : reactor_(&r), fd_(fd) {
    // Only io_uring serves a queue; a Unix-domain datagram may be longer than a block.
    if (options.multishot_recv && options.receive_queue > 0 && r.kind() == backend_kind::io_uring &&
        (family == AF_INET || family == AF_INET6))
        rxq_ = std::make_unique<datagram_queue>(options.receive_queue);
    r.add_channel(fd, "datagram");
}

datagram_socket datagram_socket::open(reactor& r, int family, datagram_options options) {
    int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    try {
        return datagram_socket(r, fd, family, options);
    } catch (...) {
        ::close(fd);
        throw;
    }
}

datagram_socket datagram_socket::bind(reactor& r, const address& addr, datagram_options options) {
    datagram_socket s = open(r, addr.family(), options);
    if (::bind(s.fd_, addr.data(), addr.size()) < 0) throw_errno("bind " + addr.to_string());
    return s;
}

void datagram_socket::connect(const address& to) {
    if (::connect(fd_, to.data(), to.size()) < 0) throw_errno("connect " + to.to_string());
}

void datagram_socket::close() noexcept {
    if (fd_ < 0) return;
    if (rxq_) {  // before the descriptor closes: the armed receive holds it in the kernel
        detail::close_datagrams(*reactor_, *rxq_);
        rxq_.reset();
    }
    reactor_->remove_channel(fd_, "datagram");
    reactor_->backend_forget(fd_);  // before close: the fd number is free again after it
    ::close(fd_);
    fd_ = -1;
}

void datagram_socket::set_receive_buffer(int bytes) {
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0)
        throw_errno("setsockopt(SO_RCVBUF)");
}

void datagram_socket::set_send_buffer(int bytes) {
    if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) < 0)
        throw_errno("setsockopt(SO_SNDBUF)");
}

address datagram_socket::local_address() const {
    address a;
    socklen_t len = address::capacity();
    if (::getsockname(fd_, a.data(), &len) < 0) throw_errno("getsockname");
    a.resize(len);
    return a;
}

}  // namespace coronet
