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
//
// When the caller knows the peer sends nothing more (peer_input::ended: an HTTP
// request that asked to close, read whole with nothing after it), the wait for
// the peer's end is skipped: flush as above, then close at once (TLS: our
// close_notify first), as nginx does. The tradeoff: should the peer send after
// all, its bytes arrive at a closed socket and the kernel answers with a reset,
// which can destroy the reply if the peer has not read it yet. So it is for
// when the protocol forbids more input (RFC 9112 9.6: a client that sent
// "close" sends no further request), never for pipelined bytes, an unread
// body or an error reply.
// Medusa ancestor: none; Apache's lingering_close() and nginx's lingering_close.

#include <chrono>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/task.hpp>

namespace coronet {

// What the peer may still send when the connection ends.
enum class peer_input : unsigned char {
    unknown,  // it may send more: wait for its end (up to linger) so no reset hits the reply
    ended,    // it sends nothing more: close once the queue has gone, without waiting
};

// Flushes ch, shuts down its send side, drops input until end of stream; at most linger each.
// With peer_input::ended: flushes (as long), then closes without waiting for the peer.
task<void> lingering_close(channel& ch, std::chrono::milliseconds linger = std::chrono::seconds(2),
                           peer_input input = peer_input::unknown);

}  // namespace coronet
