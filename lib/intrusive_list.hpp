#pragma once
// intrusive_list: a doubly-linked list threaded through two pointer members of
// its elements, for objects that put themselves on a list and take themselves
// off in O(1) without allocating (a detached task's hook in its reactor, an
// entry of a cancel scope, a connection in its registry, a spawned task in its
// group). The list holds only the head; an element's `Prev` and `Next` members
// (default: `prev`, `next`) are the links, so an element's layout is its own.
// Elements are added at the front; walk with front() and the `Next` member.
// Everything is inline: the same instructions as the hand-written lists it
// replaced. (op_list, lib/operation.hpp, is a singly-linked FIFO: another shape.)
// Medusa ancestor: none (asyncore kept its channels in a dict).

namespace coronet {

template <class T, T* T::*Prev = &T::prev, T* T::*Next = &T::next>
class intrusive_list {
public:
    // Copies the head pointer, as the raw `T*` heads it replaced did (a scope
    // is copied or moved only while nothing is linked).

    bool empty() const noexcept { return head_ == nullptr; }
    // The element added last (nullptr when empty); the rest follow through `Next`.
    T* front() const noexcept { return head_; }

    // True when x is on this list (an element is on at most one list of a kind).
    bool contains(const T& x) const noexcept { return x.*Prev != nullptr || head_ == &x; }

    // Adds x at the front; x must not be on a list.
    void push_front(T& x) noexcept {
        x.*Prev = nullptr;
        x.*Next = head_;
        if (head_) head_->*Prev = &x;
        head_ = &x;
    }

    // Takes x off; false (and nothing done) when x is not on this list.
    bool remove(T& x) noexcept {
        if (!contains(x)) return false;
        unlink(x);
        return true;
    }

    // Takes x off; x must be on this list.
    void unlink(T& x) noexcept {
        if (x.*Prev)
            x.*Prev->*Next = x.*Next;
        else
            head_ = x.*Next;
        if (x.*Next) x.*Next->*Prev = x.*Prev;
        x.*Prev = x.*Next = nullptr;
    }

    // Takes the front element off and returns it (nullptr when empty).
    T* pop_front() noexcept {
        T* x = head_;
        if (x) unlink(*x);
        return x;
    }

private:
    T* head_ = nullptr;
};

}  // namespace coronet
