#pragma once
// free_list: a bounded LIFO of things freed on this thread and kept for the
// next user (a declared `thread_local` per kind: one reactor per thread, so no
// locks). It keeps at most `Kept` and reserves room for all of them at the
// first keep(), so keep() never allocates after that and is noexcept: when the
// list is full, or that one reservation fails, keep() refuses and the caller
// frees the thing as it would have without a list. On destruction (thread
// exit) `Drop` frees what is still kept; with the default, the elements'
// destructors do. Everything is inline: the same instructions as the
// hand-written caches it replaced (coro/channel.cpp's small blocks, output
// deques and spare strings; lib/receive_room.cpp's input buffers).
// block_free_list is the same bounded LIFO for raw memory blocks: the link
// lives in the freed block itself, so it reserves nothing and keep() cannot
// fail for want of room (coro/frame_pool.cpp's per-size-class frame lists).
// Medusa ancestor: none (Python's allocator keeps its own free lists).

#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace coronet {

// The default Drop: nothing beyond the elements' own destructors.
struct keep_nothing {
    template <class T>
    void operator()(T&) const noexcept {}
};

template <class T, std::size_t Kept, class Drop = keep_nothing>
class free_list {
public:
    static constexpr std::size_t kept = Kept;

    free_list() = default;
    free_list(const free_list&) = delete;
    free_list& operator=(const free_list&) = delete;
    ~free_list() {
        for (T& x : items_)
            Drop{}(x);
    }

    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    bool full() const noexcept { return items_.size() >= Kept; }

    // The thing kept last; the list must not be empty.
    T take() noexcept {
        T x = std::move(items_.back());
        items_.pop_back();
        return x;
    }

    // Keeps x (moved from) and returns true; false when full or when the
    // first reservation fails, x untouched: the caller frees it.
    bool keep(T& x) noexcept {
        if (items_.size() >= Kept) return false;
        if (items_.capacity() == 0) {
            try {
                items_.reserve(Kept);
            } catch (...) {
                return false;
            }
        }
        items_.push_back(std::move(x));  // never allocates: reserved above
        return true;
    }

private:
    std::vector<T> items_;
};

// The default block Drop: the global operator delete.
struct delete_block {
    void operator()(void* p) const noexcept { ::operator delete(p); }
};

// A bounded LIFO of freed blocks, each at least two pointers in size and
// aligned for a pointer, linked through their first bytes. The list itself is
// one pointer (an array of lists indexes like an array of pointers): each kept
// block also records how many are kept, itself included.
template <std::size_t Kept, class Drop = delete_block>
class block_free_list {
public:
    static constexpr std::size_t kept = Kept;

    block_free_list() = default;
    block_free_list(const block_free_list&) = delete;
    block_free_list& operator=(const block_free_list&) = delete;
    ~block_free_list() {
        while (!empty())
            Drop{}(take());
    }

    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return head_ ? head_->size : 0; }
    bool full() const noexcept { return size() >= Kept; }

    // The block kept last; the list must not be empty.
    void* take() noexcept {
        link* b = head_;
        head_ = b->next;
        return b;
    }

    // Keeps block p (its first bytes become the link) and returns true; false
    // when full, p untouched: the caller frees it.
    bool keep(void* p) noexcept {
        std::size_t n = size();
        if (n >= Kept) return false;
        head_ = new (p) link{head_, n + 1};
        return true;
    }

private:
    struct link {
        link* next;
        std::size_t size;  // blocks kept from this one down
    };
    link* head_ = nullptr;
};

}  // namespace coronet
