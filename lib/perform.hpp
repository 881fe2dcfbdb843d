#pragma once
// perform(): one non-blocking attempt at an operation's system call.
//
// Shared by the readiness backends (epoll, select): they differ only in how
// they learn that an fd is ready, not in what they do then. Returns true when
// the operation finished (op.result set, -errno on failure) and false when it
// would block (EAGAIN): park it on its fd and try again when ready.
// Medusa ancestor: asyncore.dispatcher.recv()/send() and their EWOULDBLOCK
// handling.

#include <coronet/lib/buffer_pool.hpp>
#include <coronet/lib/operation.hpp>

namespace coronet {

// Tries op's system call once (retrying EINTR); false means "would block".
bool perform(operation& op) noexcept;

// recv_provided: takes a block from pool's free stack and receives into it;
// false (the block back on the stack) when it would block. -ENOBUFS when no
// block is free.
bool perform_provided(operation& op, buffer_pool& pool) noexcept;

// How many bytes perform_provided() asks recv() for: op.provided_max, at most a block.
std::size_t provided_size(const operation& op, const buffer_pool& pool) noexcept;

// The flag a sendmsg asks for beyond MSG_NOSIGNAL: MSG_MORE, carried in its msghdr's
// msg_flags, which a send never reads (socket::sendv sets it; every backend passes it on).
inline int send_more(const msghdr& m) noexcept { return m.msg_flags & MSG_MORE; }

// True when op waits for readability (accept, recv, poll POLLIN), false for writability.
bool wants_read(const operation& op) noexcept;

}  // namespace coronet
