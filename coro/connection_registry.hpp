#pragma once
// connection_registry: the live connections of a server, for introspection
// and for shutdown (Medusa's socket_map, grown up).
//
// Each connection's entry lives in the connection itself (48 bytes, linked
// into the registry while it is open), so adding and removing allocate
// nothing, and the hot path writes nothing: bytes in and out are the
// channel's own counters, and the state (reading, writing, idle, draining) is
// read off the channel when someone asks (list()). Totals count every
// connection since the start, and every byte of those already closed. A
// registry belongs to one reactor's thread; connection_totals, shared by the
// servers of several threads, is the part other threads may read.
// Medusa ancestor: asyncore.socket_map, and status_handler's connection table.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <vector>

#include <coronet/coro/channel.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/intrusive_list.hpp>
#include <coronet/lib/reactor.hpp>

namespace coronet {

// What a connection is doing now.
enum class connection_state : unsigned char {
    reading,   // part of a request has arrived, a read waits for the rest
    writing,   // output is queued, or the handler is busy answering
    idle,      // a read waits and nothing unread is buffered
    draining,  // the server is shutting down: finishing what is in flight
};

// "reading", "writing", "idle" or "draining".
std::string_view to_string(connection_state s) noexcept;

// One row of list(): a live connection.
struct connection_info {
    std::uint64_t id;
    address peer;
    reactor::clock::duration age;
    std::uint64_t bytes_in;
    std::uint64_t bytes_out;
    connection_state state;
};

// Counts shared by the servers of several threads (atomics; relaxed).
struct connection_totals {
    std::atomic<std::size_t> open{0};        // connections open now
    std::atomic<std::uint64_t> accepted{0};  // connections accepted since the start
};

// A connection's entry: intrusive, owned by the connection (48 B), which holds it as the base
// of a registered_channel, so that the entry reaches the channel without a pointer.
struct connection_entry {
    std::uint64_t id = 0;
    reactor::clock::time_point started{};
    connection_entry* prev = nullptr;
    connection_entry* next = nullptr;
    // The idle sweep's record, in four bytes each: bytes in + out at the last sweep, modulo
    // 2^32 (a sweep is at most a second apart, so a connection that moved bytes since then
    // is taken for idle only when it moved a multiple of 4 GiB), and when they last changed,
    // as an idle_stamp.
    std::uint32_t seen_bytes = 0;
    std::uint32_t seen_active = 0;
    bool draining = false;
    bool orphaned = false;  // its server is gone: nothing to unlist it from
    bool at_once = false;   // its handler said the peer sends nothing more: close without lingering

    // The connection's channel (the registered_channel this entry is the base of).
    channel& ch() const noexcept;
};
static_assert(sizeof(connection_entry) <= 48, "the registry costs at most 48 B a connection");

// A registry entry with its channel: every listed entry is the base of one (a server's
// connection is one), so that ch() reaches the channel from the entry by a plain downcast
// (no offsetof, which needs a standard-layout type: std::unique_ptr is one under GCC's
// reckoning and not under clang's).
struct registered_channel : connection_entry {
    explicit registered_channel(channel c) noexcept : ch(std::move(c)) {}
    connection_entry& entry() noexcept { return *this; }
    const connection_entry& entry() const noexcept { return *this; }

    channel ch;
};

inline channel& connection_entry::ch() const noexcept {
    return const_cast<channel&>(static_cast<const registered_channel*>(this)->ch);
}

// t in milliseconds modulo 2^32, for the idle sweep's seen_active: the difference of two
// stamps less than about 49 days apart is the milliseconds between them (unsigned arithmetic).
inline std::uint32_t idle_stamp(reactor::clock::time_point t) noexcept {
    using std::chrono::duration_cast, std::chrono::milliseconds;
    return static_cast<std::uint32_t>(duration_cast<milliseconds>(t.time_since_epoch()).count());
}

class connection_registry {
public:
    connection_registry() = default;
    connection_registry(const connection_registry&) = delete;
    connection_registry& operator=(const connection_registry&) = delete;

    // Lists e (part of a registered_channel) under a new id; counts it in totals (if any) too.
    void add(connection_entry& e, connection_totals* totals) noexcept;
    // Unlists e, adding its bytes to the totals.
    void remove(connection_entry& e, connection_totals* totals) noexcept;

    // Connections open now.
    std::size_t size() const noexcept { return size_; }
    // Connections listed since the start.
    std::uint64_t total() const noexcept { return next_id_ - 1; }
    // Bytes received and sent, closed connections and open ones together.
    std::uint64_t bytes_in() const noexcept;
    std::uint64_t bytes_out() const noexcept;
    // One row per open connection, newest first.
    std::vector<connection_info> list() const;
    // What e's connection is doing now.
    static connection_state state_of(const connection_entry& e) noexcept;

    // Calls f(connection_entry&) for each open connection; f must not add or remove any.
    template <class F>
    void for_each(F f) {
        for (connection_entry* e = entries_.front(); e; e = e->next)
            f(*e);
    }

private:
    intrusive_list<connection_entry> entries_;
    std::size_t size_ = 0;
    std::uint64_t next_id_ = 1;
    std::uint64_t closed_in_ = 0, closed_out_ = 0;
};

}  // namespace coronet
