#include <coronet/lib/select_backend.hpp>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/eventfd.h>
#include <sys/select.h>
#include <unistd.h>

#include <coronet/lib/error.hpp>

namespace coronet {

select_backend::select_backend(buffer_pool& pool) : readiness_backend(pool) {
    wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
    if (wakefd_ >= FD_SETSIZE) {
        ::close(wakefd_);
        throw std::system_error(make_error_code(errc::fd_exceeds_fd_setsize), "select backend");
    }
}

select_backend::~select_backend() { ::close(wakefd_); }

int select_backend::watch(int fd, fd_state&) {
    return fd < FD_SETSIZE ? 0 : result_of(errc::fd_exceeds_fd_setsize);
}

static_assert(FD_SETSIZE == 1024, "refuses() names 1024");

const char* select_backend::refuses(int fd) const noexcept {
    return fd < FD_SETSIZE ? nullptr
                           : "its descriptor is >= FD_SETSIZE (1024), which select() cannot watch; "
                             "use --backend epoll or io_uring for more connections";
}

void select_backend::wait(std::chrono::nanoseconds timeout, op_list& done) {
    std::size_t served = retry_starved(done);
    if (served > 0 || starving()) timeout = std::chrono::nanoseconds(0);
    // The starved receives are on fds the last select() found readable, and
    // still are (nothing read them): while blocks keep coming back, serve
    // them without a new select(), whose cost grows with every watched fd
    // (a burst of 500 readable fds takes 8 turns of 64 blocks). Bounded, so
    // the other fds are looked at again within a few turns.
    if (served > 0 && starving() && turns_without_select_ < max_turns_without_select) {
        ++turns_without_select_;
        return;
    }
    turns_without_select_ = 0;
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(wakefd_, &rd);
    int maxfd = wakefd_;
    // Only fds that passed watch() (< FD_SETSIZE) can have parked operations.
    for (int fd = 0, n = static_cast<int>(fds_.size()); fd < n; ++fd) {
        const fd_state& st = fds_[fd];
        if (!st.readers.empty()) FD_SET(fd, &rd);
        if (!st.writers.empty()) FD_SET(fd, &wr);
        if ((!st.readers.empty() || !st.writers.empty()) && fd > maxfd) maxfd = fd;
    }
    long long us = (timeout.count() + 999) / 1000;  // round up: never wake before a deadline
    timeval tv{.tv_sec = static_cast<time_t>(us / 1'000'000),
               .tv_usec = static_cast<suseconds_t>(us % 1'000'000)};
    int n = ::select(maxfd + 1, &rd, &wr, nullptr, timeout.count() < 0 ? nullptr : &tv);
    if (n <= 0) return;  // timeout, or EINTR: the reactor simply turns again
    if (FD_ISSET(wakefd_, &rd)) {
        std::uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wakefd_, &v, sizeof v);
    }
    for (int fd = 0; fd <= maxfd; ++fd) {
        if (fd == wakefd_) continue;
        bool r = FD_ISSET(fd, &rd), w = FD_ISSET(fd, &wr);
        if (r || w) on_ready(fd, r, w, done);
    }
}

void select_backend::wake() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wakefd_, &one, sizeof one);
}

}  // namespace coronet
