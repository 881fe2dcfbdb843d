#pragma once
// frame_pool: recycles coroutine frames, so a steady stream of tasks allocates nothing.
//
// Every task's frame comes from here (task_promise_base's operator new). Freed
// frames wait on a per-thread free list per size class (16 bytes apart, each
// filling a malloc chunk), up to a cap,
// and are handed out again; bigger frames and frames past the cap go to the
// global heap. One reactor per thread means one pool per reactor, with no
// locks. A frame freed on another thread simply joins that thread's lists.
// Medusa ancestor: none (Python allocates its frames too).

#include <cstddef>

namespace coronet::detail {

// A block of at least n bytes for a coroutine frame.
void* frame_allocate(std::size_t n);
// Returns a block from frame_allocate(n).
void frame_deallocate(void* p, std::size_t n) noexcept;
// Frames handed out on this thread so far, recycled or not (tests count them).
std::size_t frames_allocated() noexcept;
// Bytes of freed frames this thread keeps for reuse (at most 256 KiB per size
// class; 0 where frames come straight from the heap, under AddressSanitizer).
std::size_t frames_kept_bytes() noexcept;

}  // namespace coronet::detail
