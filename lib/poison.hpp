#pragma once
// poison: in AddressSanitizer builds, memory nobody may read now is marked so,
// and reading it is a report instead of someone else's bytes.
//
// The receive path hands out views into memory it reuses: a provided block
// goes back to the reactor's pool at the reader's next read, and the bytes a
// read returned are dead once the next read begins. A view kept past that
// would read another connection's data, and AddressSanitizer cannot see it
// (the pool is one mapping; the own buffer is still allocated). So the pool
// poisons a block while it is free, and a receive room poisons what earlier
// reads consumed. AddressSanitizer poisons in granules of 8 bytes, so the
// last few bytes before unread ones may stay readable. Without
// AddressSanitizer these cost nothing.
// Medusa ancestor: none.

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define CORONET_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORONET_ASAN 1
#endif
#endif

#ifdef CORONET_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace coronet::detail {

// True in AddressSanitizer builds (where poison() does something).
inline constexpr bool poisoning =
#ifdef CORONET_ASAN
    true;
#else
    false;
#endif

// Marks [p, p + n) unreadable (AddressSanitizer builds only).
inline void poison(const void* p, std::size_t n) noexcept {
#ifdef CORONET_ASAN
    ASAN_POISON_MEMORY_REGION(p, n);
#else
    (void)p;
    (void)n;
#endif
}

// Marks [p, p + n) readable and writable again.
inline void unpoison(const void* p, std::size_t n) noexcept {
#ifdef CORONET_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
    (void)p;
    (void)n;
#endif
}

}  // namespace coronet::detail
