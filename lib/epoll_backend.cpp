#include <coronet/lib/epoll_backend.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace coronet {

epoll_backend::epoll_backend(buffer_pool& pool) : readiness_backend(pool) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
    wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) {
        int err = errno;
        ::close(epfd_);
        throw std::system_error(err, std::system_category(), "eventfd");
    }
    epoll_event ev{.events = EPOLLIN, .data = {.fd = wakefd_}};
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

epoll_backend::~epoll_backend() {
    ::close(wakefd_);
    ::close(epfd_);
}

int epoll_backend::watch(int fd, fd_state&) {
    epoll_event ev{.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data = {.fd = fd}};
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
    if (errno == EEXIST) return 0;  // registered before a forget() we did not see
    return -errno;
}

void epoll_backend::wait(std::chrono::nanoseconds timeout, op_list& done) {
    if (retry_starved(done) > 0 || starving()) timeout = std::chrono::nanoseconds(0);
    std::array<epoll_event, 256> events;
    int n = -1;
    if (has_pwait2_) {
        timespec ts{.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000),
                    .tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000)};
        n = ::epoll_pwait2(epfd_, events.data(), static_cast<int>(events.size()),
                           timeout.count() < 0 ? nullptr : &ts, nullptr);
        if (n < 0 && errno == ENOSYS) has_pwait2_ = false;  // kernel < 5.11 (or valgrind)
    }
    if (!has_pwait2_) {
        // Milliseconds, rounded up: never wake before a deadline.
        long long ms = timeout.count() < 0 ? -1 : (timeout.count() + 999'999) / 1'000'000;
        n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()),
                         static_cast<int>(std::min<long long>(ms, 1'000'000'000)));
    }
    for (int i = 0; i < n; ++i) {
        const epoll_event& ev = events[i];
        if (ev.data.fd == wakefd_) {
            std::uint64_t v;
            [[maybe_unused]] ssize_t r = ::read(wakefd_, &v, sizeof v);
            continue;
        }
        // Every event goes to on_ready(), parked operations or not: an edge
        // is reported once, and it is what clears the fd's drained mark.
        bool failed = (ev.events & (EPOLLERR | EPOLLHUP)) != 0;
        if (failed || (ev.events & EPOLLRDHUP)) on_ended(ev.data.fd);
        on_ready(ev.data.fd, failed || (ev.events & (EPOLLIN | EPOLLRDHUP)),
                 failed || (ev.events & EPOLLOUT), done);
    }
}

void epoll_backend::wake() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wakefd_, &one, sizeof one);
}

}  // namespace coronet
