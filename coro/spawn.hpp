#pragma once
// spawn(): start a task that nobody awaits, owned by the reactor.
//
// The task starts on the reactor's next turn. An exception escaping it is
// logged with its message (`uncaptured exception in <name>: ...`: at error,
// at info for timed_out, line_too_long and message_too_long, which idle or
// hostile clients cause routinely, at debug for a peer gone away) and ends
// that task only: the loop and the other tasks go on. Its sockets close as its
// frame unwinds. A reactor destroyed with detached tasks still suspended
// destroys them (their pending operations are cancelled first).
// Medusa ancestor: asyncore.dispatcher.handle_error() and
// "uncaptured python exception, closing channel".

#include <string>
#include <string_view>

#include <coronet/coro/task.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

namespace detail {

class detached {
public:
    struct promise_type {
        reactor* owner = nullptr;
        task_hook hook;
        detached get_return_object() noexcept {
            return detached{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept {}  // run_detached catches everything
        void return_void() noexcept {}
        ~promise_type() {
            if (owner) owner->remove_task(hook);
        }
    };
    std::coroutine_handle<promise_type> h;
};

detached run_detached(reactor& r, task<void> t, std::string name);

}  // namespace detail

// Starts t on r's next turn, detached; `name` appears in the log if it throws.
void spawn(reactor& r, task<void> t, std::string name = "task");

}  // namespace coronet
