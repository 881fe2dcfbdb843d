#pragma once
// spawn(): start a task that nobody awaits, owned by the reactor; the handle it
// returns can await it or cancel it.
//
// The task starts on the reactor's next turn. An exception escaping it is
// logged with its message (`uncaptured exception in <name>: ...`: at error,
// at info for timed_out, line_too_long and message_too_long, which idle or
// hostile clients cause routinely, at debug for a peer gone away) and ends
// that task only: the loop and the other tasks go on. Its sockets close as its
// frame unwinds. A reactor destroyed with detached tasks still suspended
// destroys them (their pending operations are cancelled first). The task runs
// in its own cancellable scope: task_handle::cancel() cancels the operation it
// waits on and every later one (they finish with -ECANCELED), as with_timeout
// does at its deadline (a task given a scope of its own keeps it, and cancel()
// reaches it too). Dropping the handle detaches nothing: the task runs on.
// Medusa ancestor: asyncore.dispatcher.handle_error() and
// "uncaptured python exception, closing channel".

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <coronet/coro/task.hpp>
#include <coronet/lib/event.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

class task_group;

namespace detail {

// A child's entry in its task_group: the scope that the group's cancel() requests, and the
// links of the group's list (a spawned task's state, or a child_task's promise).
struct group_member {
    group_member() noexcept = default;
    explicit group_member(reactor& r) noexcept : slot{&r} {}
    cancel_slot slot;              // the task's scope
    task_group* group = nullptr;   // the group it belongs to, if any
    group_member* prev = nullptr;  // in the group's list
    group_member* next = nullptr;
};

// What a spawned task shares with its handles and its group (counted: the
// task holds one reference, each handle one; a group lists it only while the
// task runs, which holds it).
struct spawn_state : group_member {
    explicit spawn_state(reactor& r) noexcept : group_member(r), finished(r) {}
    cancel_link nested;  // a scope the task had already, linked into slot
    event finished;      // notified when the task ends
    bool done = false;
    unsigned refs = 1;

    void release() noexcept {
        if (--refs == 0) delete this;
    }
};

class detached {
public:
    struct promise_type : task_hook {  // first: the frame is found from it (reactor.hpp)
        reactor* owner = nullptr;
        spawn_state* state = nullptr;
        detached get_return_object() noexcept {
            return detached{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept {}  // run_detached catches everything
        void return_void() noexcept {}
        ~promise_type();
    };
    std::coroutine_handle<promise_type> h;
};
static_assert(alignof(detached::promise_type) == alignof(task_hook),
              "task_hook::frame() finds the frame of a promise aligned as the hook is");

detached run_detached(reactor& r, task<void> t, std::string name);
// The task has ended (or its frame is being destroyed): tell the handles and the group.
void finish_spawned(spawn_state* st) noexcept;
// Logs an exception that escaped a task named `name`, as spawn() does.
void log_uncaptured(const std::exception_ptr& error, std::string_view name);

}  // namespace detail

// A spawned task: co_await it to wait for its end, cancel() to cut it short.
class task_handle {
public:
    task_handle() noexcept = default;
    explicit task_handle(detail::spawn_state* st) noexcept : st_(st) {
        if (st_) ++st_->refs;
    }
    task_handle(task_handle&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
    task_handle& operator=(task_handle&& o) noexcept {
        if (this != &o) {
            if (st_) st_->release();
            st_ = std::exchange(o.st_, nullptr);
        }
        return *this;
    }
    task_handle(const task_handle&) = delete;
    task_handle& operator=(const task_handle&) = delete;
    ~task_handle() {
        if (st_) st_->release();
    }

    // True once the task has ended (returned, thrown, or been destroyed).
    bool done() const noexcept { return !st_ || st_->done; }
    // Requests cancellation: what it waits on, and everything later, finishes with -ECANCELED.
    void cancel() noexcept {
        if (st_ && !st_->done) st_->slot.request();
    }
    explicit operator bool() const noexcept { return st_ != nullptr; }
    // The shared state (task_group's use).
    detail::spawn_state* state() const noexcept { return st_; }

    // co_await: until the task has ended (its exception was logged, not rethrown).
    struct [[nodiscard]] awaiter {
        detail::spawn_state* st;
        std::optional<event::awaiter> wait{};
        bool await_ready() const noexcept { return !st || st->done; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            wait.emplace(st->finished);
            return wait->await_suspend(h);
        }
        void await_resume() noexcept {
            if (wait) (void)wait->await_resume();
        }
    };
    awaiter operator co_await() const noexcept { return awaiter{st_}; }

private:
    detail::spawn_state* st_ = nullptr;
};

// Starts t on r's next turn, detached; `name` appears in the log if it throws.
task_handle spawn(reactor& r, task<void> t, std::string name = "task");

}  // namespace coronet
