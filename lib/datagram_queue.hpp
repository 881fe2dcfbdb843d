#pragma once
// datagram_queue: what a datagram socket's multishot receive has taken ahead of recv_from().
//
// On io_uring (kernel 6.0+), recv_from() on a socket that has a queue keeps one
// IORING_OP_RECVMSG with IORING_RECV_MULTISHOT armed. The kernel receives each datagram
// whole into a block of the socket's own buffer ring (its own buffer group; every block
// holds the io_uring_recvmsg_out header, room for the sender's address and 65,535 bytes
// of payload) and posts one CQE per datagram. The backend copies each into the oldest
// recv_from() waiting (its buffer, its sender, MSG_TRUNC and the full length exactly as
// a recvmsg(MSG_TRUNC) into that buffer reports them) and gives the block back, or keeps
// it here for the next call, in arrival order.
//
// The bound: at most `blocks` datagrams wait here, one block each. When every block
// holds one, the kernel ends the multishot receive (-ENOBUFS), and only a recv_from()
// that finds the queue empty arms it again: meanwhile datagrams wait in the socket's
// receive buffer (SO_RCVBUF), which drops what does not fit, as UDP does whenever a
// reader falls behind. Memory: blocks x 68 KiB of address space, resident only where
// datagrams were written. The socket owns the queue and calls detail::close_datagrams()
// before it closes (the backend cancels the receive, waits for its last CQE, then
// unregisters and unmaps the ring). The readiness backends, and io_uring without
// multishot recvmsg, ignore the queue: one recvmsg per recv_from().
// Medusa ancestor: asyncore.dispatcher.handle_read, called once per datagram.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <sys/socket.h>

#include <coronet/lib/operation.hpp>

namespace coronet {

// One queued completion: a datagram in a block, or -errno.
struct datagram_entry {
    int result = 0;  // as cqe->res: the bytes the kernel wrote into the block, or -errno
    int block = -1;  // the block holding the datagram, or -1
};

struct datagram_queue {
    // The largest UDP payload (IPv4 65,507, IPv6 65,527 bytes) fits a block whole.
    static constexpr std::size_t max_payload = 65535;
    // Most blocks a queue may have (the buffer ring's ids are 16 bits).
    static constexpr unsigned max_blocks = 4096;

    explicit datagram_queue(unsigned block_count) noexcept
        : blocks(block_count < max_blocks ? block_count : max_blocks) {
        msg.msg_name = &name_room;  // the kernel writes the sender into each block instead
        msg.msg_namelen = sizeof name_room;
    }
    datagram_queue(const datagram_queue&) = delete;
    datagram_queue& operator=(const datagram_queue&) = delete;

    const unsigned blocks;  // datagrams taken ahead at most
    operation arm;          // the multishot receive while armed (the reactor does not count it)
    op_list waiters;        // recv_from() calls waiting for a datagram, oldest first
    msghdr msg{};           // what the kernel reads: the room for the sender in each block
    sockaddr_storage name_room{};
    bool cancelling = false;   // a cancel of `arm` is on its way
    bool queued = false;       // `arm` waits in the backend's list of things to (re)submit
    bool single_shot = false;  // the ring could not be set up: every receive is a plain recvmsg
    std::uint32_t arms = 0;    // times the multishot receive was armed (one serves many datagrams)
    std::uint64_t received = 0;  // datagrams it took

    // The backend's, set up at the first receive: the buffer ring followed by the
    // blocks (one mapping), and the buffer group the ring is registered as.
    void* mapping = nullptr;
    std::size_t mapping_bytes = 0;
    std::byte* block_base = nullptr;
    std::size_t block_size = 0;
    unsigned ring_entries = 0;
    int group = -1;

    // Datagrams (and errors) waiting, oldest first: a ring of blocks + 1 entries
    // (every datagram holds a block; an error ends the multishot receive, which is
    // armed again only once the queue is empty).
    std::vector<datagram_entry> fifo;
    std::size_t head = 0, count = 0;

    std::size_t size() const noexcept { return count; }
    bool empty() const noexcept { return count == 0; }
    bool full() const noexcept { return count == fifo.size(); }
    // Appends at the back (the queue must not be full).
    void push(datagram_entry e) noexcept {
        fifo[(head + count) % fifo.size()] = e;
        ++count;
    }
    // Removes and returns the oldest (the queue must not be empty).
    datagram_entry pop() noexcept {
        datagram_entry e = fifo[head];
        head = (head + 1) % fifo.size();
        --count;
        return e;
    }
};

}  // namespace coronet
