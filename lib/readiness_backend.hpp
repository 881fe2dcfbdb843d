#pragma once
// The half of a readiness backend that epoll and select share.
//
// Each fd has two FIFO lists of parked operations, readers and writers. start()
// tries the call at once (perform()) and parks it on EAGAIN; when the fd is
// reported ready the parked operations are retried in order until one would
// block again. Interest in an fd is simply "one of its lists is non-empty",
// which is asyncore's readable()/writable() with no user code.
//
// A receive that found the socket empty (a short read, or EAGAIN) marks its fd
// drained, and the next receive on it parks at once instead of spending a
// recv() that would only say EAGAIN; the mark goes when the fd is next
// reported readable (see start() for why no bytes can be missed).
//
// A provided receive that is ready when every block is out (a burst of readable
// connections beyond the pool: one epoll_wait reports up to 256, select every
// one) stays parked, starved, for the next wait() rather than failing with
// ENOBUFS at once: the coroutines resumed this turn give their blocks back as
// they consume them, and the caller's fallback (a buffer of its own per
// receive) costs an allocation and cold memory for every message. The next
// wait() retries the starved receives first, without blocking; one still
// without a block gets ENOBUFS only if no block came back since the last
// wait(), so a pool held by connections that never consume cannot stall them.
// Medusa ancestor: asyncore.poll()'s loop over socket_map.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <coronet/lib/backend.hpp>
#include <coronet/lib/buffer_pool.hpp>

namespace coronet {

class readiness_backend : public backend {
public:
    bool start(operation& op) override;
    bool cancel(operation& op) override;
    void forget(int fd, op_list& ended) noexcept override;

protected:
    // recv_provided takes blocks from pool's free stack, only when a recv finds
    // bytes; pool outlives the backend.
    explicit readiness_backend(buffer_pool& pool) noexcept : pool_(pool) {}

    // Two op_rings (lib/operation.hpp) and four flags: 24 bytes per descriptor.
    struct fd_state {
        op_ring readers;
        op_ring writers;
        bool watched = false;  // the subclass has registered this fd
        bool drained = false;  // a receive emptied the socket; not yet reported readable since
        bool ended = false;    // reported shut down or failed: the end stays to be read, so
                               // a short read no longer means "nothing to report"
        bool starved = false;  // a provided receive is ready to run but found no free block
    };

    // Registers fd with the readiness mechanism; returns 0 or a negative op result.
    virtual int watch(int fd, fd_state& state) = 0;

    // Why a connection just accepted on fd could never be watched (select:
    // fd >= FD_SETSIZE), or nullptr when it can. Such a connection is logged
    // (a warning, once per burst) and closed, and the accept goes on to the
    // next one: the operator learns why clients are dropped.
    virtual const char* refuses(int fd) const noexcept {
        (void)fd;
        return nullptr;
    }

    // Retries the parked operations of fd after it was reported ready. The
    // subclass calls it for every readiness event it gets, parked operations or
    // not: a readable report clears the fd's drained mark.
    void on_ready(int fd, bool readable, bool writable, op_list& done);

    // The peer shut down its side or the fd failed (epoll's EPOLLRDHUP, EPOLLHUP,
    // EPOLLERR): an edge-triggered backend reports that once, so from now on a
    // receive on fd never parks without trying. Call it before on_ready().
    void on_ended(int fd) noexcept;

    // Starts every wait(): retries the receives starved of a provided block
    // (see above) and returns how many finished. The wait must not block if
    // any did, or while starving() (a receive gets its answer next turn).
    std::size_t retry_starved(op_list& done);
    bool starving() const noexcept { return !starved_.empty(); }

    std::vector<fd_state> fds_;

private:
    bool attempt(operation& op, fd_state& st) noexcept;
    std::size_t retry(op_ring& parked, fd_state& st, op_list& done);
    bool starve(int fd, fd_state& st) noexcept;
    void refuse_accepted(int fd, const char* why) noexcept;

    buffer_pool& pool_;
    std::vector<int> starved_, starved_swap_;  // fds with a starved receive, in turn order
    std::uint64_t given_back_seen_ = 0;        // pool_.given_back() at the last retry_starved()
    bool may_starve_ = true;  // false while retrying after a turn that returned no block
    // Refused connections: the last warning, and how many were refused since.
    std::chrono::steady_clock::time_point refusal_logged_{};
    std::size_t refused_unlogged_ = 0;
    bool refusal_ever_logged_ = false;
};

}  // namespace coronet
