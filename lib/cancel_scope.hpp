#pragma once
// A cancellable scope (cancel_slot): a task awaited by another inherits it
// (coro/task.hpp); with_timeout, a spawned task's task_handle::cancel() and
// async_chat's connect each own one. One request() cancels every operation the
// scope's coroutines are suspended on, nested scopes included. Intrusive: each
// awaiter (or nested scope) owns its cancel_link, so linking allocates nothing.
// Medusa ancestor: none (asyncore closed a channel to stop it).

#include <coronet/lib/intrusive_list.hpp>
#include <coronet/lib/operation.hpp>

namespace coronet {

class reactor;
struct cancel_slot;

// One entry of a cancellable scope: a pending operation or a nested scope
// (intrusive: the awaiter or the nested scope owns it, so linking allocates nothing).
struct cancel_link {
    operation* op = nullptr;       // a pending operation, or
    cancel_slot* scope = nullptr;  // a scope nested in this one (a with_timeout inside it)
    cancel_link* prev = nullptr;
    cancel_link* next = nullptr;
};

// A cancellable scope (with_timeout uses one). Every operation its coroutines
// are suspended on is linked here (when_all can have several at once), and so
// is every scope nested in it, so one request() reaches them all.
struct cancel_slot {
    class reactor* owner = nullptr;
    bool requested = false;               // later operations in the scope finish with -ECANCELED
    bool cut_short = false;               // an operation of the scope finished with -ECANCELED
    intrusive_list<cancel_link> links{};  // pending operations and nested scopes

    // Requests cancellation of every pending operation, nested scopes included,
    // and of every later one.
    void request() noexcept;
    // Adds an operation's or a nested scope's entry.
    void link(cancel_link& l) noexcept;
    // Removes it again; does nothing when l is not linked.
    void unlink(cancel_link& l) noexcept;
};

}  // namespace coronet
