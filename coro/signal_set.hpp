#pragma once
// signal_set: POSIX signals as awaitables. `co_await set.wait()` yields the
// number of the next signal of the set (SIGTERM, SIGINT, SIGHUP, ...).
//
// The set blocks its signals in the calling thread and reads them from a
// signalfd, which every backend can wait on (it is one more readable fd), so
// no handler runs and nothing async-signal-unsafe can happen. A signal sent to
// the process goes to exactly one thread that does not block it, or, when all
// block it, stays pending until one signalfd reads it: with several threads,
// block the signals before starting them (block_signals(), which runtime does)
// so that no thread dies of one, and have one set wait for them. Several sets,
// in several reactors, may coexist; each reads its own signalfd, and a signal
// is taken by exactly one of them (a signal aimed at a thread, by that thread's).
// Medusa ancestor: none (asyncore left signals to the application).
// Others: Asio's signal_set, Tokio's tokio::signal, Seastar's handle_signal.

#include <initializer_list>

#include <signal.h>

#include <coronet/coro/task.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

// Blocks the signals in the calling thread and in every thread it starts from now on.
void block_signals(std::initializer_list<int> signals);

class signal_set {
public:
    // Blocks the signals in the calling thread and opens a signalfd for them on r.
    signal_set(reactor& r, std::initializer_list<int> signals);
    ~signal_set();
    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;

    // The next signal's number; cancellable like any wait (then throws operation_canceled).
    task<int> wait();
    // The signalfd (for a runtime's own poll()).
    int native_handle() const noexcept { return fd_; }

private:
    reactor& reactor_;
    int fd_ = -1;
};

}  // namespace coronet
