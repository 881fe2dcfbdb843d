#include <coronet/coro/connect.hpp>

#include <system_error>
#include <utility>

#include <coronet/coro/timeout.hpp>
#include <coronet/lib/error.hpp>

namespace coronet {
namespace {

task<socket> resolve_and_race(reactor& r, std::string host, unsigned port, connect_host_options o) {
    std::vector<address> addresses = co_await resolve(r, host, std::to_string(port), o.resolve);
    co_return co_await happy_eyeballs(r, std::move(addresses),
                                      {.attempt_delay = o.attempt_delay, .connect = {.nodelay = o.nodelay}});
}

}  // namespace

task<socket> connect(reactor& r, std::string host, unsigned port, connect_host_options options) {
    try {
        co_return co_await with_timeout(r, resolve_and_race(r, host, port, options), options.timeout);
    } catch (const std::system_error& e) {
        if (e.code() != errc::timed_out) throw;
    }
    throw std::system_error(make_error_code(errc::timed_out),
                            "connect '" + host + "' port " + std::to_string(port));
}

}  // namespace coronet
