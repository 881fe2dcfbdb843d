#pragma once
// when_any(): run several tasks concurrently; the first to finish wins, the
// others are cancelled, and the winner's result is returned.
//
// Every task starts at once, in order, each in a cancellable scope of its own
// (nested in the awaiter's, so cancelling the awaiter reaches them all). When
// one finishes (returns or throws), every other one's pending operation, and
// each later one, is cancelled (-ECANCELED). when_any returns only after all
// have unwound, so nothing they use is freed early; the losers' results and
// exceptions are dropped. The winner's exception is rethrown. The variadic
// form gives a std::variant whose index() says which task won (void gives
// std::monostate); the vector form gives {index, value}.
// Medusa ancestor: none (asyncore had no way to race two waits).
// Others: Asio's parallel_group with wait_for_one, Tokio's select!.

#include <cstddef>
#include <deque>
#include <exception>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

// Which task of a when_any(vector) won, and its result.
template <class T>
struct any_result {
    std::size_t index;
    detail::part_value_t<T> value;
};

namespace detail {

template <class T>
struct any_state {
    std::deque<cancel_slot> slots;  // one scope per task (a deque: never moves)
    std::optional<std::size_t> winner;
    std::optional<part_value_t<T>> value;
    std::exception_ptr error;

    void won(std::size_t i) {
        winner = i;
        for (std::size_t j = 0; j < slots.size(); ++j)
            if (j != i) slots[j].request();
    }
};

template <class T>
task<void> any_part(task<T> t, any_state<T>* st, std::size_t i) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(t);
            if (!st->winner) {
                st->value.emplace();
                st->won(i);
            }
        } else {
            auto v = co_await std::move(t);
            if (!st->winner) {
                st->value.emplace(std::move(v));
                st->won(i);
            }
        }
    } catch (...) {
        if (!st->winner) {
            st->error = std::current_exception();
            st->won(i);
        }
    }
}

template <std::size_t I, class V, class T>
task<V> as_alternative(task<T> t) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
        co_return V(std::in_place_index<I>);
    } else {
        co_return V(std::in_place_index<I>, co_await std::move(t));
    }
}

}  // namespace detail

// Runs every task; the first to finish cancels the others. Yields its index and result.
template <class T>
task<any_result<T>> when_any(reactor& r, std::vector<task<T>> tasks) {
    if (tasks.empty()) throw std::invalid_argument("when_any: no tasks");
    detail::any_state<T> st;
    cancel_slot* outer = co_await detail::enclosing_scope{};
    std::deque<detail::nested_scope> nesting;
    std::vector<task<void>> parts;
    parts.reserve(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        st.slots.emplace_back(cancel_slot{&r});
        nesting.emplace_back(outer, st.slots.back());
        tasks[i].set_cancel_slot(&st.slots.back());
        parts.push_back(detail::any_part(std::move(tasks[i]), &st, i));
        parts.back().set_cancel_slot(&st.slots.back());
    }
    co_await when_all(std::move(parts));
    if (st.error) std::rethrow_exception(st.error);
    co_return any_result<T>{*st.winner, std::move(*st.value)};
}

// The same for tasks of any types: a variant whose index() is the winner's.
template <class... Ts>
task<std::variant<detail::part_value_t<Ts>...>> when_any(reactor& r, task<Ts>... tasks) {
    using V = std::variant<detail::part_value_t<Ts>...>;
    std::vector<task<V>> all;
    all.reserve(sizeof...(Ts));
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (all.push_back(detail::as_alternative<I, V>(std::move(tasks))), ...);
    }
    (std::index_sequence_for<Ts...>{});
    auto won = co_await when_any(r, std::move(all));
    co_return std::move(won.value);
}

}  // namespace coronet
