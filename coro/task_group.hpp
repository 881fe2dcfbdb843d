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
// Medusa ancestor: none (asyncore's socket_map was the only scope: a close_all()).
// Others: cppcoro's async_scope, Tokio's JoinSet and TaskTracker, Seastar's gate.

#include <cstddef>
#include <string>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/event.hpp>
#include <coronet/lib/intrusive_list.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

class task_group {
public:
    explicit task_group(reactor& r) noexcept : reactor_(r), empty_(r) {}
    // Cancels the children still running and forgets them.
    ~task_group();
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    // Starts t as a child; after close() it is refused (std::logic_error).
    task_handle spawn(task<void> t, std::string name = "task");
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
    void remove(detail::spawn_state* st) noexcept;

    reactor& reactor_;
    event empty_;  // notified when the last child ends
    intrusive_list<detail::spawn_state> children_;
    std::size_t size_ = 0;
    bool closed_ = false;
};

}  // namespace coronet
