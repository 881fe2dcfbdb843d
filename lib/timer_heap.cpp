#include <coronet/lib/timer_heap.hpp>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace coronet {

std::chrono::nanoseconds timer_heap::next_timeout() const noexcept {
    if (heap_.empty()) return std::chrono::nanoseconds(-1);  // block until an event
    auto d = op_time::time_point(heap_.front()->deadline) - std::chrono::steady_clock::now();
    return std::max(std::chrono::duration_cast<std::chrono::nanoseconds>(d),
                    std::chrono::nanoseconds(0));
}

void timer_heap::push(operation& op) {
    op.in_timer_heap = true;
    op.heap_index = static_cast<std::uint32_t>(heap_.size());
    heap_.push_back(&op);
    sift_up(op.heap_index);
}

void timer_heap::remove(operation& op) noexcept {
    if (!op.in_timer_heap) return;
    std::size_t i = op.heap_index;
    op.in_timer_heap = false;
    operation* last = heap_.back();
    heap_.pop_back();
    if (last == &op) return;
    heap_[i] = last;
    last->heap_index = static_cast<std::uint32_t>(i);
    sift_up(i);
    sift_down(last->heap_index);
}

void timer_heap::sift_up(std::size_t i) noexcept {
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (heap_[parent]->deadline <= heap_[i]->deadline) break;
        std::swap(heap_[parent], heap_[i]);
        heap_[parent]->heap_index = static_cast<std::uint32_t>(parent);
        heap_[i]->heap_index = static_cast<std::uint32_t>(i);
        i = parent;
    }
}

void timer_heap::sift_down(std::size_t i) noexcept {
    for (;;) {
        std::size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_.size() && heap_[l]->deadline < heap_[m]->deadline) m = l;
        if (r < heap_.size() && heap_[r]->deadline < heap_[m]->deadline) m = r;
        if (m == i) return;
        std::swap(heap_[m], heap_[i]);
        heap_[m]->heap_index = static_cast<std::uint32_t>(m);
        heap_[i]->heap_index = static_cast<std::uint32_t>(i);
        i = m;
    }
}

}  // namespace coronet
