#include <coronet/lib/reactor.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>
#include <thread>

#include <time.h>
#include <unistd.h>

#include <coronet/lib/epoll_backend.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/select_backend.hpp>
#include <coronet/lib/uring_backend.hpp>

namespace coronet {

std::string_view to_string(backend_kind kind) noexcept {
    switch (kind) {
    case backend_kind::io_uring: return "io_uring";
    case backend_kind::epoll: return "epoll";
    case backend_kind::select: return "select";
    case backend_kind::automatic: break;
    }
    return "auto";
}

std::optional<backend_kind> parse_backend_kind(std::string_view name) noexcept {
    if (name == "auto" || name.empty()) return backend_kind::automatic;
    if (name == "io_uring" || name == "uring") return backend_kind::io_uring;
    if (name == "epoll") return backend_kind::epoll;
    if (name == "select") return backend_kind::select;
    return std::nullopt;
}

namespace {

std::unique_ptr<backend> make_uring(const reactor_options& o, buffer_pool& pool) {
    if (o.simulate_uring_failure)
        throw std::system_error(ENOSYS, std::system_category(),
                                "io_uring_setup (simulated failure)");
    std::size_t zc = o.uring_send_zc_min;
    if (const char* env = std::getenv("CORONET_SEND_ZC"); env && zc == 0)
        zc = std::strtoull(env, nullptr, 10);
    auto b = std::make_unique<uring_backend>(
        pool, uring_options{.entries = o.uring_entries, .send_zc_min = zc});
    if (log_enabled(log_level::debug)) log(log_level::debug, "io_uring features: " + b->features());
    return b;
}

template <class Readiness>
std::unique_ptr<backend> make_readiness(buffer_pool& pool) {
    return std::make_unique<Readiness>(pool);
}

// The fallback order lives here and only here: io_uring, then epoll, then select.
// pool: the reactor's provided buffers, lent to the backend (a backend that
// fails to build lets go of it).
std::unique_ptr<backend> make_backend(reactor_options o, buffer_pool& pool, backend_kind& chosen) {
    if (o.backend == backend_kind::automatic) {
        if (const char* env = std::getenv("CORONET_BACKEND")) {
            auto k = parse_backend_kind(env);
            if (!k)
                throw std::system_error(make_error_code(errc::backend_unavailable),
                                        std::string("CORONET_BACKEND=") + env +
                                            " (expected io_uring, epoll or select)");
            o.backend = *k;
        }
        // Fault injection from outside, for programs that have no flag for it: the fallback
        // path and its warning can be tested end to end on a machine that has io_uring.
        if (const char* env = std::getenv("CORONET_SIMULATE_URING_FAILURE");
            env && *env && std::string_view(env) != "0")
            o.simulate_uring_failure = true;
    }
    chosen = o.backend;
    switch (o.backend) {
    case backend_kind::io_uring: return make_uring(o, pool);
    case backend_kind::epoll: return make_readiness<epoll_backend>(pool);
    case backend_kind::select: return make_readiness<select_backend>(pool);
    case backend_kind::automatic: break;
    }
    try {
        chosen = backend_kind::io_uring;
        return make_uring(o, pool);
    } catch (const std::system_error& e) {
        log(log_level::warning,
            std::string("io_uring unavailable (") + e.what() + "); falling back to epoll");
    }
    try {
        chosen = backend_kind::epoll;
        return make_readiness<epoll_backend>(pool);
    } catch (const std::system_error& e) {
        log(log_level::warning,
            std::string("epoll unavailable (") + e.what() + "); falling back to select");
    }
    chosen = backend_kind::select;
    return make_readiness<select_backend>(pool);
}

}  // namespace

reactor::clock::time_point coarse_now() noexcept {
    ::timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return reactor::clock::time_point(std::chrono::duration_cast<reactor::clock::duration>(
        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

bool backend_available(backend_kind kind) {
    try {
        backend_kind chosen;
        buffer_pool none;  // no blocks: no buffer ring to register for a look
        make_backend({.backend = kind}, none, chosen);
        return true;
    } catch (const std::system_error&) {
        return false;
    }
}

reactor::reactor(reactor_options options)
    : pool_(options.provided_buffers, options.provided_buffer_size),
      max_inline_(options.max_inline_completions) {
    // In the body, not the initializer list: kind_ is declared after backend_,
    // so its default initializer would overwrite the choice make_backend() wrote.
    backend_ = make_backend(options, pool_, kind_);
    log(log_level::info, std::string("reactor backend: ") + std::string(backend_->name()));
}

reactor::~reactor() {
    // A stop() on another thread (or in a signal handler there) may still be
    // inside backend_->wake(): let it finish before the backend goes.
    while (stopping_.load(std::memory_order_acquire) > 0)
        std::this_thread::yield();
    // Detached tasks still suspended die with their reactor; destroying a frame
    // abandons its pending operation (cancel, then wait for the kernel).
    while (task_hook* t = tasks_.front()) {
        remove_task(*t);
        t->frame().destroy();
    }
}

bool reactor::start(operation& op) {
    op.state = op_state::pending;
    ++pending_;
    if (op.code == op_code::timeout) {
        timers_.push(op);
        return false;
    }
    if (!backend_->start(op)) return false;
    if (++inline_this_turn_ <= max_inline_) {  // finished now: the awaiter resumes at once
        op.state = op_state::idle;
        --pending_;
        return true;
    }
    done_.push_back(op);  // a busy fd: let the others run first
    return false;
}

void reactor::cancel(operation& op) noexcept {
    if (op.state == op_state::held) {
        if (op.performer) op.performer->cancel(op);  // null: finished already, keeps its result
        return;
    }
    if (op.state != op_state::pending) return;
    if (op.code == op_code::timeout) {
        if (!op.in_timer_heap) return;  // already expired, queued for resumption
        timers_.remove(op);
        op.result = -ECANCELED;
        done_.push_back(op);
        return;
    }
    if (backend_->cancel(op)) done_.push_back(op);
}

void reactor::complete(operation& op, int result) noexcept {
    if (op.state != op_state::pending || op.code != op_code::timeout || !op.in_timer_heap) return;
    timers_.remove(op);
    op.result = result;
    done_.push_back(op);
}

void reactor::hold(operation& op, op_performer& by) noexcept {
    op.state = op_state::held;
    op.performer = &by;
    ++pending_;
}

void reactor::finish(operation& op, int result) noexcept {
    op.result = result;
    // Still held until resumed, but the performer is done with it (and may die
    // now): a cancel or an abandon in between must not reach it.
    op.performer = nullptr;
    done_.push_back(op);
}

void reactor::abandon(operation& op) noexcept {
    if (op.state == op_state::held) {
        if (op.performer) op.performer->abandon(op);  // it lets go of op's buffers now
        op.state = op_state::idle;
        --pending_;
        if (!done_.remove(op)) resuming_.remove(op);
        return;
    }
    if (op.state != op_state::pending) return;
    op.state = op_state::idle;
    --pending_;
    // A recv_provided that finished with a block nobody will consume gives it back.
    auto drop_block = [this, &op] {
        if (op.code == op_code::recv_provided && op.buffer_id >= 0) {
            recycle(op.buffer_id);
            op.buffer_id = -1;
        }
    };
    if (done_.remove(op) || resuming_.remove(op)) {  // finished, not yet resumed
        drop_block();
        return;
    }
    if (op.code == op_code::timeout) {
        timers_.remove(op);
        return;
    }
    if (backend_->cancel(op)) return;
    // The kernel may still write into op's buffers: wait for its completion,
    // keeping every other completion for the next turn.
    for (;;) {
        op_list got;
        backend_->wait(std::chrono::milliseconds(10), got);
        bool found = got.remove(op);
        done_.splice(got);
        if (found) {
            drop_block();
            return;
        }
    }
}

// A multishot queue's arm, armed or waiting in the backend to be (re)submitted:
// both must end before the queue may die (the kernel, or the backend's list,
// would keep a pointer into it). Cancels it and waits for its last CQE;
// completions of others wait for the next turn.
void reactor::end_arm(operation& arm, bool queued) noexcept {
    if ((arm.state != op_state::pending && !queued) || backend_->cancel(arm)) return;
    while (arm.state == op_state::pending) {
        op_list got;
        backend_->wait(std::chrono::milliseconds(10), got);
        done_.splice(got);
    }
}

void reactor::close_acceptor(accept_queue& q) noexcept {
    // Accepts still waiting finish first (resumed next turn) and forget q, as a closing
    // receiver's do: left waiting, the arm's last CQE would see them and arm again, and
    // end_arm would wait on that new arm for ever (or q would die under them).
    while (operation* w = q.waiters.pop_front()) {
        w->acceptor = nullptr;
        w->result = -ECANCELED;
        done_.push_back(*w);
    }
    end_arm(q.arm, q.queued);
    for (int fd : q.ready)
        if (fd >= 0) ::close(fd);
    q.ready.clear();
}

void reactor::close_receiver(recv_queue& q) noexcept {
    // Receives still waiting would otherwise wait on an arm that is going:
    // they finish (resumed next turn) and forget q, which may die before then.
    while (operation* w = q.waiters.pop_front()) {
        w->receiver = nullptr;
        w->buffer_id = -1;
        w->result = -ECANCELED;
        done_.push_back(*w);
    }
    // Then the multishot receive ends (bytes that raced the cancel are queued in q);
    // no CQE may reach q after this.
    if ((q.armed || q.queued) && !backend_->end_receiver(q)) {
        while (q.armed) {
            op_list got;
            backend_->wait(std::chrono::milliseconds(10), got);
            done_.splice(got);
        }
    }
    while (!q.empty())
        recycle(q.pop().buffer_id);
    q.overflow.reset();
}

void detail::close_receiver(reactor& r, recv_queue& q) noexcept { r.close_receiver(q); }

void reactor::post(std::coroutine_handle<> h) { ready_.push_back(h); }

void reactor::post(operation& op) noexcept {
    op.state = op_state::held;  // held by nobody (no performer): abandon() takes it off done_
    op.performer = nullptr;
    op.result = 0;
    ++pending_;
    done_.push_back(op);
}

void reactor::unpost(std::coroutine_handle<> h) noexcept {
    // Replaced, not erased: run_once() may be iterating ready_swap_ right now.
    for (auto* list : {&ready_, &ready_swap_})
        for (auto& r : *list)
            if (r.address() == h.address()) r = std::noop_coroutine();
}

void reactor::resume_done() {
    resuming_.splice(done_);
    while (operation* op = resuming_.pop_front()) {
        op->state = op_state::idle;
        --pending_;
        op->notify();
    }
}

void reactor::run_once() {
    inline_this_turn_ = 0;
    std::chrono::nanoseconds timeout = timers_.next_timeout();
    if (!done_.empty() || !ready_.empty() || stopped()) timeout = std::chrono::nanoseconds(0);
    backend_->wait(timeout, done_);  // the only place that may block
    resume_done();                   // completions: asyncore's handle_read/handle_write
    expire_timers();                 // deadlines and sleeps
    resume_done();
    ready_swap_.swap(ready_);  // spawned and posted coroutines
    for (auto h : ready_swap_)
        h.resume();
    ready_swap_.clear();
}

void reactor::run() {
    while (!stopped() && (pending_ > 0 || !ready_.empty()))
        run_once();
}

void reactor::run_for(clock::duration d) {
    operation deadline;
    deadline.code = op_code::timeout;
    deadline.deadline = clock::now() + d;
    deadline.set_waiter(std::noop_coroutine());
    start(deadline);
    while (!stopped() && deadline.state == op_state::pending && (pending_ > 1 || !ready_.empty()))
        run_once();
    abandon(deadline);
}

void reactor::stop() noexcept {
    stopping_.fetch_add(1, std::memory_order_acq_rel);  // before the flag the loop may see
    stop_.store(true, std::memory_order_release);
    backend_->wake();
    stopping_.fetch_sub(1, std::memory_order_release);
}

void reactor::add_channel(int fd, std::string_view kind) {
    ++channels_;
    if (log_enabled(log_level::debug))
        log(log_level::debug,
            "adding channel <" + std::string(kind) + " fd=" + std::to_string(fd) + ">");
}

void reactor::remove_channel(int fd, std::string_view kind) {
    --channels_;
    if (log_enabled(log_level::debug))
        log(log_level::debug,
            "closing channel " + std::to_string(fd) + ":<" + std::string(kind) + ">");
}

void reactor::add_task(task_hook& hook) noexcept {
    tasks_.push_front(hook);
    ++task_count_;
}

void reactor::remove_task(task_hook& hook) noexcept {
    if (!tasks_.remove(hook)) return;  // not linked
    --task_count_;
}

// --- timers (lib/timer_heap.hpp) ---

void reactor::expire_timers() {
    if (timers_.empty()) return;
    auto now = clock::now();
    while (!timers_.empty() && timers_.top()->deadline <= now) {
        operation* op = timers_.top();
        timers_.remove(*op);
        op->result = 0;
        done_.push_back(*op);
    }
}

}  // namespace coronet
