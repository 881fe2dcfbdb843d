#include <coronet/lib/receive_room.hpp>

#include <coronet/lib/free_list.hpp>
#include <coronet/lib/poison.hpp>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace coronet {
namespace {

// Own buffers of the default receive size, kept per thread for the next room
// that has bytes to keep: a room holds one only while it has unread bytes,
// so steady traffic must not cost an allocation each time.
constexpr std::size_t input_block = 16 * 1024;
constexpr std::size_t input_blocks_kept = 64;

struct delete_input {
    void operator()(char* p) const noexcept { delete[] p; }
};
thread_local free_list<char*, input_blocks_kept, delete_input> input_blocks;

char* allocate_input(std::size_t cap) {
    if (cap == input_block && !input_blocks.empty()) {
        char* p = input_blocks.take();
        detail::unpoison(p, cap);
        return p;
    }
    return new char[cap];  // not make_unique: no zero fill
}

void free_input_buffer(char* p, std::size_t cap) noexcept {
    if (!p) return;
    detail::unpoison(p, cap);  // consumed bytes were poisoned (lib/poison.hpp)
    if (cap == input_block && input_blocks.keep(p)) {
        detail::poison(p, cap);  // a kept view into it is a report
        return;
    }
    delete[] p;
}

}  // namespace

receive_room::~receive_room() { close(); }

void receive_room::close() noexcept {
    if (rxq_) detail::close_receiver(*r_, *rxq_);  // the kernel lets go of it; its blocks go back
    release();
}

// The provided block the unread bytes were in goes back to the reactor.
void receive_room::return_block() noexcept {
    if (borrowed_ < 0) return;
    r_->recycle(borrowed_);
    borrowed_ = -1;
    data_ = in_;
}

// No unread bytes (or the room closes): all receive memory goes back.
void receive_room::release() noexcept {
    return_block();
    free_input_buffer(in_, in_cap_);
    in_ = data_ = nullptr;
    in_cap_ = rpos_ = wpos_ = 0;
}

// At least `room` free bytes after the unread ones, in our own buffer (unread
// bytes still in a provided block are copied out, and the block goes back).
// The caller keeps size() + room within max_size.
void receive_room::make_room(std::size_t room) {
    if (in_) detail::unpoison(in_, in_cap_);  // bytes are written over what reads consumed
    if (rpos_ == wpos_) {
        return_block();
        rpos_ = wpos_ = 0;
    }
    if (borrowed_ >= 0) {
        // Bytes left over in a provided block: copy them into our own buffer
        // (the only copy on the receive path) and give the block back.
        std::uint32_t have = wpos_ - rpos_;
        std::size_t need = have + room;
        if (in_cap_ < need) {
            free_input_buffer(in_, in_cap_);
            in_cap_ = static_cast<std::uint32_t>(std::max(need, input_block));
            in_ = allocate_input(in_cap_);
        }
        std::memcpy(in_, data_ + rpos_, have);
        return_block();
        rpos_ = 0;
        wpos_ = have;
        return;
    }
    if (!in_) {
        in_cap_ = static_cast<std::uint32_t>(std::max(room, input_block));
        in_ = data_ = allocate_input(in_cap_);
    }
    if (in_cap_ - wpos_ >= room) return;
    if (rpos_ > 0) {  // slide the unread bytes to the front (views into them are dead by now)
        std::memmove(in_, in_ + rpos_, wpos_ - rpos_);
        wpos_ -= rpos_;
        rpos_ = 0;
    }
    if (in_cap_ - wpos_ >= room) return;
    std::size_t cap = std::min(std::max(std::size_t{in_cap_} * 2, wpos_ + room), max_size);
    char* bigger = allocate_input(cap);
    if (wpos_) std::memcpy(bigger, in_, wpos_);
    free_input_buffer(in_, in_cap_);
    in_ = data_ = bigger;
    in_cap_ = static_cast<std::uint32_t>(cap);
}

void receive_room::prepare(operation& op, const receive_request& req) {
    assert(size() < max_size);
    op.result = 0;
    // A multishot receive takes whole blocks: only where one block is no more
    // than a receive may take (the reader's limits count on it).
    if (!rxq_ && req.provided && req.multishot && r_->multishot_receive() &&
        r_->provided_buffer_size() <= req.size)
        rxq_ = std::make_unique<recv_queue>();
    if (!fallback_ && req.provided && (empty() || rxq_)) {
        // With nothing unread, wait holding no memory: the reactor's provided
        // block arrives with the bytes, and reads answer from it. One receive
        // takes no more than the reader's limits allow (a multishot receive
        // takes whole blocks, no larger than req.size).
        if (empty()) release();
        op.code = op_code::recv_provided;
        op.fd = req.fd;
        op.buffer_id = -1;
        op.provided_max = std::max(req.size, req.need);
        op.receiver = rxq_.get();
        return;
    }
    // Every block is out (-ENOBUFS, which also ended a multishot receive), or
    // bytes must join unread ones, or a transport fills the room: receive
    // into our own buffer.
    fallback_ = false;
    op.receiver = nullptr;
    // The buffer grows (doubling) only as bytes arrive: a peer announcing a
    // large count costs memory only for what it really sends.
    make_room(std::min(req.size, max_size - size()));
    // Ask for req.size bytes (or what the reader still lacks), not for all the
    // free space: a grown buffer must not let one receive take more than the
    // reader's limits allow (max_line + one receive).
    std::size_t want = req.size;
    if (req.need > size()) want = std::max(want, req.need - size());
    want = std::min<std::size_t>(want, in_cap_ - wpos_);
    op.code = op_code::recv;
    op.fd = req.fd;
    op.buffer = std::span(reinterpret_cast<std::byte*>(in_) + wpos_, want);
}

int receive_room::take(operation& op) {
    int res = op.result;
    if (op.code != op_code::recv_provided) {
        if (res > 0) wpos_ += static_cast<std::uint32_t>(res);
        return res;
    }
    if (res == -ENOBUFS) {  // every block is out and nothing was received
        fallback_ = true;
        return again;
    }
    int id = std::exchange(op.buffer_id, -1);
    if (res > 0 && empty()) {  // (prepare() gave our memory back)
        data_ = reinterpret_cast<char*>(op.buffer.data());
        borrowed_ = static_cast<std::int16_t>(id);
        rpos_ = 0;
        wpos_ = static_cast<std::uint32_t>(res);
        return res;
    }
    if (res > 0 && static_cast<std::size_t>(res) >
                       max_size - size()) {  // more than the room may hold: the stream cannot go on
        r_->recycle(id);
        return -EMSGSIZE;
    }
    if (res > 0) {  // bytes behind unread ones (multishot): join them in our own buffer
        auto n = static_cast<std::uint32_t>(res);
        make_room(n);
        std::memcpy(in_ + wpos_, op.buffer.data(), n);
        wpos_ += n;
    }
    r_->recycle(id);  // copied, or no bytes: nothing to hold
    return res;
}

}  // namespace coronet
