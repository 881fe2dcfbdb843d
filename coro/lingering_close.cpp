#include <coronet/coro/lingering_close.hpp>

#include <cstdint>
#include <system_error>

#include <coronet/coro/timeout.hpp>
#include <coronet/lib/transport.hpp>

namespace coronet {

task<void> lingering_close(channel& ch, std::chrono::milliseconds linger, peer_input input) {
    if (!ch || ch.closed()) co_return;
    if (linger.count() <= 0) {
        (void)ch.close_when_done();  // takes effect without being awaited
        co_return;
    }
    // The close follows the queue at once: a transport may send its end with the last bytes.
    if (input == peer_input::ended)
        if (transport* t = ch.via()) t->closing_after_output();
    // Wait for the queue to go while the peer keeps reading: give up after a whole `linger`
    // without a byte sent (a large file to a slow reader is not cut short).
    bool flushed = false;
    for (;;) {
        std::uint64_t before = ch.sent().bytes;
        bool slow = false;
        try {
            co_await with_timeout(ch.context(), ch.flush(), linger);
            flushed = true;
        } catch (const std::system_error& e) {  // the peer went away, or we are cancelled
            slow = e.code() == errc::timed_out;
        }
        if (flushed || !slow || ch.sent().bytes == before) break;
    }
    if (flushed && !ch.at_eof() && input == peer_input::unknown) {
        ch.shutdown_send();  // TLS: close_notify
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
