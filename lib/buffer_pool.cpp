#include <coronet/lib/buffer_pool.hpp>

#include <coronet/lib/poison.hpp>

#include <cerrno>
#include <system_error>

#include <sys/mman.h>

namespace coronet {

buffer_pool::~buffer_pool() {
    if (!base_) return;
    detail::unpoison(base_, bytes_);  // the next mapping here starts clean
    ::munmap(base_, bytes_);
}

void buffer_pool::init(unsigned count, std::size_t size) {
    if (count == 0 || size == 0) return;
    if (count > 32768) count = 32768;  // ids are 16 bits (and a buffer ring's limit)
    std::size_t bytes = std::size_t(count) * size;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::system_category(), "mmap (buffer pool)");
    base_ = static_cast<std::byte*>(p);
    bytes_ = bytes;
    size_ = size;
    count_ = count;
    free_.reserve(count);
    for (unsigned i = count; i-- > 0;) free_.push_back(static_cast<std::uint16_t>(i));
    detail::poison(base_, std::size_t(count_) * size_);  // every block starts free
}

int buffer_pool::take() noexcept {
    if (free_.empty()) return -1;
    std::uint16_t id = free_.back();
    free_.pop_back();
    ++in_use;
    lend(id);
    return id;
}

void buffer_pool::give_back(std::uint16_t id) noexcept {
    shelve(id);
    free_.push_back(id);  // reserved for count_ entries: never allocates
    --in_use;
}

void buffer_pool::lend(std::uint16_t id) const noexcept { detail::unpoison(data(id), size_); }
void buffer_pool::shelve(std::uint16_t id) const noexcept { detail::poison(data(id), size_); }

}  // namespace coronet
