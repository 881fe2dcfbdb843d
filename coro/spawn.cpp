#include <coronet/coro/spawn.hpp>

#include <exception>
#include <system_error>

#include <coronet/lib/error.hpp>

#include <coronet/lib/log.hpp>

namespace coronet {
namespace detail {
namespace {

// What hostile or idle clients cause every day: not worth an error line.
bool is_routine(const std::error_code& ec) noexcept {
    return ec == errc::timed_out || ec == errc::line_too_long || ec == errc::message_too_long;
}

}  // namespace

detached run_detached(reactor&, task<void> t, std::string name) {
    try {
        co_await std::move(t);
    } catch (const std::system_error& e) {
        // A peer going away is routine for a server (asyncore's _DISCONNECTED),
        // and so are idle or oversized clients: a channel's error names its peer.
        log(is_disconnect(e.code()) ? log_level::debug
            : is_routine(e.code())  ? log_level::info
                                    : log_level::error,
            "uncaptured exception in " + name + ": " + e.what());
    } catch (const std::exception& e) {
        log(log_level::error, "uncaptured exception in " + name + ": " + e.what());
    } catch (...) {
        log(log_level::error, "uncaptured exception in " + name + " (not a std::exception)");
    }
}

}  // namespace detail

void spawn(reactor& r, task<void> t, std::string name) {
    auto d = detail::run_detached(r, std::move(t), std::move(name));
    auto& p = d.h.promise();
    p.owner = &r;
    p.hook.root = d.h;
    r.add_task(p.hook);
    r.post(d.h);
}

}  // namespace coronet
