// coro/scan.hpp: byte-string scanning helpers shared by the channel and the producers.
//
// Pure functions over std::string_view, no allocation. find_terminator is the channel's hot
// path (memchr for one-byte terminators, memmem otherwise); find_prefix_at_end tells how many
// bytes at the end of a buffer might be the start of a terminator split across reads.
// Medusa ancestor: asynchat.find_prefix_at_end and the string.find calls in
// async_chat.handle_read.
#pragma once

#include <cstddef>
#include <string_view>

namespace coronet {

// Length of the longest proper prefix of needle that ends haystack: ("qwerty\r", "\r\n") -> 1.
std::size_t find_prefix_at_end(std::string_view haystack, std::string_view needle) noexcept;

// Position of the first occurrence of term in haystack, npos if absent (0 for an empty term).
std::size_t find_terminator(std::string_view haystack, std::string_view term) noexcept;

}  // namespace coronet
