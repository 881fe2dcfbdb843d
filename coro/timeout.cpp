#include <coronet/coro/timeout.hpp>

namespace coronet::detail {

task<void> timeout_timer(reactor& r, reactor::clock::duration d, timeout_state* st) {
    if (co_await sleep_for(r, d)) {  // false: cancelled because the task finished first
        st->expired = true;
        st->inner.request();
    }
}

}  // namespace coronet::detail
