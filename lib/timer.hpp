#pragma once
// Timers: sleep_for / sleep_until awaiters, kept in the reactor's timer heap.
//
// Works the same on every backend (the reactor turns the nearest deadline into
// the backend's wait timeout). A cancelled sleep (with_timeout, cancel_slot)
// ends early and reports it. Medusa ancestor: the timeout argument of
// asyncore.loop().

#include <chrono>

#include <coronet/lib/awaiter.hpp>

namespace coronet {

// co_await yields true when the deadline passed, false when cancelled first.
class [[nodiscard]] sleep_awaiter : public op_awaiter {
public:
    sleep_awaiter(reactor& r, reactor::clock::time_point deadline) noexcept : op_awaiter(r) {
        op_.code = op_code::timeout;
        op_.deadline = deadline;
    }
    bool await_resume() noexcept { return finish() == 0; }
};

// Suspends for d (at least).
inline sleep_awaiter sleep_for(reactor& r, reactor::clock::duration d) noexcept {
    return {r, reactor::clock::now() + d};
}

// Suspends until the deadline.
inline sleep_awaiter sleep_until(reactor& r, reactor::clock::time_point deadline) noexcept {
    return {r, deadline};
}

}  // namespace coronet
