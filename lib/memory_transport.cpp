#include <coronet/lib/memory_transport.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace coronet {
namespace detail {

// One direction: the pieces sent and not yet received, and how it ended.
struct memory_direction {
    std::deque<std::string> pieces;
    std::size_t front_taken = 0;  // bytes of pieces.front() already received
    std::size_t unread = 0;
    bool ended = false;              // the sender shut down (end of stream after the pieces)
    bool reset = false;              // the sender reset: receives fail
    operation* receiving = nullptr;  // a held receive of the reading end
    operation* sending = nullptr;    // a held send of the writing end (a full direction)
};

// Both directions; into[i] is what end i receives. Shared by the two ends, so
// either may die first.
struct memory_pipe {
    reactor* r;
    memory_options options;
    memory_direction into[2];
    bool alive[2] = {true, true};

    // Moves bytes into a held receive of `to` if it can be answered now.
    void serve_receive(int to) noexcept;
    // Lets a held send into direction `to` go on if there is room now.
    void serve_send(int to) noexcept;
    // Copies what fits of the pieces into buffer (one piece at most).
    static int take(memory_direction& d, std::span<std::byte> buffer) noexcept;
    // Appends the gathered bytes of msg (up to room) as one piece; returns the count.
    std::size_t put(memory_direction& d, const msghdr& msg) noexcept;
    std::size_t room(const memory_direction& d) const noexcept {
        if (options.capacity == 0) return SIZE_MAX;
        return d.unread >= options.capacity ? 0 : options.capacity - d.unread;
    }
};

int memory_pipe::take(memory_direction& d, std::span<std::byte> buffer) noexcept {
    if (d.reset) return -ECONNRESET;
    if (d.pieces.empty()) return d.ended ? 0 : -EAGAIN;
    std::string& p = d.pieces.front();
    std::size_t n = std::min(buffer.size(), p.size() - d.front_taken);
    std::memcpy(buffer.data(), p.data() + d.front_taken, n);
    d.front_taken += n;
    d.unread -= n;
    if (d.front_taken == p.size()) {
        d.pieces.pop_front();
        d.front_taken = 0;
    }
    return static_cast<int>(n);
}

std::size_t memory_pipe::put(memory_direction& d, const msghdr& msg) noexcept {
    std::size_t limit = room(d);
    std::string piece;
    for (std::size_t i = 0; i < msg.msg_iovlen && piece.size() < limit; ++i) {
        const iovec& v = msg.msg_iov[i];
        piece.append(static_cast<const char*>(v.iov_base),
                     std::min(v.iov_len, limit - piece.size()));
    }
    std::size_t n = piece.size();
    if (n > 0) {
        d.unread += n;
        d.pieces.push_back(std::move(piece));
    }
    return n;
}

void memory_pipe::serve_receive(int to) noexcept {
    memory_direction& d = into[to];
    if (!d.receiving) return;
    int n = take(d, d.receiving->buffer);
    if (n == -EAGAIN) return;
    operation* op = std::exchange(d.receiving, nullptr);
    r->finish(*op, n);
    serve_send(to);  // room was made
}

void memory_pipe::serve_send(int to) noexcept {
    memory_direction& d = into[to];
    if (!d.sending) return;
    if (into[1 - to].reset) {  // the reader reset: as a new send would, ECONNRESET
        r->finish(*std::exchange(d.sending, nullptr), -ECONNRESET);
        return;
    }
    if (d.reset || !alive[to]) {  // the reader went away
        r->finish(*std::exchange(d.sending, nullptr), -EPIPE);
        return;
    }
    if (room(d) == 0) return;
    operation* op = std::exchange(d.sending, nullptr);
    int n = static_cast<int>(put(d, *op->msg));
    r->finish(*op, n);
    serve_receive(to);
}

}  // namespace detail

std::pair<std::unique_ptr<memory_transport>, std::unique_ptr<memory_transport>>
memory_transport::pair(reactor& r, memory_options options) {
    auto pipe = std::make_shared<detail::memory_pipe>();
    pipe->r = &r;
    pipe->options = options;
    return {std::unique_ptr<memory_transport>(new memory_transport(r, pipe, 0)),
            std::unique_ptr<memory_transport>(new memory_transport(r, pipe, 1))};
}

