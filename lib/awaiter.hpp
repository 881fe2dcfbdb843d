#pragma once
// op_awaiter: the one awaiter shape every I/O operation uses.
//
// await_suspend() records the waiting coroutine and ends by starting the
// operation (true from reactor::start means it finished at once, and the
// coroutine goes on without suspending). The derived awaiter converts
// op_.result in await_resume(). If the awaiting coroutine belongs to a
// cancellable scope (its promise has `cancel_slot* cancel_slot()`), the
// operation is linked there while pending so with_timeout() can cancel it. An awaiter
// destroyed while its operation is pending (its frame destroyed) abandons it:
// the reactor cancels it and waits until the kernel has let go of its buffers.
// Awaiters can be neither copied nor moved: the kernel holds their address.

#include <cerrno>
#include <coroutine>

#include <coronet/lib/operation.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

class op_awaiter {
public:
    explicit op_awaiter(reactor& r) noexcept : reactor_(r) {}
    ~op_awaiter() {
        reactor_.abandon(op_);
        if (slot_) slot_->unlink(link_);  // the scope must not cancel a dead operation later
    }
    op_awaiter(const op_awaiter&) = delete;
    op_awaiter& operator=(const op_awaiter&) = delete;

    bool await_ready() const noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        return !reactor_.start(op_);
    }

protected:
    // Records the waiter and joins its cancellable scope; false when the scope
    // was cancelled already (op_.result is then -ECANCELED: do not start).
    template <class Promise>
    bool enter(std::coroutine_handle<Promise> h) noexcept {
        op_.set_waiter(h);
        if constexpr (requires { h.promise().cancel_slot(); }) {
            slot_ = h.promise().cancel_slot();
            if (slot_) {
                if (slot_->requested()) {
                    op_.result = -ECANCELED;
                    return false;
                }
                link_.set_op(&op_);
                slot_->link(link_);
            }
        }
        return true;
    }

    // op_.result, once the operation has finished (and the scope forgets it).
    int finish() noexcept {
        if (slot_) {
            slot_->unlink(link_);
            if (op_.result == -ECANCELED) slot_->mark_cut_short();
        }
        return op_.result;
    }

    reactor& reactor_;
    operation op_;
    cancel_slot* slot_ = nullptr;
    cancel_link link_;  // in slot_'s list while op_ is pending
};

}  // namespace coronet
