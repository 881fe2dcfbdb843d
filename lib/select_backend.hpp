#pragma once
// The select() backend: the seed's own mechanism, for systems with nothing else.
//
// Each wait() builds the read and write fd_sets from the fds whose waiter
// lists are non-empty (asyncore.poll() rebuilding r, w from socket_map). An fd
// >= FD_SETSIZE cannot be put in an fd_set: parking an operation on one
// finishes it with coronet::errc::fd_exceeds_fd_setsize, never FD_SET out of
// bounds. An eventfd in the read set makes wake() work from any thread.
// Medusa ancestor: asyncore.poll().

#include <coronet/lib/readiness_backend.hpp>

namespace coronet {

class select_backend final : public readiness_backend {
public:
    // recv_provided receives into pool's blocks (pool outlives the backend).
    // Throws std::system_error when eventfd fails.
    explicit select_backend(buffer_pool& pool);
    ~select_backend() override;
    select_backend(const select_backend&) = delete;
    select_backend& operator=(const select_backend&) = delete;

    std::string_view name() const noexcept override { return "select"; }
    void wait(std::chrono::nanoseconds timeout, op_list& done) override;
    void wake() noexcept override;

private:
    int watch(int fd, fd_state& state) override;
    const char* refuses(int fd) const noexcept override;

    static constexpr int max_turns_without_select = 8;
    int wakefd_ = -1;
    int turns_without_select_ = 0;  // turns served from starved receives alone
};

}  // namespace coronet
