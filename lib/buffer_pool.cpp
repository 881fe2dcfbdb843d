#include <coronet/lib/buffer_pool.hpp>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <sys/mman.h>

namespace coronet {

buffer_pool::buffer_pool(unsigned count, std::size_t size) {
    if (count == 0 || size == 0) return;
    count = std::min(count, 32768u);               // ids are 16 bits (and a buffer ring's limit)
    size = std::min<std::size_t>(size, 1u << 30);  // a buffer ring entry's length is 32 bits
    std::size_t bytes = std::size_t(count) * size;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        throw std::system_error(errno, std::system_category(), "mmap (buffer pool)");
    base_ = static_cast<std::byte*>(p);
    bytes_ = bytes;
    size_ = size;
    count_ = count;
    free_.reserve(count);
    for (unsigned i = count; i-- > 0;)
        free_.push_back(static_cast<std::uint16_t>(i));
    detail::poison(base_, bytes_);  // every block starts free
}

buffer_pool::~buffer_pool() {
    if (!base_) return;
    detail::unpoison(base_, bytes_);  // the next mapping here starts clean
    ::munmap(base_, bytes_);
}

void buffer_pool::attach(buffer_ring& ring) noexcept {
    ring_ = &ring;
    // Lowest id first, as the free stack would have handed them out.
    while (!free_.empty()) {
        std::uint16_t id = free_.back();
        free_.pop_back();
        ring.put_back(id, data(id), size_);
    }
}

}  // namespace coronet
