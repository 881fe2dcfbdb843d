#include <coronet/coro/runtime.hpp>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <coronet/coro/spawn.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/socket.hpp>

namespace coronet {
namespace {

int make_eventfd() {
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "eventfd");
    return fd;
}

void signal_eventfd(int fd) noexcept {
    std::uint64_t one = 1;
    while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void clear_eventfd(int fd) noexcept {
    std::uint64_t n;
    while (::read(fd, &n, sizeof n) < 0 && errno == EINTR) {
    }
}

}  // namespace

// --- worker ----------------------------------------------------------------------------

worker::worker(runtime& owner, unsigned index)
    : owner_(owner), index_(index), wake_fd_(make_eventfd()) {}

std::vector<address> worker::listen_on(const std::vector<address>& wanted) const {
    if (index_ == 0) return wanted;
    auto bound = owner_.addresses();
    return bound.empty() ? wanted : bound;
}

void worker::started(std::vector<address> bound) { owner_.report_started(this, std::move(bound)); }

task<void> worker::stopped() {
    while (!stopping_) {
        bool notified = co_await stop_->wait();
        if (!notified)
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "worker::stopped");
    }
}

task<void> worker::run_on(unsigned to, std::function<void()> fn) {
    if (to == index_) {
        fn();
        co_return;
    }
    // Shared: the state outlives this frame if it is destroyed while fn runs elsewhere. Only
    // this thread touches the event (the way back is a post() here too).
    struct round_trip {
        explicit round_trip(reactor& r) : done(r) {}
        event done;
        bool finished = false;
    };
    auto st = std::make_shared<round_trip>(*loop_);
    unsigned back = index_;
    runtime& rt = owner_;
    rt.post(to, [st, back, &rt, fn = std::move(fn)] {
        fn();
        rt.post(back, [st] {
            st->finished = true;
            st->done.notify_all();
        });
    });
    while (!st->finished) {
        bool notified = co_await st->done.wait();
        if (!notified)
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "worker::run_on");
    }
}

void worker::drain_mailbox() {
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lock(mutex_);
        batch.swap(inbox_);
    }
    for (auto& fn : batch)
        fn();
}

// Waits on the eventfd, runs what was posted, until cancelled.
task<void> worker::mailbox_loop() {
    for (;;) {
        clear_eventfd(wake_fd_);
        drain_mailbox();
        int revents = co_await poll_awaiter(*loop_, wake_fd_, POLLIN);
        (void)revents;
    }
}

task<void> worker::main(std::function<task<void>(worker&)> body) {
    auto mailbox = spawn(*loop_, mailbox_loop(), "runtime mailbox");
    std::exception_ptr error;
    try {
        co_await body(*this);
    } catch (...) {
        error = std::current_exception();
    }
    mailbox.cancel();
    co_await mailbox;
    if (error) std::rethrow_exception(error);
}

// --- runtime ---------------------------------------------------------------------------

runtime::runtime(runtime_options options) : options_(std::move(options)), stop_fd_(make_eventfd()) {
    if (options_.threads == 0) options_.threads = 1;
    for (unsigned i = 0; i < options_.threads; ++i)
        workers_.push_back(std::unique_ptr<worker>(new worker(*this, i)));
}

runtime::~runtime() {
    stop();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    for (auto& w : workers_)
        ::close(w->wake_fd_);
    ::close(stop_fd_);
}

std::vector<address> runtime::addresses() const {
    std::lock_guard lock(mutex_);
    return addresses_;
}

std::string runtime::backend_name() const {
    std::lock_guard lock(mutex_);
    return backend_;
}

void runtime::report_started(worker* w, std::vector<address> bound) {
    std::lock_guard lock(mutex_);
    if (w->index_ == 0 && !bound.empty()) addresses_ = std::move(bound);
    if (backend_.empty()) backend_ = std::string(w->loop().backend_name());
    ++started_;
    changed_.notify_all();
}

void runtime::thread_main(worker* w, std::function<task<void>(worker&)> body) {
    try {
        reactor r(options_.reactor);
        w->loop_ = &r;
        w->stop_ = std::make_unique<event>(r);
        if (stopped_.load(std::memory_order_acquire)) w->stopping_ = true;
        r.run(w->main(std::move(body)));
        {
            std::lock_guard lock(w->mutex_);
            w->open_ = false;
            w->inbox_.clear();
        }
        w->stop_.reset();  // before the reactor it waits on
    } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
        {
            std::lock_guard inner(w->mutex_);
            w->open_ = false;
            w->inbox_.clear();
        }
    }
    std::lock_guard lock(mutex_);
    if (started_ <= w->index_) ++started_;  // ended before started(): run() stops waiting
    --running_;
    changed_.notify_all();
    signal_eventfd(stop_fd_);  // run() looks again
}

void runtime::post(unsigned i, std::function<void()> fn) {
    worker& w = *workers_.at(i);
    {
        std::lock_guard lock(w.mutex_);
        if (!w.open_) return;
        w.inbox_.push_back(std::move(fn));
    }
    signal_eventfd(w.wake_fd_);
}

void runtime::stop_workers() noexcept {
    for (unsigned i = 0; i < workers_.size(); ++i) {
        worker* w = workers_[i].get();
        try {
            post(i, [w] {
                w->stopping_ = true;
                w->stop_->notify_all();
            });
        } catch (...) {
        }
    }
}

void runtime::stop() noexcept {
    stopped_.store(true, std::memory_order_release);
    signal_eventfd(stop_fd_);
}

void runtime::run(std::function<task<void>(worker&)> body, std::function<void()> started) {
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : options_.stop_signals)
        sigaddset(&signals, s);
    if (int e = ::pthread_sigmask(SIG_BLOCK, &signals, nullptr))
        throw std::system_error(e, std::system_category(), "pthread_sigmask");
    int sfd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) throw std::system_error(errno, std::system_category(), "signalfd");

    // One thread at a time: the next starts once this one has started() or ended.
    bool failed = false;
    for (unsigned i = 0; i < workers_.size() && !failed; ++i) {
        {
            std::lock_guard lock(mutex_);
            ++running_;
        }
        threads_.emplace_back(&runtime::thread_main, this, workers_[i].get(), body);
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return started_ > i || error_; });
        failed = error_ != nullptr;
    }
    if (!failed && started) started();
    // Up (or failed): wait for a stop signal, stop(), a failure, or every body ending.
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (failed || error_ || running_ == 0) break;
        }
        if (stopped_.load(std::memory_order_acquire)) break;
        pollfd fds[2] = {{sfd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        int n = ::poll(fds, 2, 1000);
        if (n < 0 && errno != EINTR) break;
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            if (::read(sfd, &info, sizeof info) == ssize_t(sizeof info)) {
                signal_.store(int(info.ssi_signo), std::memory_order_release);
                break;
            }
        }
        if (fds[1].revents & POLLIN) clear_eventfd(stop_fd_);
    }
    stopped_.store(true, std::memory_order_release);
    stop_workers();
    for (auto& t : threads_)
        t.join();
    threads_.clear();
    ::close(sfd);
    std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace coronet
