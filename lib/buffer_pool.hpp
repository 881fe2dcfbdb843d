#pragma once
// buffer_pool: a backend's provided receive buffers, `count` blocks of `size`
// bytes in one page-aligned mapping.
//
// A recv_provided operation takes no buffer of its own: the backend picks one
// of these only when bytes are there to receive, and the owner of the finished
// operation gives it back (reactor::recycle) once it has consumed or copied
// the bytes. So a connection waiting for data holds no receive memory. The
// io_uring backend registers the same blocks as a provided buffer ring (the
// kernel picks); the readiness backends (and io_uring without buffer rings)
// take them from the free stack here. Untouched blocks cost no RSS: the
// mapping is anonymous, and the free stack hands the most recent one out first.
// Medusa ancestor: none (asyncore reads into a fresh string per recv()).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace coronet {

class buffer_pool {
public:
    buffer_pool() = default;
    ~buffer_pool();
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;

    // Maps count blocks of size bytes (count 0: no pool); throws std::system_error.
    void init(unsigned count, std::size_t size);

    unsigned count() const noexcept { return count_; }
    std::size_t size() const noexcept { return size_; }
    // Block id's first byte.
    std::byte* data(std::uint16_t id) const noexcept { return base_ + std::size_t(id) * size_; }

    // The free stack (readiness backends): a block id, or -1 when none is free.
    int take() noexcept;
    // Back onto the free stack.
    void give_back(std::uint16_t id) noexcept;
    // A block leaves the pool (take(), or the kernel's buffer ring handed it out) /
    // comes back to it: in AddressSanitizer builds a free block is poisoned
    // (lib/poison.hpp), so a view kept into it is a report.
    void lend(std::uint16_t id) const noexcept;
    void shelve(std::uint16_t id) const noexcept;

    // Blocks handed out and not yet given back (kept by whoever hands them out).
    std::size_t in_use = 0;

private:
    std::byte* base_ = nullptr;
    std::size_t bytes_ = 0, size_ = 0;
    unsigned count_ = 0;
    std::vector<std::uint16_t> free_;
};

}  // namespace coronet
