#include <coronet/coro/spawn.hpp>

#include <cassert>
#include <exception>
#include <system_error>

#include <coronet/coro/task_group.hpp>
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

detached::promise_type::~promise_type() {
    if (owner) owner->remove_task(*this);
    if (state) finish_spawned(state);
}

// An exception escaped a spawned task (a plain function: its strings take no room in every
// detached frame).
void log_uncaptured(const std::exception_ptr& error, std::string_view name_view) {
    std::string name(name_view);
    try {
        std::rethrow_exception(error);
    } catch (const std::system_error& e) {
        // A peer going away is routine for a server (asyncore's _DISCONNECTED), and so is a
        // task cancelled through its handle or its group; idle or oversized clients are
        // routine too, at info (a channel's error names its peer).
        bool gone = is_disconnect(e.code()) || e.code() == std::errc::operation_canceled;
        log(gone                   ? log_level::debug
            : is_routine(e.code()) ? log_level::info
                                   : log_level::error,
            "uncaptured exception in " + name + ": " + e.what());
    } catch (const std::exception& e) {
        log(log_level::error, "uncaptured exception in " + name + ": " + e.what());
    } catch (...) {
        log(log_level::error, "uncaptured exception in " + name + " (not a std::exception)");
    }
}

detached run_detached(reactor&, task<void> t, std::string name) {
    // A local, not the parameter: a frame destroyed while suspended destroys its locals
    // before its promise (which releases the task's cancellable scope), its parameters after.
    task<void> body = std::move(t);
    std::exception_ptr error;
    try {
        co_await std::move(body);
    } catch (...) {
        error = std::current_exception();
    }
    if (error) log_uncaptured(error, name);
}

void finish_spawned(spawn_state* st) noexcept {
    st->slot.unlink(st->nested);  // the task's own scope may die with it
    st->done = true;
    st->finished.notify_all();
    if (st->group) st->group->remove(*st);
    st->release();
}

}  // namespace detail

task_handle spawn(reactor& r, task<void> t, std::string name) {
    auto* st = new detail::spawn_state(r);
    if (cancel_slot* own = t.handle().promise().cancel_slot()) {  // keep it, nested in ours
        st->nested.set_scope(own);
        st->slot.link(st->nested);
    } else {
        t.set_cancel_slot(&st->slot);
    }
    auto d = detail::run_detached(r, std::move(t), std::move(name));
    auto& p = d.h.promise();
    p.owner = &r;
    p.state = st;
    assert(p.frame() == d.h);  // the hook leads the promise (task_hook)
    r.add_task(p);
    r.post(d.h);
    return task_handle(st);
}

}  // namespace coronet
