#pragma once
// memory_transport: a connected pair with no sockets, for testing protocol
// handlers.
//
// What one end sends, the other receives, on one reactor. Each send arrives as
// a piece of its own, and a receive never takes bytes from two pieces, so a
// test decides exactly how input is split: write("GET / HT"), then
// write("TP/1.1\r\n..."). A test drives an end either through a channel (or
// async_chat) built on it, or directly with the calls below (write, read_all,
// shutdown_send, reset). A capacity makes a slow reader: sends wait while the
// peer holds that many unread bytes. Deadlines, with_timeout and abandoned
// reads work as on a socket (operations finish through the reactor).
// Medusa ancestor: none (Twisted's StringTransport, tokio's duplex).

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <coronet/lib/reactor.hpp>
#include <coronet/lib/transport.hpp>

namespace coronet {

// How memory_transport::pair() builds a pair.
struct memory_options {
    // Unread bytes a direction holds before the sender waits (a slow reader); 0: no limit.
    std::size_t capacity = 0;
};

namespace detail {
struct memory_pipe;
}

class memory_transport final : public transport {
public:
    // Two connected ends on r.
    static std::pair<std::unique_ptr<memory_transport>, std::unique_ptr<memory_transport>> pair(
        reactor& r, memory_options options = {});
    ~memory_transport() override;

    // --- a test's controls, acting as this end ---
    // Sends bytes to the peer at once, as one piece of its own (never waits).
    void write(std::string_view bytes);
    // Takes everything the peer has sent to this end and not yet been read.
    std::string read_all();
    // Bytes the peer has sent to this end and not yet been read.
    std::size_t unread() const noexcept;
    // The peer's receives fail with ECONNRESET, and so do its sends; this end closes.
    void reset() noexcept;
    // True once the peer shut its sending down (or reset, or closed).
    bool peer_done() const noexcept;

    // --- transport ---
    reactor& context() const noexcept override { return *reactor_; }
    bool start_recv(operation& op) override;
    bool start_send(operation& op) override;
    void shutdown_send() noexcept override;
    void close() noexcept override;
    std::string peer_name() const override { return "memory"; }
    void cancel(operation& op) noexcept override;
    void abandon(operation& op) noexcept override;

private:
    memory_transport(reactor& r, std::shared_ptr<detail::memory_pipe> pipe, int side) noexcept
        : reactor_(&r), pipe_(std::move(pipe)), side_(side) {}
    friend struct detail::memory_pipe;

    reactor* reactor_;
    std::shared_ptr<detail::memory_pipe> pipe_;
    int side_;  // 0 or 1: which end
};

}  // namespace coronet
