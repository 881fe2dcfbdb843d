#pragma once
// with_timeout(): run a task with a deadline; on expiry cancel what it waits on.
//
// The task runs in its own cancellable scope. If the deadline passes first,
// the operation the task (or any task it awaits) is suspended on is cancelled,
// as is every later one in that scope, and with_timeout throws
// std::system_error(coronet::errc::timed_out) once the task has unwound. That
// reaches every operation pending in the scope (the branches of a when_all)
// and every with_timeout nested in it; a nested one cancelled from outside
// throws std::errc::operation_canceled. If the task finishes first the timer
// is cancelled; if its operation finished with its real result although the
// timer had fired (a race with the cancellation) that result is returned.
// Nothing is freed while the kernel may still use it: both sides always
// finish before with_timeout returns.

#include <chrono>
#include <coroutine>
#include <optional>
#include <system_error>

#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/timer.hpp>

namespace coronet {
namespace detail {

struct timeout_state {
    cancel_slot inner;
    cancel_slot timer;
    bool expired = false;
};

template <class T>
task<std::optional<part_value_t<T>>> timeout_inner(task<T> t, timeout_state* st) {
    std::optional<part_value_t<T>> out;
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(t);
            out.emplace();
        } else {
            out.emplace(co_await std::move(t));
        }
    } catch (...) {
        st->timer.request();
        throw;
    }
    st->timer.request();
    co_return out;
}

task<void> timeout_timer(reactor& r, reactor::clock::duration d, timeout_state* st);

// co_await yields the cancellable scope the awaiting coroutine runs in (nullptr: none), at once.
struct enclosing_scope {
    cancel_slot* slot = nullptr;
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        if constexpr (requires { h.promise().cancel_slot(); }) slot = h.promise().cancel_slot();
        return false;  // never suspends
    }
    cancel_slot* await_resume() const noexcept { return slot; }
};

// Links a with_timeout's scope into the enclosing one for as long as it lives,
// so that cancelling the outer scope (an outer with_timeout expiring) reaches it.
class nested_scope {
public:
    nested_scope(cancel_slot* outer, cancel_slot& inner) noexcept : outer_(outer) {
        link_.set_scope(&inner);
        if (!outer_) return;
        if (outer_->requested()) inner.mark_requested();  // cancelled already, and so is all inside
        outer_->link(link_);
    }
    ~nested_scope() {
        if (outer_) outer_->unlink(link_);
    }
    nested_scope(const nested_scope&) = delete;
    nested_scope& operator=(const nested_scope&) = delete;

private:
    cancel_slot* outer_;
    cancel_link link_;
};

}  // namespace detail

// Runs t with a deadline d from now; throws errc::timed_out when it expires first.
template <class T>
task<T> with_timeout(reactor& r, task<T> t, reactor::clock::duration d) {
    detail::timeout_state st{cancel_slot(&r), cancel_slot(&r)};
    cancel_slot* outer = co_await detail::enclosing_scope{};
    detail::nested_scope nesting(outer, st.inner);
    t.set_cancel_slot(&st.inner);
    auto inner = detail::timeout_inner(std::move(t), &st);
    inner.set_cancel_slot(&st.inner);
    auto timer = detail::timeout_timer(r, d, &st);
    timer.set_cancel_slot(&st.timer);
    std::exception_ptr error;
    std::optional<detail::part_value_t<T>> value;
    try {
        auto [v, unused] = co_await when_all(std::move(inner), std::move(timer));
        value = std::move(v);
    } catch (...) {
        error = std::current_exception();
    }
    // Cut short without our timer firing: the enclosing scope cancelled us, and
    // it must know, even if the exception is caught on the way out.
    if (outer && st.inner.cut_short() && !st.expired) outer->mark_cut_short();
    if (error) {
        if (st.expired) throw std::system_error(make_error_code(errc::timed_out), "with_timeout");
        std::rethrow_exception(error);
    }
    if (st.inner.cut_short()) {  // a cancelled operation did not throw (a sleep yields false)
        if (st.expired) throw std::system_error(make_error_code(errc::timed_out), "with_timeout");
        throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                "with_timeout");
    }
    if constexpr (!std::is_void_v<T>) co_return std::move(*value);
}

namespace detail {

template <class A>
task<await_result_t<A>> as_task(A awaitable) {
    co_return co_await std::move(awaitable);
}

template <class T>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<task<T>> = true;

}  // namespace detail

// The same for any movable awaitable (a channel read, write or flush): it is
// awaited inside a task, so whatever it suspends on is cancelled at expiry.
template <class Awaitable>
    requires(!detail::is_task_v<Awaitable> && std::move_constructible<Awaitable>)
task<detail::await_result_t<Awaitable>> with_timeout(reactor& r, Awaitable a,
                                                     reactor::clock::duration d) {
    return with_timeout(r, detail::as_task(std::move(a)), d);
}

}  // namespace coronet
