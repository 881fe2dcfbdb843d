#pragma once
// The reactor's timers: a binary min-heap of timeout operations on their
// deadlines. Each operation knows its index (operation::heap_index), so one
// cancelled early leaves in O(log n), and whether it is in the heap at all
// (operation::in_timer_heap). The reactor pops what has expired each turn and
// sleeps no longer than until the earliest deadline. Nothing is allocated per
// timer beyond the heap's vector of pointers.
// Medusa ancestor: none (asyncore had no timers; Zope's sched-style loops did).

#include <chrono>
#include <cstddef>
#include <vector>

#include <coronet/lib/operation.hpp>

namespace coronet {

class timer_heap {
public:
    bool empty() const noexcept { return heap_.empty(); }
    // The operation with the earliest deadline; the heap must not be empty.
    operation* top() const noexcept { return heap_.front(); }

    // Adds op (a timeout on its deadline).
    void push(operation& op);
    // Takes op out; does nothing when it is not in the heap.
    void remove(operation& op) noexcept;
    // Time from now until the earliest deadline: 0 when it has passed, -1 (wait
    // for ever) when the heap is empty.
    std::chrono::nanoseconds next_timeout() const noexcept;

private:
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;

    std::vector<operation*> heap_;
};

}  // namespace coronet
