#pragma once
// Test support: count SIGPIPEs for one test.
//
// A handler, not SIG_IGN: a send without MSG_NOSIGNAL is seen, not hidden, and
// a test that expects none can say so (sigpipe_count == 0) instead of passing
// because the signal happened to be ignored. The old disposition and mask come back.

#include <atomic>

#include <pthread.h>
#include <signal.h>

namespace coronet::testing {

inline std::atomic<int> sigpipe_count{0};

class sigpipe_counter {
public:
    sigpipe_counter() {
        sigpipe_count = 0;
        struct sigaction sa {};
        sa.sa_handler = [](int) { sigpipe_count.fetch_add(1); };
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGPIPE, &sa, &old_);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        ::pthread_sigmask(SIG_UNBLOCK, &set, &old_mask_);
    }
    ~sigpipe_counter() {
        ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
        ::sigaction(SIGPIPE, &old_, nullptr);
    }
    sigpipe_counter(const sigpipe_counter&) = delete;
    sigpipe_counter& operator=(const sigpipe_counter&) = delete;

private:
    struct sigaction old_ {};
    sigset_t old_mask_{};
};

}  // namespace coronet::testing
