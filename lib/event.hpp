#pragma once
// event: coroutines wait on it until it is notified; the wait is an operation,
// so with_timeout() and a reactor's destruction can cancel it like any other.
//
// A waiter is a timeout operation with no deadline, kept in the reactor's timer
// heap and also linked here; notify_all() finishes every waiter with 0. A wait
// cancelled first yields false. An event must outlive its waiters (the
// channel's backpressure and flush waits use one, owned with the channel).
// Medusa ancestor: none (asynchat polled writable() on every loop turn).

#include <coroutine>

#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

class event {
public:
    explicit event(reactor& r) noexcept : reactor_(&r) {}
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    // co_await yields true when notified, false when cancelled first.
    class [[nodiscard]] awaiter : public op_awaiter {
    public:
        explicit awaiter(event& e) noexcept : op_awaiter(*e.reactor_), event_(e) {
            op_.code = op_code::timeout;
            op_.deadline = reactor::clock::time_point::max();
        }
        ~awaiter() { unlink(); }

        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            link();
            if (op_awaiter::await_suspend(h)) return true;
            unlink();  // cancelled before it started
            return false;
        }
        bool await_resume() noexcept {
            unlink();
            return finish() == 0;
        }

    private:
        friend class event;
        void link() noexcept {
            prev_ = nullptr;
            next_ = event_.waiters_;
            if (next_) next_->prev_ = this;
            event_.waiters_ = this;
            linked_ = true;
        }
        void unlink() noexcept {
            if (!linked_) return;
            if (prev_)
                prev_->next_ = next_;
            else
                event_.waiters_ = next_;
            if (next_) next_->prev_ = prev_;
            linked_ = false;
        }
        event& event_;
        awaiter* prev_ = nullptr;
        awaiter* next_ = nullptr;
        bool linked_ = false;
    };

    // Suspends until notify_all() (true) or cancellation (false).
    awaiter wait() noexcept { return awaiter(*this); }

    // Wakes every coroutine waiting now; later waits wait for the next notify.
    void notify_all() noexcept {
        while (awaiter* a = waiters_) {
            a->unlink();
            reactor_->complete(a->op_, 0);
        }
    }

    bool has_waiters() const noexcept { return waiters_ != nullptr; }
    // The reactor its waiters are resumed on.
    reactor& context() const noexcept { return *reactor_; }

private:
    reactor* reactor_;
    awaiter* waiters_ = nullptr;
};

}  // namespace coronet
