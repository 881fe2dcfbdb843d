#pragma once
// buffer_pool: the reactor's provided receive buffers, `count` blocks of
// `size` bytes in one page-aligned mapping.
//
// A recv_provided operation takes no buffer of its own: the backend picks one
// of these only when bytes are there to receive, and the owner of the finished
// operation gives it back (reactor::recycle, which is give_back()) once it has
// consumed or copied the bytes. So a connection waiting for data holds no
// receive memory. The reactor owns the pool and lends it to its backend for
// the backend's life. The readiness backends (and io_uring without buffer
// rings) take blocks from the free stack here; the io_uring backend attaches
// a buffer_ring: the pool hands it every free block, and each block given
// back goes to it (the kernel picks from the ring) instead of the stack.
// Untouched blocks cost no RSS: the mapping is anonymous, and the free stack
// hands the most recent one out first. In AddressSanitizer builds a free
// block is poisoned (lib/poison.hpp), so a view kept into it is a report.
// Medusa ancestor: none (asyncore reads into a fresh string per recv()).

#include <cstddef>
#include <cstdint>
#include <vector>

#include <coronet/lib/poison.hpp>

namespace coronet {

// Where free blocks live instead of the pool's free stack: the io_uring
// backend's registered buffer ring, from which the kernel picks them.
class buffer_ring {
public:
    // Block id (its bytes at data, size long) is free: the kernel may pick it.
    virtual void put_back(std::uint16_t id, std::byte* data, std::size_t size) noexcept = 0;

protected:
    ~buffer_ring() = default;
};

class buffer_pool {
public:
    // No blocks: every recv_provided finishes with -ENOBUFS.
    buffer_pool() noexcept = default;
    // Maps count blocks of size bytes (count or size 0: no blocks; count at most
    // 32,768, ids being 16 bits); throws std::system_error.
    buffer_pool(unsigned count, std::size_t size);
    ~buffer_pool();
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;

    unsigned count() const noexcept { return count_; }
    // Bytes per block (0 when there are none).
    std::size_t size() const noexcept { return size_; }
    // Block id's first byte.
    std::byte* data(std::uint16_t id) const noexcept { return base_ + std::size_t(id) * size_; }
    // Blocks handed out (take(), or picked by the kernel: lend()) and not yet given back.
    std::size_t in_use() const noexcept { return in_use_; }
    // Blocks given back so far (give_back(): a readiness backend learns from it
    // that one came back).
    std::uint64_t given_back() const noexcept { return given_back_; }

    // A block id from the free stack, now in use, or -1 when none is free.
    int take() noexcept {
        if (free_.empty()) return -1;
        std::uint16_t id = free_.back();
        free_.pop_back();
        lend(id);
        return id;
    }
    // Block id is free again: onto the free stack, or into the attached ring.
    void give_back(std::uint16_t id) noexcept {
        detail::poison(data(id), size_);
        --in_use_;
        ++given_back_;
        if (ring_)
            ring_->put_back(id, data(id), size_);
        else
            free_.push_back(id);  // reserved for count_ entries: never allocates
    }
    // Undoes take(): block id received nothing and is free again (not counted
    // as given back).
    void untake(std::uint16_t id) noexcept {
        detail::poison(data(id), size_);
        --in_use_;
        free_.push_back(id);
    }
    // Block id left the pool without take(): the kernel picked it from the ring.
    void lend(std::uint16_t id) noexcept {
        ++in_use_;
        detail::unpoison(data(id), size_);
    }

    // From now on the free blocks live in ring: it gets every block free now
    // and each one given back. One ring at a time.
    void attach(buffer_ring& ring) noexcept;
    // The ring is going: blocks given back go onto the free stack again (the
    // ones the ring held are not seen again; the pool is about to die too).
    void detach() noexcept { ring_ = nullptr; }

private:
    std::byte* base_ = nullptr;
    std::size_t bytes_ = 0, size_ = 0;
    unsigned count_ = 0;
    std::size_t in_use_ = 0;
    std::uint64_t given_back_ = 0;
    std::vector<std::uint16_t> free_;
    buffer_ring* ring_ = nullptr;
};

}  // namespace coronet
