#include <coronet/lib/readiness_backend.hpp>

#include <cerrno>

#include <coronet/lib/perform.hpp>

namespace coronet {

bool readiness_backend::start(operation& op) {
    if (op.fd < 0) {
        op.result = -EBADF;
        return true;
    }
    if (static_cast<std::size_t>(op.fd) >= fds_.size()) fds_.resize(op.fd + 1);
    fd_state& st = fds_[op.fd];
    op_list& parked = wants_read(op) ? st.readers : st.writers;
    // An earlier operation of the same direction is still parked: keep FIFO
    // order (two sends must not overtake each other).
    if (parked.empty() && attempt(op)) return true;
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

void readiness_backend::forget(int fd) noexcept {
    if (fd >= 0 && static_cast<std::size_t>(fd) < fds_.size()) fds_[fd].watched = false;
}

bool readiness_backend::attempt(operation& op) noexcept {
    if (op.code == op_code::recv_provided) return perform_provided(op, pool_);
    return perform(op);
}

void readiness_backend::retry(op_list& parked, op_list& done) {
    while (operation* op = parked.front()) {
        if (!attempt(*op)) break;  // would block again: stays parked, keeps its turn
        parked.pop_front();
        done.push_back(*op);
    }
}

void readiness_backend::on_ready(int fd, bool readable, bool writable, op_list& done) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    fd_state& st = fds_[fd];
    if (readable) retry(st.readers, done);
    if (writable) retry(st.writers, done);
}

}  // namespace coronet
