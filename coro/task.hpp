#pragma once
// task<T>: a lazy coroutine that yields one T (or an exception) to its awaiter.
//
// Nothing runs until the task is awaited. A task that finishes before its
// awaiter has suspended hands back without a nested resume (the awaiter simply
// does not suspend), and one that finishes later passes control straight to
// its awaiter (symmetric transfer), so a million sequential co_awaits use no
// stack even where the compiler does not turn symmetric transfer into a tail
// call (GCC at -O0). Exceptions are stored and rethrown in the awaiter. A task
// awaited by another inherits its cancellable scope (cancel_slot), which is how
// with_timeout() reaches the operation a nested coroutine is suspended on.
// Medusa ancestor: none — this is what replaces the callbacks.

#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include <coronet/coro/frame_pool.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

template <class T = void>
class task;

namespace detail {

class task_promise_base {
public:
    // Frames are recycled per thread (frame_pool.hpp): no malloc in steady state.
    static void* operator new(std::size_t n) { return frame_allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_deallocate(p, n); }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            // No continuation yet: the task is finishing inside start_inline()'s resume(),
            // which sees it done and lets its awaiter go on without suspending.
            std::coroutine_handle<> next = h.promise().continuation_;
            return next ? next : std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }

    // The cancellable scope this task runs in (nullptr: none).
    coronet::cancel_slot* cancel_slot() const noexcept { return slot_; }
    void set_cancel_slot(coronet::cancel_slot* slot) noexcept { slot_ = slot; }

    // Starts the task from its awaiter; true when it finished before returning. The
    // continuation is set only once the task has suspended: a task finishing inside this
    // resume() finds none and returns to it (no handoff state kept: every task's promise, so
    // every handler's frame, is 8 bytes smaller than with a byte of its own).
    bool start_inline(std::coroutine_handle<> self, std::coroutine_handle<> awaiting) {
        self.resume();
        if (self.done()) return true;
        continuation_ = awaiting;
        return false;
    }

private:
    std::coroutine_handle<> continuation_;
    coronet::cancel_slot* slot_ = nullptr;
};

template <class T>
class task_promise final : public task_promise_base {
public:
    task<T> get_return_object() noexcept;
    void unhandled_exception() noexcept { result_.template emplace<2>(std::current_exception()); }
    template <class U>
        requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) { result_.template emplace<1>(std::forward<U>(v)); }

    T take() {
        if (result_.index() == 2) std::rethrow_exception(std::get<2>(result_));
        return std::move(std::get<1>(result_));
    }

private:
    std::variant<std::monostate, T, std::exception_ptr> result_;
};

template <>
class task_promise<void> final : public task_promise_base {
public:
    task<void> get_return_object() noexcept;
    void unhandled_exception() noexcept { error_ = std::current_exception(); }
    void return_void() noexcept {}
    void take() {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::exception_ptr error_;
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
public:
    using promise_type = detail::task_promise<T>;
    using value_type = T;

    task() noexcept = default;
    explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            if (h_) h_.destroy();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    // Destroying a task that never ran, or ran half-way, frees its frame.
    ~task() {
        if (h_) h_.destroy();
    }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    bool done() const noexcept { return !h_ || h_.done(); }

    // Runs the task inside a cancellable scope (with_timeout sets one).
    void set_cancel_slot(cancel_slot* slot) noexcept { h_.promise().set_cancel_slot(slot); }

    struct awaiter {
        std::coroutine_handle<promise_type> h;
        bool await_ready() const noexcept { return !h || h.done(); }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> awaiting) {
            if constexpr (requires { awaiting.promise().cancel_slot(); }) {
                if (!h.promise().cancel_slot())
                    h.promise().set_cancel_slot(awaiting.promise().cancel_slot());
            }
            return !h.promise().start_inline(h, awaiting);  // finished already: do not suspend
        }
        T await_resume() { return h.promise().take(); }
    };
    awaiter operator co_await() && noexcept { return awaiter{h_}; }
    awaiter operator co_await() & noexcept { return awaiter{h_}; }

    // The frame (spawn and when_all take it over).
    std::coroutine_handle<promise_type> handle() const noexcept { return h_; }
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, {}); }

private:
    std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}

inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}

}  // namespace detail
}  // namespace coronet
