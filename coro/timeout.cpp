#include <coronet/coro/timeout.hpp>

namespace coronet::detail {

task<void> timeout_timer(reactor& r, reactor::clock::duration d, timeout_state* st) {
    // Bound, not tested: GCC 12.2 crashes at the first resume of `if (co_await
    // ...)` (the README's GCC 12 rule; tests/coro/gcc12_forms_test.cpp).
    bool expired = co_await sleep_for(r, d);  // false: cancelled because the task finished first
    if (expired) {
        st->expired = true;
        st->inner.request();
    }
}

}  // namespace coronet::detail
