#pragma once
// A cancellable scope (cancel_slot): a task awaited by another inherits it
// (coro/task.hpp); with_timeout, a spawned task's task_handle::cancel() and
// async_chat's connect each own one. One request() cancels every operation the
// scope's coroutines are suspended on, nested scopes included. Intrusive: each
// awaiter (or nested scope) owns its cancel_link, so linking allocates nothing.
// Medusa ancestor: none (asyncore closed a channel to stop it).

#include <cstdint>

#include <coronet/lib/intrusive_list.hpp>
#include <coronet/lib/operation.hpp>

namespace coronet {

class reactor;
class cancel_slot;

// One entry of a cancellable scope: a pending operation or a nested scope
// (intrusive: the awaiter or the nested scope owns it, so linking allocates nothing).
// The two are alternatives, so they share one pointer, its low bit set for a scope
// (24 bytes where two pointers took 32: one lives in every I/O awaiter).
class cancel_link {
public:
    // Links a pending operation, or a scope nested in this one (a with_timeout inside it).
    void set_op(operation* o) noexcept { target_ = reinterpret_cast<std::uintptr_t>(o); }
    void set_scope(cancel_slot* s) noexcept {
        target_ = reinterpret_cast<std::uintptr_t>(s) | scope_bit;
    }
    // The entry's operation (nullptr for a scope, or for nothing set).
    operation* op() const noexcept {
        return target_ & scope_bit ? nullptr : reinterpret_cast<operation*>(target_);
    }
    // The entry's operation, for an entry that never holds a scope (no test of the bit).
    operation* known_op() const noexcept { return reinterpret_cast<operation*>(target_); }
    // The entry's nested scope (nullptr for an operation).
    cancel_slot* scope() const noexcept {
        return target_ & scope_bit ? reinterpret_cast<cancel_slot*>(target_ & ~scope_bit) : nullptr;
    }

    cancel_link* prev = nullptr;
    cancel_link* next = nullptr;

private:
    static constexpr std::uintptr_t scope_bit = 1;
    std::uintptr_t target_ = 0;
};

// A cancellable scope (with_timeout uses one). Every operation its coroutines
// are suspended on is linked here (when_all can have several at once), and so
// is every scope nested in it, so one request() reaches them all.
// Its two flags ride in the low bits of the reactor's pointer (16 bytes where a pointer, two
// bools and the list took 24: one is in every child of a task_group, a server's connections).
class cancel_slot {
public:
    cancel_slot() noexcept = default;
    // A scope whose pending operations are cancelled on `owner` (none: they are only flagged).
    explicit cancel_slot(class reactor* owner) noexcept
        : bits_(reinterpret_cast<std::uintptr_t>(owner)) {}

    class reactor* owner() const noexcept {
        return reinterpret_cast<class reactor*>(bits_ & ~flag_bits);
    }
    void set_owner(class reactor* r) noexcept {
        bits_ = reinterpret_cast<std::uintptr_t>(r) | (bits_ & flag_bits);
    }
    // Later operations in the scope finish with -ECANCELED.
    bool requested() const noexcept { return bits_ & requested_bit; }
    // Sets requested() alone, cancelling nothing pending (a scope nested in one cancelled
    // already has nothing pending yet).
    void mark_requested() noexcept { bits_ |= requested_bit; }
    // An operation of the scope finished with -ECANCELED.
    bool cut_short() const noexcept { return bits_ & cut_short_bit; }
    void mark_cut_short() noexcept { bits_ |= cut_short_bit; }

    intrusive_list<cancel_link> links{};  // pending operations and nested scopes

    // Requests cancellation of every pending operation, nested scopes included,
    // and of every later one.
    void request() noexcept;
    // Adds an operation's or a nested scope's entry.
    void link(cancel_link& l) noexcept;
    // Removes it again; does nothing when l is not linked.
    void unlink(cancel_link& l) noexcept;

private:
    static constexpr std::uintptr_t requested_bit = 1, cut_short_bit = 2;
    static constexpr std::uintptr_t flag_bits = requested_bit | cut_short_bit;
    std::uintptr_t bits_ = 0;  // the owner, and the flags in its low bits (reactor aligned to 8)
};

// The scope bit is free: both targets are aligned to at least two bytes.
static_assert(alignof(operation) >= 2 && alignof(cancel_slot) >= 2);
static_assert(sizeof(cancel_link) == 3 * sizeof(void*));
static_assert(sizeof(cancel_slot) == 2 * sizeof(void*));

}  // namespace coronet
