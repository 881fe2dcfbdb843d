#pragma once
// server: listeners, a handler coroutine per connection, limits, and a
// graceful shutdown. What a coronet server has around its handler.
//
// The server binds every address of server_options::listen when built
// (IPv4, IPv6, unix:/path; port 0 picks a free one: local_addresses()), and
// start() accepts on each. Each connection gets a channel and runs
// handler(connection&) in the server's task group, listed in its registry
// (id, peer, age, bytes in and out, state). When accept fails for want of
// descriptors (EMFILE, ENFILE) it backs off 50 ms at a time, with one log
// line per burst (a burst ends after 10 s without a failure). Past
// max_connections a new connection is closed at once, again with one log line
// per burst (ended by 10 s without a refusal); once others close, new ones are
// served again. With an idle_timeout, a connection that moves no byte either way for
// that long is closed (a sweep, not a timer per read: the hot path is left
// alone). After the handler returns, the connection ends with
// lingering_close(), so a reset never destroys the last reply; a handler that
// knows the peer sends nothing more (connection::close_at_once()) has it closed
// as soon as the reply has gone, without waiting for the peer's end.
// shutdown() is graceful: it stops accepting, tells the handlers (stopping(),
// co_await stopped(), and reads that end once what has arrived is read: the
// receive side is shut down), waits up to drain_timeout for them to finish,
// then closes what is left and cancels its handlers. Await shutdown() before
// destroying the server: one destroyed first (with its reactor, say) closes its
// connections and leaves their frames to be destroyed, but a handler that is
// resumed after that must not touch its connection's stopping() or stopped().
// Medusa ancestor: asyncore.dispatcher's listening socket and handle_accept,
// medusa's http_server with its status counters.
// Others: Twisted's LimitTotalConnectionsFactory and stopListening, Seastar's gate.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/connection_registry.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/task_group.hpp>
#include <coronet/coro/tls.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/event.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

namespace coronet {

// How a server listens, limits and shuts down.
struct server_options {
    std::vector<address> listen;           // one or more addresses
    std::size_t max_connections = 10'000;  // past it, new connections are closed at once
    // No byte either way this long: closed (0: never; at most 24 days, a longer one counts as 24).
    std::chrono::milliseconds idle_timeout{0};
    std::chrono::milliseconds drain_timeout{10'000};  // shutdown(): the handlers' time to finish
    std::chrono::milliseconds linger{2'000};  // lingering_close() after the handler (0: plain)
    bool reuse_port = false;                  // SO_REUSEPORT: one server per reactor thread
    channel_options channel{};                // every connection's channel
    // Set: every connection speaks TLS (a context per server, so per thread), after a
    // handshake of at most handshake_timeout; a failed one is logged and closed.
    std::optional<tls_server_options> tls{};
    std::chrono::milliseconds handshake_timeout{10'000};
    connection_totals* totals = nullptr;  // counts shared with other threads' servers
    std::string name = "server";          // in log lines
};

class server;

// One connection, as its handler sees it: the channel and the server's stop.
// Its registry entry and its channel in one (registered_channel: the entry reaches the channel
// by a downcast).
class connection : private registered_channel {
public:
    connection(server& s, socket sock, const channel_options& options);
    connection(server& s, channel over);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    connection& operator=(connection&&) = delete;

    using registered_channel::ch;  // the connection's input and output

    // The registry's id for it.
    std::uint64_t id() const noexcept { return entry().id; }
    // True once the server is shutting down: finish what is in flight, then return.
    bool stopping() const noexcept;
    // co_await: until the server starts shutting down (false if cancelled first).
    event::awaiter stopped() noexcept;
    server& owner() const noexcept { return *server_; }
    // Tells the server that the peer sends nothing more (a request that asked to close, read
    // whole with nothing buffered after it): once the handler returns and the reply has gone,
    // the connection closes (TLS: close_notify) without lingering for the peer's end. Should
    // the peer send after all, the reset its bytes cause can destroy a reply it has not read:
    // not for pipelined bytes, an unread body or an error reply (see lingering_close.hpp).
    void close_at_once() noexcept { entry().at_once = true; }
    bool closes_at_once() const noexcept { return entry().at_once; }

private:
    friend class server;
    // Not listed yet: the server's serve() takes it by value (its frame's copy is the only one
    // kept, with no separate server pointer or channel beside it) and lists that copy.
    struct unlisted_t {};
    connection(server& s, channel over, unlisted_t) noexcept;
    // Only an unlisted one moves (into serve()'s frame).
    connection(connection&& o) noexcept;
    void enlist() noexcept;
    server* server_;
};

class server {
public:
    using handler = std::function<task<void>(connection&)>;

    // Binds every address (throws std::system_error, e.g. EADDRINUSE); accepts nothing yet.
    server(reactor& r, server_options options, handler h);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // The addresses bound, in the order of options.listen (real ports for port 0).
    const std::vector<address>& local_addresses() const noexcept { return addresses_; }
    // Starts accepting on every listener.
    void start();
    // Stops accepting, lets the handlers finish (up to drain_timeout), closes the rest.
    task<void> shutdown();
    // True once shutdown() has begun.
    bool stopping() const noexcept { return stopping_; }

    // The live connections.
    const connection_registry& connections() const noexcept { return registry_; }
    // Connections closed at once because of max_connections.
    std::uint64_t rejected() const noexcept { return rejected_; }
    const server_options& options() const noexcept { return options_; }
    reactor& context() const noexcept { return reactor_; }

private:
    friend class connection;
    task<void> accept_loop(socket listener);
    // One connection: a child_task of connections_ for a plain one (its frame the only record
    // kept for it), a task<void> that serve_tls awaits after the handshake.
    // Connection: the connection itself (a plain one: moved into the frame and listed there),
    // or a reference to one the caller keeps and has listed (serve_tls).
    template <class Coroutine, class Connection>
    static Coroutine serve(Connection c);
    child_task serve_tls(socket s);
    task<channel> handshake(socket s);
    task<void> sweep_idle();
    void reject();

    reactor& reactor_;
    server_options options_;
    handler handler_;
    std::vector<socket> listeners_;  // until start() hands them to the accept loops
    std::vector<address> addresses_;
    task_group accepting_;    // the accept loops and the idle sweep
    task_group connections_;  // one child per connection
    connection_registry registry_;
    event stop_;  // notified when shutdown() begins
    bool stopping_ = false;
    reactor::clock::time_point rejected_at_{};      // the last refusal over the limit
    std::error_code accept_error_;                  // the error of the last accept burst
    reactor::clock::time_point accept_error_at_{};  // when accept last failed
    std::uint64_t rejected_ = 0;
    std::optional<tls_context> tls_;  // options_.tls, loaded
    std::size_t handshakes_ = 0;      // connections in their TLS handshake (count for the limit)
};

}  // namespace coronet
