#include <coronet/lib/cancel_scope.hpp>

#include <coronet/lib/reactor.hpp>

namespace coronet {

static_assert(alignof(reactor) >= 4, "cancel_slot's flags ride in its owner's low bits");

void cancel_slot::request() noexcept {
    mark_requested();
    class reactor* owner = this->owner();
    // reactor::cancel() resumes nobody (completions wait for the next turn), so
    // the list cannot change while it is walked.
    for (cancel_link* l = links.front(); l; l = l->next) {
        if (cancel_slot* nested = l->scope())
            nested->request();
        else if (operation* op = l->op(); op && owner)
            owner->cancel(*op);
    }
}

void cancel_slot::link(cancel_link& l) noexcept { links.push_front(l); }

void cancel_slot::unlink(cancel_link& l) noexcept { links.remove(l); }

}  // namespace coronet
