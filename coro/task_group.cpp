#include <coronet/coro/task_group.hpp>

#include <cassert>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace coronet {

task_group::~task_group() {
    while (detail::group_member* child = children_.pop_front()) {
        child->group = nullptr;
        child->slot.request();
    }
    size_ = 0;
}

task_handle task_group::spawn(task<void> t, std::string name) {
    if (closed_) throw std::logic_error("task_group: spawn after close()");
    task_handle h = coronet::spawn(reactor_, std::move(t), std::move(name));
    // The state is reached through the handle. The group keeps no reference: the task holds
    // one until it ends, and it leaves the list then (finish_spawned).
    detail::spawn_state* st = h.state();
    st->group = this;
    children_.push_front(*st);
    ++size_;
    return h;
}

void task_group::start(child_task t) {
    if (closed_) throw std::logic_error("task_group: start after close()");
    auto h = std::exchange(t.h_, {});
    auto& p = h.promise();
    p.slot.set_owner(&reactor_);
    assert(p.frame() == h);  // the hook leads the promise (task_hook)
    reactor_.add_task(p);
    p.group = this;
    children_.push_front(p);
    ++size_;
    reactor_.post(h);
}

void task_group::remove(detail::group_member& child) noexcept {
    children_.unlink(child);
    child.group = nullptr;
    --size_;
    if (size_ == 0) empty_.notify_all();
}

void child_task::promise_type::unhandled_exception() noexcept {
    try {
        detail::log_uncaptured(std::current_exception(), "task");
    } catch (...) {  // no room to log it: the task ends all the same
    }
}

child_task::promise_type::~promise_type() {
    if (reactor* r = slot.owner()) r->remove_task(*this);  // started
    if (group) group->remove(*this);
}

void task_group::cancel() noexcept {
    // request() resumes nobody (completions wait for the next turn): the list holds still.
    for (detail::group_member* child = children_.front(); child; child = child->next)
        child->slot.request();
}

task<void> task_group::wait() {
    while (size_ > 0) {
        bool notified = co_await empty_.wait();
        if (!notified)
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "task_group::wait");
    }
}

task<void> task_group::close() {
    closed_ = true;
    cancel();
    co_await wait();
}

}  // namespace coronet
