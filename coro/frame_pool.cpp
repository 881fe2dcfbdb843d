#include <coronet/coro/frame_pool.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <new>

#include <coronet/lib/free_list.hpp>

namespace coronet::detail {

// Under AddressSanitizer frames come straight from the heap, so that a use of
// a destroyed frame is reported instead of landing in a recycled one. GCC says
// "ASan" with __SANITIZE_ADDRESS__; clang 14 (tools/fuzz.sh) defines no such
// macro and answers __has_feature(address_sanitizer) instead.
#if defined(__SANITIZE_ADDRESS__)
#define CORONET_FRAMES_FROM_HEAP
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORONET_FRAMES_FROM_HEAP
#endif
#endif

namespace {
thread_local std::size_t frame_count = 0;
}

std::size_t frames_allocated() noexcept { return frame_count; }

#if defined(CORONET_FRAMES_FROM_HEAP)
void* frame_allocate(std::size_t n) {
    ++frame_count;
    return ::operator new(n);
}
void frame_deallocate(void* p, std::size_t) noexcept { ::operator delete(p); }
std::size_t frames_kept_bytes() noexcept { return 0; }
#else
namespace {

// Size classes 16 bytes apart, each sized to fill a whole malloc chunk: glibc's
// malloc adds an 8-byte header and rounds the chunk to 16, so a block of 16k+8
// bytes uses all of its 16k+16 chunk. A frame of 240 bytes then takes a 248-byte
// block (a 256-byte chunk), where 64-byte classes gave it 256 (a 272-byte chunk).
constexpr std::size_t granule = 16;
constexpr std::size_t max_frame = 2048;
// Class 0 holds 9 to 24 bytes (room for block_free_list's link); under 9 bytes
// (never a real frame) the class wraps around past the last, so the heap serves it.
std::size_t class_of(std::size_t n) noexcept { return (n + 7) / granule - 1; }
constexpr std::size_t block_size(std::size_t cls) noexcept { return (cls + 1) * granule + 8; }
constexpr std::size_t classes = (max_frame + 7) / granule;  // frames up to 2 KiB are recycled
// What an idle thread keeps per class: 4,096 blocks, and no more than 256 KiB of
// them. A burst of 4,096 connections each sending at once leaves 130 of its 2 KiB
// sender frames here, not 8 MiB; the rest go back to malloc, where any allocation
// can use them again.
constexpr std::size_t max_cached = 4096;
constexpr std::size_t max_cached_bytes = 256 * 1024;
constexpr auto kept_in = [] {  // per class, computed once: no division per free
    std::array<std::uint16_t, classes> kept{};
    for (std::size_t cls = 0; cls < classes; ++cls)
        kept[cls] =
            static_cast<std::uint16_t>(std::min(max_cached, max_cached_bytes / block_size(cls)));
    return kept;
}();
static_assert(block_size(classes - 1) >= max_frame);

// One list per size class; what is still kept when the thread ends goes back to the heap.
class pool {
public:
    void* get(std::size_t cls) {
        auto& list = lists_[cls];
        if (!list.empty()) return list.take();
        return ::operator new(block_size(cls));
    }
    void put(void* p, std::size_t cls) noexcept {
        auto& list = lists_[cls];
        if (list.size() >= kept_in[cls] || !list.keep(p)) ::operator delete(p);
    }
    // Summed when asked (tests), not counted on every get and put.
    std::size_t kept_bytes() const noexcept {
        std::size_t bytes = 0;
        for (std::size_t cls = 0; cls < classes; ++cls)
            bytes += lists_[cls].size() * block_size(cls);
        return bytes;
    }

private:
    std::array<block_free_list<max_cached>, classes> lists_;
};

thread_local pool frames;

}  // namespace

std::size_t frames_kept_bytes() noexcept { return frames.kept_bytes(); }

void* frame_allocate(std::size_t n) {
    ++frame_count;
    std::size_t cls = class_of(n);
    if (cls >= classes) return ::operator new(n);
    return frames.get(cls);
}

void frame_deallocate(void* p, std::size_t n) noexcept {
    std::size_t cls = class_of(n);
    if (cls >= classes) return ::operator delete(p);
    frames.put(p, cls);
}
#endif

}  // namespace coronet::detail
