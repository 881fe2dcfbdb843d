#pragma once
// when_all(): run several tasks concurrently and wait for all of them.
//
// Each task starts at once, in order, and runs until its first suspension;
// the awaiting coroutine resumes when the last one finishes. Results come back
// in order (a void task gives std::monostate). If any task threw, the first
// exception (in argument order) is rethrown after all have finished. The
// tasks inherit the awaiter's cancellable scope.

#include <coroutine>
#include <exception>
#include <tuple>
#include <variant>
#include <vector>

#include <coronet/coro/task.hpp>

namespace coronet {
namespace detail {

// Counts down the parts still running; the last one resumes the awaiter.
struct when_all_latch {
    std::size_t remaining;
    std::coroutine_handle<> awaiting;
    bool arrive() noexcept { return --remaining == 0; }
};

template <class T>
using part_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// A wrapper coroutine per part: awaits the task, keeps its outcome, and tells
// the latch when it is done.
template <class T>
class when_all_part {
public:
    struct promise_type {
        when_all_latch* latch = nullptr;
        coronet::cancel_slot* slot = nullptr;
        std::variant<std::monostate, part_value_t<T>, std::exception_ptr> outcome;

        when_all_part get_return_object() noexcept {
            return when_all_part{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
                auto* l = h.promise().latch;
                if (l->arrive()) return l->awaiting;
                return std::noop_coroutine();
            }
            void await_resume() const noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept {
            outcome.template emplace<2>(std::current_exception());
        }
        void return_value(part_value_t<T> v) { outcome.template emplace<1>(std::move(v)); }
        coronet::cancel_slot* cancel_slot() const noexcept { return slot; }
    };

    explicit when_all_part(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    when_all_part(when_all_part&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    ~when_all_part() {
        if (h_) h_.destroy();
    }
    std::coroutine_handle<promise_type> handle() const noexcept { return h_; }

    part_value_t<T> take() {
        auto& o = h_.promise().outcome;
        if (o.index() == 2) std::rethrow_exception(std::get<2>(o));
        return std::move(std::get<1>(o));
    }
    bool failed() const noexcept { return h_.promise().outcome.index() == 2; }

private:
    std::coroutine_handle<promise_type> h_;
};

template <class T>
when_all_part<T> make_part(task<T> t) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
        co_return std::monostate{};
    } else {
        co_return co_await std::move(t);
    }
}

template <class... Ts>
class when_all_awaiter {
public:
    explicit when_all_awaiter(std::tuple<when_all_part<Ts>...> parts) noexcept
        : parts_(std::move(parts)) {}

    bool await_ready() const noexcept { return sizeof...(Ts) == 0; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) {
        latch_.remaining = sizeof...(Ts) + 1;  // +1: this call, so no part resumes us early
        latch_.awaiting = awaiting;
        coronet::cancel_slot* slot = nullptr;
        if constexpr (requires { awaiting.promise().cancel_slot(); })
            slot = awaiting.promise().cancel_slot();
        std::apply([&](auto&... p) { (start(p, slot), ...); }, parts_);
        return !latch_.arrive();  // all finished synchronously: do not suspend
    }

    std::tuple<part_value_t<Ts>...> await_resume() {
        rethrow_first();
        return std::apply([](auto&... p) { return std::tuple<part_value_t<Ts>...>(p.take()...); },
                          parts_);
    }

private:
    template <class P>
    void start(P& part, coronet::cancel_slot* slot) {
        auto& pr = part.handle().promise();
        pr.latch = &latch_;
        pr.slot = slot;
        part.handle().resume();
    }
    void rethrow_first() {
        std::apply([](auto&... p) { (void)((p.failed() ? (p.take(), true) : false) || ...); },
                   parts_);
    }

    std::tuple<when_all_part<Ts>...> parts_;
    when_all_latch latch_{};
};

template <class T>
class when_all_vector_awaiter {
public:
    explicit when_all_vector_awaiter(std::vector<when_all_part<T>> parts) noexcept
        : parts_(std::move(parts)) {}

    bool await_ready() const noexcept { return parts_.empty(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) {
        latch_.remaining = parts_.size() + 1;
        latch_.awaiting = awaiting;
        coronet::cancel_slot* slot = nullptr;
        if constexpr (requires { awaiting.promise().cancel_slot(); })
            slot = awaiting.promise().cancel_slot();
        for (auto& p : parts_) {
            auto& pr = p.handle().promise();
            pr.latch = &latch_;
            pr.slot = slot;
            p.handle().resume();
        }
        return !latch_.arrive();
    }

    std::vector<part_value_t<T>> await_resume() {
        for (auto& p : parts_)
            if (p.failed()) p.take();  // rethrows
        std::vector<part_value_t<T>> out;
        out.reserve(parts_.size());
        for (auto& p : parts_)
            out.push_back(p.take());
        return out;
    }

private:
    std::vector<when_all_part<T>> parts_;
    when_all_latch latch_{};
};

}  // namespace detail

// Awaits every task; yields a tuple of their results (std::monostate for void).
template <class... Ts>
task<std::tuple<detail::part_value_t<Ts>...>> when_all(task<Ts>... tasks) {
    co_return co_await detail::when_all_awaiter<Ts...>(
        std::tuple(detail::make_part(std::move(tasks))...));
}

// Awaits every task of a vector; yields their results in order.
template <class T>
task<std::vector<detail::part_value_t<T>>> when_all(std::vector<task<T>> tasks) {
    std::vector<detail::when_all_part<T>> parts;
    parts.reserve(tasks.size());
    for (auto& t : tasks)
        parts.push_back(detail::make_part(std::move(t)));
    co_return co_await detail::when_all_vector_awaiter<T>(std::move(parts));
}

}  // namespace coronet
