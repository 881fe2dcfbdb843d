#pragma once
// with_timeout(): run a task with a deadline; on expiry cancel what it waits on.
//
// The task runs in its own cancellable scope. If the deadline passes first,
// the operation the task (or any task it awaits) is suspended on is cancelled,
// as is every later one in that scope, and with_timeout throws
// std::system_error(coronet::errc::timed_out) once the task has unwound. If
// the task finishes first the timer is cancelled. Nothing is freed while the
// kernel may still use it: both sides always finish before with_timeout returns.

#include <chrono>
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

}  // namespace detail

// Runs t with a deadline d from now; throws errc::timed_out when it expires first.
template <class T>
task<T> with_timeout(reactor& r, task<T> t, reactor::clock::duration d) {
    detail::timeout_state st{{&r}, {&r}};
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
    if (error) {
        if (st.expired) throw std::system_error(make_error_code(errc::timed_out), "with_timeout");
        std::rethrow_exception(error);
    }
    if constexpr (!std::is_void_v<T>) co_return std::move(*value);
}

}  // namespace coronet
