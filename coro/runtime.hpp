#pragma once
// runtime: thread-per-core. N reactors on N threads, started and stopped as
// one, with a thread-safe post() to any of them.
//
// run(body) blocks the stop signals (SIGINT, SIGTERM by default) in the
// calling thread, so the threads it starts inherit the block, then starts the
// threads one at a time: each builds its reactor and runs body(worker) on it.
// A body calls worker::started() once it is set up (its listeners bound);
// the next thread starts only then, so thread 0 can bind port 0 and the
// others join the port it got (listen_on(), with SO_REUSEPORT: the kernel
// spreads the connections). A body that throws before started() makes run()
// stop the threads already running and rethrow the error: start-up errors
// reach main(). Once all are up, run() waits for a stop signal (a signalfd,
// read on the calling thread) or stop(), then tells every worker (stopping(),
// co_await stopped()); each body shuts down its own way and returns, and
// run() returns when all have. post(i, fn) runs fn on thread i's loop, from
// any thread: a mutex-guarded queue and an eventfd the loop waits on (one
// more readable fd, so every backend has it; IORING_OP_MSG_RING would save
// the eventfd write on io_uring, not done). worker::run_on(i, fn) is post()
// there and back: it runs fn on thread i and resumes the caller on its own.
// Medusa ancestor: none (asyncore was one thread).
// Others: Seastar's smp::submit_to, Tokio's multi-thread runtime.

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <coronet/coro/task.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/event.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

// How a runtime is built.
struct runtime_options {
    unsigned threads = 1;                            // reactors, one thread each
    reactor_options reactor{};                       // every thread's reactor
    std::vector<int> stop_signals{SIGINT, SIGTERM};  // stop every thread
};

class runtime;

// One thread of a runtime, as its body sees it.
class worker {
public:
    // 0 .. threads-1.
    unsigned index() const noexcept { return index_; }
    // This thread's reactor.
    reactor& loop() const noexcept { return *loop_; }
    runtime& owner() const noexcept { return owner_; }
    // The addresses to listen on: `wanted` on thread 0, thread 0's bound ones on the others.
    std::vector<address> listen_on(const std::vector<address>& wanted) const;
    // Set up (listeners bound): the next thread may start. Thread 0 passes its bound addresses.
    void started(std::vector<address> bound = {});
    // True once the runtime is stopping.
    bool stopping() const noexcept { return stopping_; }
    // co_await: until the runtime stops (at once if it has).
    task<void> stopped();
    // co_await: runs fn on thread `to`'s loop, then resumes here (Seastar's submit_to). fn
    // must own what it uses (a shared_ptr): the awaiter may be gone when it runs. Never
    // resumes if `to` has ended.
    task<void> run_on(unsigned to, std::function<void()> fn);

private:
    friend class runtime;
    worker(runtime& owner, unsigned index);
    task<void> main(std::function<task<void>(worker&)> body);
    task<void> mailbox_loop();
    void drain_mailbox();

    runtime& owner_;
    unsigned index_;
    reactor* loop_ = nullptr;
    std::unique_ptr<event> stop_;
    bool stopping_ = false;
    // the mailbox: post() from any thread
    std::mutex mutex_;
    std::vector<std::function<void()>> inbox_;
    bool open_ = true;  // false once the loop has ended: posts are dropped
    int wake_fd_ = -1;
};

class runtime {
public:
    explicit runtime(runtime_options options = {});
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    // Starts the threads, calls started() once all are up (on this thread), waits for a stop
    // signal or stop(), stops them all and returns once every body has; rethrows a body's
    // start-up error (the others stopped first).
    void run(std::function<task<void>(worker&)> body, std::function<void()> started = {});
    // Asks every thread to stop (any thread; not from a signal handler).
    void stop() noexcept;
    // Runs fn on thread i's loop, soon (any thread). Dropped if that loop has ended.
    void post(unsigned i, std::function<void()> fn);
    // Threads.
    unsigned size() const noexcept { return unsigned(workers_.size()); }
    // The signal that stopped the runtime (0: stop(), or not stopped yet).
    int stop_signal() const noexcept { return signal_.load(std::memory_order_acquire); }
    // The backend the threads' reactors use (once run() has started them).
    std::string backend_name() const;
    // The addresses thread 0 reported to started().
    std::vector<address> addresses() const;

private:
    friend class worker;
    void thread_main(worker* w, std::function<task<void>(worker&)> body);
    void report_started(worker* w, std::vector<address> bound);
    void stop_workers() noexcept;

    runtime_options options_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::vector<std::thread> threads_;
    mutable std::mutex mutex_;  // guards the start-up hand-off below
    std::condition_variable changed_;
    unsigned started_ = 0;            // workers that called started() (or ended)
    std::exception_ptr error_;        // the first body's exception
    std::vector<address> addresses_;  // thread 0's bound addresses
    std::string backend_;
    unsigned running_ = 0;  // threads whose body has not ended
    std::atomic<int> signal_{0};
    std::atomic<bool> stopped_{false};
    int stop_fd_ = -1;  // eventfd: stop() wakes run()
};

}  // namespace coronet
