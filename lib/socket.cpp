#include <coronet/lib/socket.hpp>

#include <cerrno>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace coronet {
namespace {

[[noreturn]] void throw_errno(const char* what) {
    throw std::system_error(errno, std::system_category(), what);
}

int new_socket(int family) {
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    return fd;
}

bool is_tcp(int family) { return family == AF_INET || family == AF_INET6; }

// A unix: path already exists. A socket file nobody answers on (an earlier run
// that died) is removed: true, bind again. A server still answering a connect
// is refused with EADDRINUSE naming the path, and so is anything that is not
// a socket: a second instance must not take a live server's socket.
bool remove_stale_unix_socket(const address& addr) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(addr.data());
    if (un->sun_path[0] == '\0') return false;  // abstract: the kernel frees it with its socket
    auto in_use = [&](const std::string& why) {
        return std::system_error(EADDRINUSE, std::system_category(),
                                 "listen " + addr.to_string() + ": " + why);
    };
    struct stat st {};
    if (::lstat(un->sun_path, &st) < 0) return errno == ENOENT;  // gone meanwhile: bind again
    if (!S_ISSOCK(st.st_mode)) throw in_use("the path exists and is not a socket");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) throw_errno("socket");
    int rc = ::connect(probe, addr.data(), addr.size());
    int err = rc < 0 ? errno : 0;
    ::close(probe);
    // EAGAIN: a listener whose backlog is full is still a listener.
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
        throw in_use("a server is still listening there (remove the file if it is not yours)");
    if (err != ECONNREFUSED && err != ENOENT) return false;  // say what bind said
    if (::unlink(un->sun_path) < 0 && errno != ENOENT) throw_errno("unlink stale unix socket");
    return true;
}

}  // namespace

socket::socket(reactor& r, int fd, const char* kind) : socket(r, fd, already_nonblocking, kind) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

socket::socket(reactor& r, int fd, already_nonblocking_t, const char* kind)
    : reactor_(&r), kind_(kind), fd_(fd) {
    r.add_channel(fd, kind_);
}

void socket::close() noexcept {
    if (fd_ < 0) return;
    reactor_->remove_channel(fd_, kind_);
    if (acceptor_) {  // stop accepting ahead, close what was accepted and never taken
        reactor_->close_acceptor(*acceptor_);
        acceptor_.reset();
    }
    // (this backend hook must come first: the fd number is free again after close)
    reactor_->backend_forget(fd_);
    ::close(fd_);
    fd_ = -1;
}

void socket::shutdown_send() noexcept {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

socket socket::listen(reactor& r, const address& addr, listen_options options) {
    int fd = new_socket(addr.family());
    socket s(r, fd, "listener");
    int one = 1;
    if (options.reuse_addr && is_tcp(addr.family()))
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (options.reuse_port && is_tcp(addr.family()) &&
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        throw_errno("setsockopt(SO_REUSEPORT)");
    if (options.nodelay && is_tcp(addr.family()) &&
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        throw_errno("setsockopt(TCP_NODELAY)");
    if (::bind(fd, addr.data(), addr.size()) < 0) {
        int err = errno;
        if (err == EADDRINUSE && addr.family() == AF_UNIX && remove_stale_unix_socket(addr))
            err = ::bind(fd, addr.data(), addr.size()) < 0 ? errno : 0;
        if (err) throw std::system_error(err, std::system_category(), "bind " + addr.to_string());
    }
    if (::listen(fd, options.backlog) < 0) throw_errno("listen");
    return s;
}

std::pair<socket, socket> socket::pair(reactor& r) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        throw_errno("socketpair");
    return {socket(r, fds[0], already_nonblocking), socket(r, fds[1], already_nonblocking)};
}

poll_awaiter socket::wait_readable() noexcept { return {*reactor_, fd_, POLLIN}; }
poll_awaiter socket::wait_writable() noexcept { return {*reactor_, fd_, POLLOUT}; }

void socket::set_nodelay(bool enabled) {
    int v = enabled ? 1 : 0;
    if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) < 0)
        throw_errno("setsockopt(TCP_NODELAY)");
}

void socket::set_send_buffer(int bytes) {
    if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) < 0)
        throw_errno("setsockopt(SO_SNDBUF)");
}

void socket::set_receive_buffer(int bytes) {
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0)
        throw_errno("setsockopt(SO_RCVBUF)");
}

address socket::local_address() const {
    address a;
    socklen_t len = address::capacity();
    if (::getsockname(fd_, a.data(), &len) < 0) throw_errno("getsockname");
    a.resize(len);
    return a;
}

address socket::peer_address() const {
    address a;
    socklen_t len = address::capacity();
    if (::getpeername(fd_, a.data(), &len) < 0) throw_errno("getpeername");
    a.resize(len);
    return a;
}

accept_awaiter socket::accept() {
    if (!acceptor_ && reactor_->kind() == backend_kind::io_uring)
        acceptor_ = std::make_unique<accept_queue>();
    return {*reactor_, fd_, acceptor_.get()};
}

accept_awaiter::accept_awaiter(reactor& r, int fd, accept_queue* q) noexcept : op_awaiter(r) {
    op_.code = op_code::accept;
    op_.fd = fd;
    op_.acceptor = q;
    op_.addr = peer_.data();
    op_.addrlen = address::capacity();
}

socket accept_awaiter::await_resume() {
    int fd = throw_if_error(finish(), "accept");
    // Every backend accepts with SOCK_NONBLOCK (an F_DUPFD copy shares the flag).
    return socket(reactor_, fd, already_nonblocking, "connection");
}

connect_awaiter::connect_awaiter(reactor& r, const address& to, connect_options options)
    : op_awaiter(r), to_(to), options_(options) {
    fd_ = new_socket(to_.family());
    op_.code = op_code::connect;
    op_.fd = fd_;
    op_.addr = to_.data();
    op_.addrlen = to_.size();
}

connect_awaiter::~connect_awaiter() {
    reactor_.abandon(op_);  // before the fd goes: the kernel may still use it
    if (fd_ >= 0) {
        reactor_.backend_forget(fd_);
        ::close(fd_);
    }
}

socket connect_awaiter::await_resume() {
    int rc = finish();
    throw_if_error(rc, ("connect " + to_.to_string()).c_str());
    socket s(reactor_, std::exchange(fd_, -1), already_nonblocking, "client");  // new_socket()'s
    if (options_.nodelay && is_tcp(to_.family())) s.set_nodelay(true);
    return s;
}

}  // namespace coronet
