#pragma once
// task_group: a scope for spawned tasks; closing it cancels its children and
// waits until every one has ended.
//
// spawn() starts a child on the group's reactor (as coronet::spawn does: an
// escaping exception is logged) and keeps it listed until it ends. wait()
// waits for the children to end by themselves; cancel() cancels each one's
// pending operation and every later one; close() is cancel() then wait(),
// and refuses new children from then on. A group destroyed with children
// still running cancels them and forgets them (they run on, detached, until
// they unwind). Nothing is allocated beyond each child's spawn state.
//
// start() takes a child_task instead: a coroutine whose own promise is the
// child's entry (its scope, its hook in the reactor, its links in the group), so
// that a child nobody awaits or cancels alone (a server's connection) costs its
// frame only: no spawn state, no wrapper frame, no handle. It is otherwise
// a spawned child like the others: started on the reactor's next turn, listed
// until it ends, cancelled by cancel() and close(), destroyed with a reactor
// destroyed while it is suspended, and an exception escaping it is logged
// (`uncaptured exception in task: ...`) and ends it only.
// Medusa ancestor: none (asyncore's socket_map was the only scope: a close_all()).
// Others: cppcoro's async_scope, Tokio's JoinSet and TaskTracker, Seastar's gate.

#include <coroutine>
#include <cstddef>
#include <string>
#include <utility>

#include <coronet/coro/frame_pool.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/event.hpp>
#include <coronet/lib/intrusive_list.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

class task_group;

// A coroutine for task_group::start(): lazy, and its frame frees itself when it ends.
// Tasks it awaits run in its scope (the group's cancel() reaches them).
class [[nodiscard]] child_task {
public:
    // The reactor's hook first: the frame is found from it (reactor.hpp). In the reactor's
    // list once started.
    struct promise_type : task_hook, detail::group_member {
        // Frames are recycled per thread, as a task's are (frame_pool.hpp).
        static void* operator new(std::size_t n) { return detail::frame_allocate(n); }
        static void operator delete(void* p, std::size_t n) noexcept {
            detail::frame_deallocate(p, n);
        }

        child_task get_return_object() noexcept {
            return child_task{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept;
        void return_void() noexcept {}
        // The scope the tasks it awaits inherit.
        coronet::cancel_slot* cancel_slot() noexcept { return &slot; }
        // Leaves the reactor's list and the group's (it ended, or is destroyed suspended).
        ~promise_type();
    };

    child_task(child_task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    child_task(const child_task&) = delete;
    child_task& operator=(const child_task&) = delete;
    child_task& operator=(child_task&&) = delete;
    // A child never started (refused by a closed group) is freed unrun.
    ~child_task() {
        if (h_) h_.destroy();
    }

private:
    friend class task_group;
    explicit child_task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    std::coroutine_handle<promise_type> h_;
};

static_assert(alignof(child_task::promise_type) == alignof(task_hook),
              "task_hook::frame() finds the frame of a promise aligned as the hook is");

class task_group {
public:
    explicit task_group(reactor& r) noexcept : reactor_(r), empty_(r) {}
    // Cancels the children still running and forgets them.
    ~task_group();
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    // Starts t as a child; after close() it is refused (std::logic_error).
    task_handle spawn(task<void> t, std::string name = "task");
    // Starts t as a child with no handle (see child_task); after close() it is refused
    // (std::logic_error) and t is freed unrun.
    void start(child_task t);
    // Children running now.
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    // Cancels every child (they finish their pending operation with -ECANCELED).
    void cancel() noexcept;
    // Waits until every child has ended (new ones included).
    task<void> wait();
    // Refuses new children, cancels the running ones and waits for them to end.
    task<void> close();
    bool closed() const noexcept { return closed_; }
    reactor& context() const noexcept { return reactor_; }

private:
    friend void detail::finish_spawned(detail::spawn_state*) noexcept;
    friend child_task::promise_type;
    // Takes an ended child off the list.
    void remove(detail::group_member& child) noexcept;

    reactor& reactor_;
    event empty_;  // notified when the last child ends
    intrusive_list<detail::group_member> children_;
    std::size_t size_ = 0;
    bool closed_ = false;
};

}  // namespace coronet
