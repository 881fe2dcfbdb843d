#pragma once
// Socket helpers built from the lib/ awaiters: whole-buffer sends and reads.
//
// send_all() loops over short sends until every byte is out (asyncore's
// handle_write trimming its buffer); recv_exactly() loops until the buffer is
// full or the peer closes. Medusa ancestor: the buffered-output http_client
// of the seed tutorial.

#include <cstddef>
#include <span>
#include <string_view>

#include <coronet/coro/task.hpp>
#include <coronet/lib/socket.hpp>

namespace coronet {

// Sends every byte of data (throws std::system_error if the peer goes away).
task<void> send_all(socket& s, std::span<const std::byte> data);
task<void> send_all(socket& s, std::string_view data);

// Fills buffer; returns the bytes read, fewer only when the peer closed.
task<std::size_t> recv_exactly(socket& s, std::span<std::byte> buffer);

}  // namespace coronet
