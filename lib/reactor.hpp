#pragma once
// The reactor: one loop per thread, the backend it drives, timers, and the
// registry of live channels.
//
// An awaiter fills an operation and calls start(); the reactor hands it to the
// backend and, when it finishes, resumes the awaiting coroutine. run_once() is
// one turn: wait for completions (the only place that blocks), resume their
// coroutines, fire expired timers, resume posted coroutines. The backend is
// chosen at run time: io_uring, else epoll, else select; CORONET_BACKEND or
// reactor_options::backend forces one. CORONET_SIMULATE_URING_FAILURE=1 makes
// automatic selection act as if io_uring setup failed (the environment's way to
// set reactor_options::simulate_uring_failure, for a program that has no flag
// for it). A reactor belongs to the thread that builds it (io_uring is set up single-issuer): build
// it on the thread that runs it; only stop() may be called from elsewhere. Medusa ancestor:
// asyncore.loop(), asyncore.socket_map.

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <coronet/lib/accept_queue.hpp>
#include <coronet/lib/backend.hpp>
#include <coronet/lib/buffer_pool.hpp>
#include <coronet/lib/cancel_scope.hpp>
#include <coronet/lib/intrusive_list.hpp>
#include <coronet/lib/operation.hpp>
#include <coronet/lib/recv_queue.hpp>
#include <coronet/lib/run_driver.hpp>
#include <coronet/lib/timer_heap.hpp>

namespace coronet {

// Which backend a reactor uses; automatic = io_uring, else epoll, else select.
enum class backend_kind { automatic, io_uring, epoll, select };

// "io_uring", "epoll", "select" or "auto".
std::string_view to_string(backend_kind kind) noexcept;

// Parses "auto", "io_uring" (or "uring"), "epoll", "select"; nullopt otherwise.
std::optional<backend_kind> parse_backend_kind(std::string_view name) noexcept;

// True when a reactor of this kind can be built on this machine.
bool backend_available(backend_kind kind);

// How a reactor is built.
struct reactor_options {
    backend_kind backend = backend_kind::automatic;  // CORONET_BACKEND overrides automatic
    unsigned uring_entries = 256;                    // io_uring SQ size
    // io_uring: sends of at least this many bytes use SEND_ZC (zero-copy); 0 = never.
    // CORONET_SEND_ZC=BYTES sets it when left at 0. Figures: benchmarks/STEPS.md.
    std::size_t uring_send_zc_min = 0;
    bool simulate_uring_failure = false;  // fault injection: io_uring setup fails
                                          // (CORONET_SIMULATE_URING_FAILURE=1, when automatic)
    int max_inline_completions = 64;      // per turn, so one busy fd cannot starve the rest
    // --- provided buffers (socket::recv_provided, the channel's receives) ---
    unsigned provided_buffers = 64;                // blocks shared by every connection (0: none)
    std::size_t provided_buffer_size = 16 * 1024;  // bytes per block
};

class reactor;

namespace detail {
// A receiver is closing (or dropping q): ends its multishot receive (waiting
// until the kernel has let go of it) and recycles the blocks of results never
// taken. q can then be destroyed or used again. Safe when nothing is armed, on
// every backend. Cancel a recv_provided still waiting on q first (the
// readiness backends park it on the fd, where q cannot reach it); on io_uring
// one left waiting in q finishes with -ECANCELED. receive_room calls it; not
// public API (the room is how a connection receives).
void close_receiver(reactor& r, recv_queue& q) noexcept;
// A datagram socket is closing: the backend ends its multishot receive (waiting
// until the kernel has let go of q's buffer ring) and frees the ring
// (backend::close_datagrams). datagram_socket calls it (lib/datagram_socket.cpp
// defines it); not public API.
void close_datagrams(reactor& r, datagram_queue& q) noexcept;
}  // namespace detail

// A detached task's entry in its reactor (intrusive, so adding and removing cost nothing).
// It is the first base of its coroutine's promise, which is aligned as a pointer (as the hook
// is): the frame is then found from the hook's own address, as from_promise finds it, and the
// hook keeps no copy of it.
struct task_hook {
    task_hook* prev = nullptr;
    task_hook* next = nullptr;

    // The coroutine whose promise begins with this hook.
    std::coroutine_handle<> frame() noexcept {
        return std::coroutine_handle<task_hook>::from_promise(*this);
    }
};

class reactor {
public:
    using clock = std::chrono::steady_clock;

    // Builds the backend; throws std::system_error when a forced one is unavailable.
    explicit reactor(reactor_options options = {});
    ~reactor();
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    // The backend in use: "io_uring", "epoll" or "select".
    std::string_view backend_name() const noexcept { return backend_->name(); }
    backend_kind kind() const noexcept { return kind_; }

    // Starts op (its waiter or on_done set). True: it finished at once, op.result is set.
    bool start(operation& op);
    // Requests cancellation; op still finishes (and resumes its waiter) once.
    void cancel(operation& op) noexcept;
    // Finishes a pending timeout operation now with `result` (an event firing);
    // no effect on one that has already expired or been cancelled.
    void complete(operation& op, int result) noexcept;
    // op's owner is dying while op may be pending: cancel it and wait until the
    // kernel is done with it, without resuming its waiter.
    void abandon(operation& op) noexcept;
    // An operation performed outside the backend (a transport: TLS, an in-memory
    // pipe) is pending in `by` from hold() until finish(); cancel() and
    // abandon() reach it through `by`.
    void hold(operation& op, op_performer& by) noexcept;
    // A held operation finished with `result`: resumed (or its on_done called)
    // on this turn, like a backend's completion.
    void finish(operation& op, int result) noexcept;
    // Resumes h on a later turn of this loop (this thread only).
    void post(std::coroutine_handle<> h);
    // Calls op back (its on_done, or resumes its waiter) with result 0 among the
    // completions of a later turn, as if it had finished: a callback posted with no
    // coroutine frame. abandon() withdraws it.
    void post(operation& op) noexcept;
    // Withdraws every scheduled resumption of h (its frame is about to be destroyed).
    void unpost(std::coroutine_handle<> h) noexcept;

