#include <coronet/coro/connect.hpp>

#include <system_error>
#include <utility>

#include <coronet/coro/timeout.hpp>
#include <coronet/lib/error.hpp>

namespace coronet {
namespace {

// (Each awaiter is a named local, with no temporary beside it in the co_await: with GCC 12.2 a
// braced resolve_options{...} temporary in `co_await resolve(...)` left the awaiter destroyed
// at the wrong place in the frame when a dying reactor destroyed the waiting coroutine; ASan
// caught it in tests/lib/resolver_test.cpp. A precaution here: this form was never caught.)
task<socket> resolve_and_race(reactor& r, std::string host, unsigned port, connect_host_options o) {
    std::string service = std::to_string(port);
    auto resolving = resolve(r, host, service, o.resolve);
    std::vector<address> addresses = co_await resolving;
    happy_eyeballs_options race{.attempt_delay = o.attempt_delay,
                                .connect = {.nodelay = o.nodelay}};
    auto racing = happy_eyeballs(r, std::move(addresses), race);
    co_return co_await racing;
}

}  // namespace

task<socket> connect(reactor& r, std::string host, unsigned port, connect_host_options options) {
    try {
        co_return co_await with_timeout(r, resolve_and_race(r, host, port, options),
                                        options.timeout);
    } catch (const std::system_error& e) {
        if (e.code() != errc::timed_out) throw;
    }
    throw std::system_error(make_error_code(errc::timed_out),
                            "connect '" + host + "' port " + std::to_string(port));
}

}  // namespace coronet
