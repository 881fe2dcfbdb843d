#include <coronet/lib/readiness_backend.hpp>

#include <cerrno>
#include <string>

#include <unistd.h>

#include <coronet/lib/log.hpp>
#include <coronet/lib/perform.hpp>

namespace coronet {
namespace {

bool is_receive(const operation& op) noexcept {
    return op.code == op_code::recv || op.code == op_code::recv_provided;
}

}  // namespace

bool readiness_backend::start(operation& op) {
    if (op.fd < 0) {
        op.result = -EBADF;
        return true;
    }
    if (static_cast<std::size_t>(op.fd) >= fds_.size()) fds_.resize(op.fd + 1);
    fd_state& st = fds_[op.fd];
    op_ring& parked = wants_read(op) ? st.readers : st.writers;
    // An earlier operation of the same direction is still parked: keep FIFO
    // order (two sends must not overtake each other).
    //
    // A receive on a drained fd parks without trying: the recv() would only
    // say EAGAIN (an unpipelined echo spent one per message). No bytes can be
    // missed. epoll is edge-triggered: bytes that arrive after the read that
    // emptied the socket raise an edge, which the next epoll_wait reports and
    // on_ready() acts on. select is level-triggered and watches every fd with
    // a parked operation, so parking is always safe there. End of stream
    // (recv 0) and errors never mark an fd drained: a parked receive would
    // wait for an event that may never come again. Nor does a short read once
    // epoll has reported the peer's shutdown (on_ended()): the data is gone
    // but the end of stream is still there to read, and its edge was spent.
    // Only an fd already watched parks untried: where watch() fails (select,
    // fd >= FD_SETSIZE) a receive that need not wait must still finish. This
    // holds for stream sockets only: a datagram recv is short with more
    // datagrams still queued. Datagram sockets receive with recvmsg, which
    // never marks an fd drained (attempt() passes it straight to perform()).
    bool skip = st.drained && st.watched && is_receive(op);
    if (parked.empty() && !skip && attempt(op, st)) return true;
    if (!st.watched) {
        if (int err = watch(op.fd, st); err < 0) {
            op.result = err;
            return true;
        }
        st.watched = true;
    }
    parked.push_back(op);
    return false;
}

bool readiness_backend::cancel(operation& op) {
    if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= fds_.size()) return false;
    fd_state& st = fds_[op.fd];
    if (!st.readers.remove(op) && !st.writers.remove(op)) return false;  // already finished
    op.result = -ECANCELED;
    return true;
}

void readiness_backend::forget(int fd, op_list& ended) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    // Parked on a descriptor about to close (an accept on a listener closed under it): the
    // mechanism will never report it again, so they end now instead of waiting for ever.
    for (op_ring* parked : {&fds_[fd].readers, &fds_[fd].writers}) {
        while (operation* op = parked->pop_front()) {
            op->result = -ECANCELED;
            ended.push_back(*op);
        }
    }
    fds_[fd].watched = false;
    fds_[fd].drained = false;  // the number may come back as another socket
    fds_[fd].ended = false;
    fds_[fd].starved = false;  // its entry in starved_, if any, is skipped
}

bool readiness_backend::attempt(operation& op, fd_state& st) noexcept {
    std::size_t asked = 0;
    bool finished = false;
    switch (op.code) {
    case op_code::recv:
        asked = op.buffer.size();
        finished = perform(op);
        break;
    case op_code::recv_provided:
        if (may_starve_ && st.watched && pool_.count() > 0 && pool_.in_use() == pool_.count() &&
            starve(op.fd, st))
            return false;
        asked = provided_size(op, pool_);
        finished = perform_provided(op, pool_);
        break;
    default:
        for (;;) {
            if (!perform(op)) return false;
            if (op.code != op_code::accept || op.result < 0) return true;
            const char* why = refuses(op.result);
            if (!why) return true;
            refuse_accepted(op.result, why);  // and accept the next one, if any is there
        }
    }
    // Fewer bytes than asked (but some), or none yet: the socket is empty now.
    st.drained =
        !st.ended && (!finished || (op.result > 0 && static_cast<std::size_t>(op.result) < asked));
    return finished;
}

// Logged once per burst, as an accept loop logs EMFILE: a warning at the first
// refusal, then again only after 10 s, with the count refused meanwhile.
void readiness_backend::refuse_accepted(int fd, const char* why) noexcept {
    auto now = std::chrono::steady_clock::now();
    if (!refusal_ever_logged_ || now - refusal_logged_ >= std::chrono::seconds(10)) {
        try {
            std::string line = std::string(name()) +
                               ": closing accepted connection fd=" + std::to_string(fd) + ": " +
                               why;
            if (refused_unlogged_ > 0)
                line += " (" + std::to_string(refused_unlogged_) + " more since the last report)";
            log(log_level::warning, line);
        } catch (...) {
        }
        refusal_ever_logged_ = true;
        refusal_logged_ = now;
        refused_unlogged_ = 0;
    } else {
        ++refused_unlogged_;
    }
    ::close(fd);
}

std::size_t readiness_backend::retry(op_ring& parked, fd_state& st, op_list& done) {
    std::size_t finished = 0;
    while (operation* op = parked.front()) {
        if (!attempt(*op, st)) break;  // would block again: stays parked, keeps its turn
        parked.pop_front();
        done.push_back(*op);
        ++finished;
    }
    return finished;
}

// Every block is out: the receive on fd waits a turn for one (see the header),
// keeping the fd's readiness (it is not drained: nothing was read). Only a
// watched fd starves: where watch() fails the receive must finish now. False
// (the receive says ENOBUFS now) if the list cannot grow.
bool readiness_backend::starve(int fd, fd_state& st) noexcept {
    if (st.starved) return true;
    try {
        starved_.push_back(fd);
    } catch (...) {
        return false;
    }
    st.starved = true;
    return true;
}

std::size_t readiness_backend::retry_starved(op_list& done) {
    // Was a block given back since the last call?
    bool block_returned = pool_.given_back() != given_back_seen_;
    given_back_seen_ = pool_.given_back();
    if (starved_.empty()) return 0;
    // Without a block back since the last turn nothing may ever free one:
    // the starved receives get ENOBUFS now, and their callers a buffer of their own.
    may_starve_ = block_returned;
    starved_swap_.swap(starved_);
    std::size_t finished = 0;
    for (int fd : starved_swap_) {
        fd_state& st = fds_[fd];
        if (!st.starved) continue;  // forgotten, or listed twice
        st.starved = false;
        finished += retry(st.readers, st, done);
    }
    starved_swap_.clear();
    may_starve_ = true;
    return finished;
}

void readiness_backend::on_ended(int fd) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    fds_[fd].ended = true;
    fds_[fd].drained = false;
}

void readiness_backend::on_ready(int fd, bool readable, bool writable, op_list& done) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    fd_state& st = fds_[fd];
    if (readable) {
        st.drained = false;  // bytes (or end of stream) arrived since the socket was emptied
        retry(st.readers, st, done);
    }
    if (writable) retry(st.writers, st, done);
}

}  // namespace coronet
