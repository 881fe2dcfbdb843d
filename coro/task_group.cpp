#include <coronet/coro/task_group.hpp>

#include <stdexcept>
#include <system_error>

namespace coronet {

task_group::~task_group() {
    while (detail::spawn_state* st = children_.pop_front()) {
        st->group = nullptr;
        st->slot.request();
        st->release();
    }
    size_ = 0;
}

task_handle task_group::spawn(task<void> t, std::string name) {
    if (closed_) throw std::logic_error("task_group: spawn after close()");
    task_handle h = coronet::spawn(reactor_, std::move(t), std::move(name));
    // The state is reached through the handle; the group keeps a reference of its own.
    detail::spawn_state* st = h.state();
    ++st->refs;
    st->group = this;
    children_.push_front(*st);
    ++size_;
    return h;
}

void task_group::remove(detail::spawn_state* st) noexcept {
    children_.unlink(*st);
    st->group = nullptr;
    --size_;
    if (size_ == 0) empty_.notify_all();
    st->release();
}

void task_group::cancel() noexcept {
    // request() resumes nobody (completions wait for the next turn): the list holds still.
    for (detail::spawn_state* st = children_.front(); st; st = st->next)
        st->slot.request();
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
