#include "tests/support/tcp_client.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace coronet::testing {
namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

int ms_left(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
    return left > 0 ? int(std::min<long long>(left, INT_MAX)) : 0;
}

[[noreturn]] void throw_error(int error, const std::string& what) {
    throw std::system_error(error, std::generic_category(), what);
}

}  // namespace

sockaddr_in loopback(unsigned port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int listen_tcp(unsigned& port, int backlog) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_error(errno, "listen_tcp: socket");
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd, backlog) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        int error = errno;
        ::close(fd);
        throw_error(error, "listen_tcp: bind/listen on 127.0.0.1");
    }
    port = ntohs(a.sin_port);
    return fd;
}

bool wait_until_accepting(unsigned port, milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(port);
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok) return true;
        if (steady::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

tcp_client::tcp_client(unsigned port, const client_options& options)
    : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
    if (fd_ < 0) throw_error(errno, "tcp_client: socket");
    const std::string where = "tcp_client: connect to 127.0.0.1:" + std::to_string(port);
    if (options.receive_buffer > 0 &&
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer,
                     sizeof options.receive_buffer) != 0) {
        int error = errno;
        close();
        throw_error(error, "tcp_client: SO_RCVBUF");
    }
    sockaddr_in a = loopback(port);
    int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    int error = rc == 0 ? 0 : errno;
    if (error == EINPROGRESS) {
        pollfd p{fd_, POLLOUT, 0};
        int ready = ::poll(&p, 1, int(options.connect_timeout.count()));
        socklen_t len = sizeof error;
        if (ready <= 0)
            error = ETIMEDOUT;
        else
            ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
    }
    if (error != 0) {
        close();
        throw_error(error, where);
    }
}

tcp_client::tcp_client(tcp_client&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), in_(std::move(o.in_)), eof_(o.eof_), received_(o.received_) {}

tcp_client& tcp_client::operator=(tcp_client&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(in_, o.in_);
    std::swap(eof_, o.eof_);
    std::swap(received_, o.received_);
    return *this;
}

void tcp_client::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

std::size_t tcp_client::try_send(std::string_view data, milliseconds timeout) {
    std::size_t sent = 0;
    auto deadline = steady::now() + timeout;
    while (sent < data.size()) {
        ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += std::size_t(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) break;
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, ms_left(deadline)) <= 0) break;
    }
    return sent;
}

void tcp_client::send(std::string_view data, milliseconds timeout) {
    std::size_t sent = try_send(data, timeout);
    if (sent != data.size())
        throw std::runtime_error("tcp_client::send: " + std::to_string(sent) + " of " +
                                 std::to_string(data.size()) + " bytes sent in " +
                                 std::to_string(timeout.count()) + " ms");
}

bool tcp_client::read_some(milliseconds timeout) {
    if (eof_) return false;
    auto deadline = steady::now() + timeout;
    for (;;) {
        char buf[65536];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n > 0) {
            in_.append(buf, std::size_t(n));
            received_ += std::size_t(n);
            return true;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || errno != EAGAIN) {
            eof_ = true;  // closed (or reset)
            return false;
        }
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, ms_left(deadline)) <= 0) return false;
    }
}

bool tcp_client::fill(std::size_t size, milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    while (in_.size() < size && read_some(milliseconds(ms_left(deadline)))) {
    }
    return in_.size() >= size;
}

bool tcp_client::closed_by_peer(milliseconds timeout) {
    std::size_t before = in_.size();
    fill(SIZE_MAX, timeout);
    return eof_ && in_.size() == before;
}

bool tcp_client::reaches_end(milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    in_.clear();
    while (!eof_ && steady::now() < deadline) {
        read_some(milliseconds(ms_left(deadline)));
        in_.clear();
    }
    return eof_;
}

std::optional<std::string> tcp_client::line(milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        if (auto nl = in_.find('\n'); nl != std::string::npos) {
            std::string l = in_.substr(0, nl);
            in_.erase(0, nl + 1);
            if (l.ends_with('\r')) l.pop_back();
            return l;
        }
        if (!read_some(milliseconds(ms_left(deadline)))) return std::nullopt;
    }
}

std::string tcp_client::round_trip(std::string_view data, milliseconds timeout) {
    std::size_t sent = 0, start = in_.size();
    auto deadline = steady::now() + timeout;
    while (in_.size() - start < data.size() && !eof_ && steady::now() < deadline) {
        pollfd p{fd_, short(POLLIN | (sent < data.size() ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, ms_left(deadline)) <= 0) break;
        if (sent < data.size() && (p.revents & POLLOUT)) {
            ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n > 0) sent += std::size_t(n);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_some(milliseconds(0));
    }
    std::string back = in_.substr(start);
    in_.resize(start);
    return back;
}

}  // namespace coronet::testing