memory_transport::~memory_transport() { close(); }

bool memory_transport::start_recv(operation& op) {
    detail::memory_direction& d = pipe_->into[side_];
    int n = detail::memory_pipe::take(d, op.buffer);
    if (n != -EAGAIN) {
        op.result = n;
        pipe_->serve_send(side_);  // the peer's held send may go on now
        return true;
    }
    reactor_->hold(op, *this);
    d.receiving = &op;
    return false;
}

bool memory_transport::start_send(operation& op) {
    int to = 1 - side_;
    detail::memory_direction& d = pipe_->into[to];
    if (d.ended || !pipe_->alive[side_]) {  // we shut down (or closed) already
        op.result = -EPIPE;
        return true;
    }
    if (pipe_->into[side_].reset || !pipe_->alive[to]) {  // the peer reset or went away
        op.result = pipe_->into[side_].reset ? -ECONNRESET : -EPIPE;
        return true;
    }
    if (pipe_->room(d) == 0) {  // a slow reader: wait for room
        reactor_->hold(op, *this);
        d.sending = &op;
        return false;
    }
    op.result = static_cast<int>(pipe_->put(d, *op.msg));
    pipe_->serve_receive(to);
    return true;
}

void memory_transport::cancel(operation& op) noexcept {
    for (detail::memory_direction& d : pipe_->into) {
        if (d.receiving == &op)
            d.receiving = nullptr;
        else if (d.sending == &op)
            d.sending = nullptr;
        else
            continue;
        reactor_->finish(op, -ECANCELED);
        return;
    }
}

void memory_transport::abandon(operation& op) noexcept {
    for (detail::memory_direction& d : pipe_->into) {
        if (d.receiving == &op) d.receiving = nullptr;
        if (d.sending == &op) d.sending = nullptr;
    }
}

void memory_transport::write(std::string_view bytes) {
    int to = 1 - side_;
    detail::memory_direction& d = pipe_->into[to];
    if (bytes.empty() || d.ended || d.reset) return;
    d.unread += bytes.size();
    d.pieces.emplace_back(bytes);
    pipe_->serve_receive(to);
}

std::string memory_transport::read_all() {
    detail::memory_direction& d = pipe_->into[side_];
    std::string out;
    while (!d.pieces.empty()) {
        out.append(d.pieces.front(), d.front_taken);
        d.pieces.pop_front();
        d.front_taken = 0;
    }
    d.unread = 0;
    pipe_->serve_send(side_);
    return out;
}

std::size_t memory_transport::unread() const noexcept { return pipe_->into[side_].unread; }

bool memory_transport::peer_done() const noexcept {
    const detail::memory_direction& d = pipe_->into[side_];
    return d.ended || d.reset || !pipe_->alive[1 - side_];
}

void memory_transport::shutdown_send() noexcept {
    int to = 1 - side_;
    pipe_->into[to].ended = true;
    pipe_->serve_receive(to);
}

void memory_transport::reset() noexcept {
    int to = 1 - side_;
    pipe_->into[to].reset = true;
    pipe_->serve_receive(to);
    pipe_->serve_send(side_);  // the peer's held send into us fails
    close();
}

void memory_transport::close() noexcept {
    if (!pipe_->alive[side_]) return;
    pipe_->alive[side_] = false;
    detail::memory_direction& in = pipe_->into[side_];
    // Our own held operations end now: a receive sees end of stream, a send fails.
    if (in.receiving) reactor_->finish(*std::exchange(in.receiving, nullptr), 0);
    int to = 1 - side_;
    detail::memory_direction& out = pipe_->into[to];
    if (out.sending) reactor_->finish(*std::exchange(out.sending, nullptr), -EPIPE);
    out.ended = true;  // the peer reads what was sent, then end of stream
    pipe_->serve_receive(to);
    pipe_->serve_send(side_);  // a peer's send into us fails now
}

}  // namespace coronet
