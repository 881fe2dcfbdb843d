#include <coronet/coro/spawn.hpp>

#include <exception>
#include <system_error>

#include <coronet/lib/error.hpp>

#include <coronet/lib/log.hpp>

namespace coronet {
namespace detail {

detached run_detached(reactor&, task<void> t, std::string name) {
    try {
        co_await std::move(t);
    } catch (const std::system_error& e) {
        // A peer going away is routine for a server (asyncore's _DISCONNECTED).
        log(is_disconnect(e.code()) ? log_level::debug : log_level::error,
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
