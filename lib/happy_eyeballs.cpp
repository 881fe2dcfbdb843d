#include <coronet/lib/happy_eyeballs.hpp>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

#include <coronet/lib/error.hpp>

namespace coronet {

std::vector<address> interleave_families(const std::vector<address>& addresses) {
    std::vector<address> v6, other, out;
    for (const address& a : addresses)
        (a.family() == AF_INET6 ? v6 : other).push_back(a);
    for (std::size_t i = 0; i < std::max(v6.size(), other.size()); ++i) {
        if (i < v6.size()) out.push_back(v6[i]);
        if (i < other.size()) out.push_back(other[i]);
    }
    return out;
}

happy_eyeballs_awaiter::happy_eyeballs_awaiter(reactor& r, std::vector<address> addresses,
                                               happy_eyeballs_options options)
    : reactor_(r), options_(options) {
    std::vector<address> ordered = interleave_families(addresses);
    count_ = static_cast<int>(ordered.size());
    attempts_ = std::make_unique<attempt[]>(ordered.size());
    for (int i = 0; i < count_; ++i) {
        attempt& a = attempts_[i];
        a.to = ordered[i];
        a.op.owner = this;
        a.op.index = i;
        a.op.op.code = op_code::connect;
        a.op.op.set_on_done(&on_op_done);
    }
    timer_.owner = this;
    timer_.op.code = op_code::timeout;
    timer_.op.set_on_done(&on_op_done);
    link_.set_op(&timer_.op);
}

happy_eyeballs_awaiter::~happy_eyeballs_awaiter() {
    reactor_.abandon(timer_.op);
    for (int i = 0; i < count_; ++i) {
        reactor_.abandon(attempts_[i].op.op);  // before the fd goes: the kernel may still use it
        close_fd(attempts_[i]);
    }
    if (slot_) slot_->unlink(link_);
    if (posted_ && !resumed_) reactor_.unpost(waiter_);
}

void happy_eyeballs_awaiter::close_fd(attempt& a) noexcept {
    if (a.fd < 0) return;
    reactor_.backend_forget(a.fd);
    ::close(std::exchange(a.fd, -1));
}

bool happy_eyeballs_awaiter::begin() {
    if (slot_ && slot_->requested()) {
        result_ = -ECANCELED;
        return false;
    }
    if (count_ == 0) {
        result_ = result_of(errc::no_address_connected);
        return false;
    }
    advance();
    if (finished_) return false;
    if (slot_) slot_->link(link_);  // a cancel of the scope reaches the timer
    suspended_ = true;
    return true;
}

void happy_eyeballs_awaiter::failed(attempt& a, int result) noexcept {
    result_ = result;
    close_fd(a);
}

// Starts attempts until one is in flight (or connected at once, or none is
// left), then sets the timer for the next one.
void happy_eyeballs_awaiter::advance() {
    while (next_ < count_) {
        attempt& a = attempts_[next_++];
        a.fd = ::socket(a.to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a.fd < 0) {
            failed(a, -errno);
            continue;
        }
        a.op.op.fd = a.fd;
        a.op.op.addr = a.to.data();
        a.op.op.addrlen = a.to.size();
        a.op.op.result = 0;
        if (!reactor_.start(a.op.op)) {
            ++in_flight_;
            break;
        }
        if (a.op.op.result == 0) {  // connected at once
            winner_ = a.op.index;
            return finish(0);
        }
        failed(a, a.op.op.result);  // refused at once: the next one now
    }
    if (in_flight_ == 0) return finish(result_);  // every address failed
    // The timer starts the next attempt; with none left it only carries a cancel.
    reactor_.abandon(timer_.op);
    timer_.op.deadline =
        reactor::clock::now() + (next_ < count_ ? std::chrono::milliseconds(options_.attempt_delay)
                                                : std::chrono::milliseconds(3600 * 1000));
    timer_.op.result = 0;
    reactor_.start(timer_.op);
}

void happy_eyeballs_awaiter::finish(int result) {
    if (finished_) return;
    finished_ = true;
    result_ = result;
    reactor_.abandon(timer_.op);
    for (int i = 0; i < count_; ++i) {
        if (i == winner_) continue;
        reactor_.abandon(attempts_[i].op.op);  // the losers: cancelled, then closed
        close_fd(attempts_[i]);
    }
    if (suspended_) {
        posted_ = true;
        reactor_.post(waiter_);  // last: the waiter may destroy this awaiter
    }
}

void happy_eyeballs_awaiter::on_op_done(operation& op) {
    auto& d = reinterpret_cast<detail::eyeball_op&>(op);  // op is its first member
    happy_eyeballs_awaiter* self = d.owner;
    if (self->finished_) return;
    if (op.result == -ECANCELED || (self->slot_ && self->slot_->requested()))
        return self->finish(-ECANCELED);
    if (d.index < 0) return self->advance();  // the attempt delay passed: one more
    --self->in_flight_;
    if (op.result == 0) {
        self->winner_ = d.index;
        return self->finish(0);
    }
    self->failed(self->attempts_[d.index], op.result);
    self->advance();  // RFC 8305: a failure starts the next attempt at once
}

socket happy_eyeballs_awaiter::await_resume() {
    resumed_ = true;
    if (slot_) {
        slot_->unlink(link_);
        if (result_ == -ECANCELED) slot_->mark_cut_short();
    }
    if (winner_ >= 0) {
        attempt& a = attempts_[winner_];
        socket s(reactor_, std::exchange(a.fd, -1), already_nonblocking,
                 "client");  // SOCK_NONBLOCK
        if (options_.connect.nodelay && a.to.family() != AF_UNIX) s.set_nodelay(true);
        return s;
    }
    std::string tried;
    for (int i = 0; i < count_; ++i)
        tried += (i ? ", " : "") + attempts_[i].to.to_string();
    throw std::system_error(error_of(result_),
                            "connect " + (tried.empty() ? "(no address)" : tried));
}

}  // namespace coronet
