#include <coronet/coro/timeout.hpp>

namespace coronet::detail {

task<void> timeout_timer(reactor& r, reactor::clock::duration d, timeout_state* st) {
    // Not `if (co_await ...)`: GCC 12.2 miscompiles a co_await in an if or
    // while condition (the ramp lays the frame out 8 bytes off from what the
    // resume path expects, and the first resume traps on ud2).
    bool expired = co_await sleep_for(r, d);  // false: cancelled because the task finished first
    if (expired) {
        st->expired = true;
        st->inner.request();
    }
}

}  // namespace coronet::detail
