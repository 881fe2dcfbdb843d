#include <coronet/coro/signal_set.hpp>

#include <cerrno>
#include <system_error>

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <coronet/lib/socket.hpp>

namespace coronet {
namespace {

sigset_t make_set(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : signals)
        sigaddset(&set, s);
    return set;
}

}  // namespace

void block_signals(std::initializer_list<int> signals) {
    sigset_t set = make_set(signals);
    if (int e = ::pthread_sigmask(SIG_BLOCK, &set, nullptr))
        throw std::system_error(e, std::system_category(), "pthread_sigmask");
}

signal_set::signal_set(reactor& r, std::initializer_list<int> signals) : reactor_(r) {
    block_signals(signals);
    sigset_t set = make_set(signals);
    fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "signalfd");
}

signal_set::~signal_set() {
    if (fd_ < 0) return;
    reactor_.backend_forget(fd_);
    ::close(fd_);
}

task<int> signal_set::wait() {
    for (;;) {
        signalfd_siginfo info{};
        ssize_t n = ::read(fd_, &info, sizeof info);
        if (n == ssize_t(sizeof info)) co_return int(info.ssi_signo);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN)
            throw std::system_error(errno, std::system_category(), "signalfd read");
        // Not `if (co_await ...)`: GCC 12.2 miscompiles a co_await in a condition.
        int revents = co_await poll_awaiter(reactor_, fd_, POLLIN);
        (void)revents;
    }
}

}  // namespace coronet
