#pragma once
// accept_queue: connections a listening socket has accepted ahead of accept().
//
// On io_uring a listener keeps one multishot accept armed (IORING_OP_ACCEPT with
// IORING_ACCEPT_MULTISHOT): the kernel accepts every connection as it arrives
// and posts one CQE for each (IORING_CQE_F_MORE while it stays armed), or one
// for the error that ends it (EMFILE...). The backend hands each result to the
// oldest accept() waiting, else appends it here for the next one; the next
// accept() that finds the queue empty arms it again. The listening socket owns
// the queue and closes the descriptors left in it when it closes. The readiness
// backends ignore it: they call accept4() once per accept().
// Medusa ancestor: asyncore.dispatcher.handle_accept, called once per connection.

#include <cstddef>
#include <deque>

#include <coronet/lib/operation.hpp>

namespace coronet {

struct accept_queue {
    // Past this many queued results the backend cancels the multishot accept
    // (the rest wait in the kernel's backlog). The queue may go past it by what
    // the kernel accepted before the cancel took effect, which the listen
    // backlog bounds.
    static constexpr std::size_t soft_limit = 64;

    operation arm;            // the multishot accept while armed (the reactor does not count it)
    op_list waiters;          // accept() calls waiting for a connection, oldest first
    std::deque<int> ready;    // accepted descriptors (>= 0) and errors (-errno), oldest first
    bool cancelling = false;  // a cancel of `arm` is on its way
    bool queued = false;      // `arm` waits in the backend's list of things to (re)submit
    bool held = false;        // the front descriptor waits for one below RLIMIT_NOFILE
};

}  // namespace coronet
