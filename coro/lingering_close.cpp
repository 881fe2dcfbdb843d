#include <coronet/coro/lingering_close.hpp>

#include <system_error>

#include <coronet/coro/timeout.hpp>

namespace coronet {

task<void> lingering_close(channel& ch, std::chrono::milliseconds linger) {
    if (!ch || ch.closed()) co_return;
    if (linger.count() <= 0) {
        (void)ch.close_when_done();  // takes effect without being awaited
        co_return;
    }
    bool flushed = false;
    try {
        co_await with_timeout(ch.context(), ch.flush(), linger);
        flushed = true;
    } catch (const std::system_error&) {  // the peer went away, stopped reading, or we are cancelled
    }
    if (flushed && !ch.at_eof()) {
        ch.sock().shutdown_send();
        ch.set_read_deadline(reactor::clock::now() + linger);
        try {
            for (;;) {
                auto dropped = co_await ch.read_some();
                if (!dropped) break;
            }
        } catch (const std::system_error&) {  // the deadline, or a reset
        }
    }
    ch.close();
}

}  // namespace coronet
