#pragma once
// The coroutine reactor::run(awaitable) drives (lib/reactor.hpp): it awaits the
// awaitable, keeps its value or exception, and stays suspended at its end so
// run() can read the outcome once the loop has turned until it is done.
// Internal to the reactor: not public API.

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace coronet::detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); })
        return std::forward<A>(a).operator co_await();
    else
        return std::forward<A>(a);
}

template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

// The coroutine reactor::run(awaitable) drives: it awaits, keeps the outcome,
// and stays suspended at its end so run() can read it.
template <class T>
class run_driver {
public:
    struct promise_type {
        std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
        std::exception_ptr error;
        run_driver get_return_object() {
            return run_driver{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept { error = std::current_exception(); }
        template <class U>
        void return_value(U&& v) {
            value.emplace(std::forward<U>(v));
        }
    };
    explicit run_driver(std::coroutine_handle<promise_type> h) : h_(h) {}
    run_driver(run_driver&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    ~run_driver() {
        if (h_) h_.destroy();
    }
    std::coroutine_handle<promise_type> handle() const noexcept { return h_; }

private:
    std::coroutine_handle<promise_type> h_;
};

template <>
struct run_driver<void>::promise_type {
    std::optional<bool> value;
    std::exception_ptr error;
    run_driver get_return_object() {
        return run_driver{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { error = std::current_exception(); }
    void return_void() { value.emplace(true); }
};

template <class A>
run_driver<await_result_t<A>> drive(A awaitable) {
    if constexpr (std::is_void_v<await_result_t<A>>)
        co_await std::move(awaitable);
    else
        co_return co_await std::move(awaitable);
}

}  // namespace coronet::detail