    // One turn of the loop: may block until something happens.
    void run_once();
    // Turns until stop() or until there is nothing left to wait for.
    void run();
    // Turns until stop(), nothing left, or d elapsed.
    void run_for(clock::duration d);
    // Makes run()/run_for()/run(task) return after the current turn, now or when
    // next called: a stop is kept until restart(), so one that arrives before
    // run() starts is not lost. Callable from any thread and from a signal
    // handler (an atomic store and an eventfd write); the reactor's destructor
    // waits for a stop() still in progress on another thread.
    void stop() noexcept;
    bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }
    // Clears a previous stop() so the loop can run again.
    void restart() noexcept { stop_.store(false, std::memory_order_release); }

    // Runs an awaitable (a task) to completion on this loop and returns its value
    // (or rethrows its exception).
    template <class Awaitable>
    decltype(auto) run(Awaitable&& awaitable);

    // The channel registry (asyncore's socket_map): sockets add and remove themselves.
    void add_channel(int fd, std::string_view kind);
    void remove_channel(int fd, std::string_view kind);
    std::size_t channel_count() const noexcept { return channels_; }

    // Detached tasks (spawn): the reactor destroys those still suspended when it dies.
    void add_task(task_hook& hook) noexcept;
    void remove_task(task_hook& hook) noexcept;
    std::size_t task_count() const noexcept { return task_count_; }

    // Tells the backend that fd is about to be closed (sockets call it).
    void backend_forget(int fd) noexcept { backend_->forget(fd, done_); }

    // --- provided buffers (the reactor's buffer_pool, lent to its backend) ---
    // Gives back the block of a finished recv_provided once its bytes are consumed.
    void recycle(int buffer_id) noexcept {
        if (buffer_id >= 0) pool_.give_back(static_cast<std::uint16_t>(buffer_id));
    }
    // Blocks handed out by finished recv_provided operations and not yet recycled.
    std::size_t buffers_in_use() const noexcept { return pool_.in_use(); }
    // True when recv_provided with a recv_queue keeps one multishot receive armed.
    bool multishot_receive() const noexcept { return backend_->capabilities().multishot_receive; }
    // Bytes per provided block (0 when the reactor has none).
    std::size_t provided_buffer_size() const noexcept { return pool_.size(); }

    // Operations started and not yet resumed (timers included).
    std::size_t pending_count() const noexcept { return pending_; }

private:
    // The multishot queues' ends are not public API: a listening socket closes
    // its acceptor, a receive room its receiver (detail::close_receiver).
    friend class socket;
    friend void detail::close_receiver(reactor& r, recv_queue& q) noexcept;
    friend void detail::close_datagrams(reactor& r, datagram_queue& q) noexcept;
    // A listener is closing: ends its multishot accept (waiting until the kernel
    // has let go of it) and closes the connections accepted into q and never taken.
    void close_acceptor(accept_queue& q) noexcept;
    // See detail::close_receiver.
    void close_receiver(recv_queue& q) noexcept;
    void resume_done();
    void end_arm(operation& arm, bool queued) noexcept;
    void expire_timers();

    buffer_pool pool_;  // before backend_, which borrows it
    std::unique_ptr<backend> backend_;
    backend_kind kind_ = backend_kind::automatic;
    int max_inline_ = 64;
    int inline_this_turn_ = 0;
    std::size_t pending_ = 0;
    std::size_t channels_ = 0;
    op_list done_;       // finished, waiting to be resumed
    op_list resuming_;   // the batch being resumed now
    timer_heap timers_;  // pending timeouts, earliest first
    std::vector<std::coroutine_handle<>> ready_, ready_swap_;
    intrusive_list<task_hook> tasks_;  // detached tasks still suspended
    std::size_t task_count_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> stopping_{0};  // stop() calls in progress
};

// reactor::clock's now() read from CLOCK_MONOTONIC_COARSE: the same clock without the TSC read,
// up to a tick (a few milliseconds) behind. Plenty for deadlines and ttls of seconds, and much
// cheaper to read once per request (the precise read was ~5% of http_server's user time on /hello).
reactor::clock::time_point coarse_now() noexcept;

template <class Awaitable>
decltype(auto) reactor::run(Awaitable&& awaitable) {
    using T = detail::await_result_t<Awaitable>;
    auto driver = detail::drive<std::remove_cvref_t<Awaitable>>(std::forward<Awaitable>(awaitable));
    auto h = driver.handle();
    post(h);
    while (!h.done() && !stopped())
        run_once();
    auto& p = h.promise();
    if (p.error) std::rethrow_exception(p.error);
    if (!h.done()) throw std::runtime_error("reactor::run: stopped before the task finished");
    if constexpr (std::is_void_v<T>)
        return;
    else
        return T(std::move(*p.value));
}

}  // namespace coronet
