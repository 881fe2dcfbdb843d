#pragma once
// The epoll backend: readiness, edge-triggered, one epoll_ctl per fd lifetime.
//
// An fd is registered (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) the first time
// an operation parks on it and stays registered until it is closed, so steady
// state costs one epoll_wait per loop turn and no epoll_ctl. An eventfd makes
// wake() work from any thread.
// Medusa ancestor: asyncore.poll2() (poll instead of select).

#include <coronet/lib/readiness_backend.hpp>

namespace coronet {

class epoll_backend final : public readiness_backend {
public:
    // recv_provided receives into pool's blocks (pool outlives the backend).
    // Throws std::system_error when epoll_create1 or eventfd fails.
    explicit epoll_backend(buffer_pool& pool);
    ~epoll_backend() override;
    epoll_backend(const epoll_backend&) = delete;
    epoll_backend& operator=(const epoll_backend&) = delete;

    std::string_view name() const noexcept override { return "epoll"; }
    void wait(std::chrono::nanoseconds timeout, op_list& done) override;
    void wake() noexcept override;

private:
    int watch(int fd, fd_state& state) override;

    int epfd_ = -1;
    int wakefd_ = -1;
    bool has_pwait2_ = true;  // epoll_pwait2 (ns timeouts) until the kernel says ENOSYS
};

}  // namespace coronet
