#include <coronet/lib/cancel_scope.hpp>

#include <coronet/lib/reactor.hpp>

namespace coronet {

void cancel_slot::request() noexcept {
    requested = true;
    // reactor::cancel() resumes nobody (completions wait for the next turn), so
    // the list cannot change while it is walked.
    for (cancel_link* l = links; l; l = l->next) {
        if (l->scope)
            l->scope->request();
        else if (l->op && owner)
            owner->cancel(*l->op);
    }
}

void cancel_slot::link(cancel_link& l) noexcept {
    l.prev = nullptr;
    l.next = links;
    if (links) links->prev = &l;
    links = &l;
}

void cancel_slot::unlink(cancel_link& l) noexcept {
    if (!l.prev && links != &l) return;  // not linked
    if (l.prev)
        l.prev->next = l.next;
    else
        links = l.next;
    if (l.next) l.next->prev = l.prev;
    l.prev = l.next = nullptr;
}

}  // namespace coronet
