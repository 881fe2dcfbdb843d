#pragma once
// lingering_close(): end a connection so that its last reply survives.
//
// Closing a TCP socket with unread input makes the kernel send a reset, and a
// reset can destroy a reply the peer has not read yet (a 413 sent before the
// body it refuses). So: send what is queued (while the peer keeps reading; a
// whole `linger` without progress ends the wait), shut down the
// send side (the peer sees end of stream), read and drop whatever the peer
// still sends until it closes too or `linger` has passed, then close.
// Without a deadline to wait for (linger 0) it only closes after the queue.
// Medusa ancestor: none; Apache's lingering_close() and nginx's lingering_close.

#include <chrono>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/task.hpp>

namespace coronet {

// Flushes ch, shuts down its send side, drops input until end of stream; at most linger each.
task<void> lingering_close(channel& ch, std::chrono::milliseconds linger = std::chrono::seconds(2));

}  // namespace coronet
