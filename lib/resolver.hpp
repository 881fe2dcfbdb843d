#pragma once
// resolve(): a host name to every address it has, without blocking the loop.
//
// `co_await resolve(r, "example.org", "80")` gives every IPv4 and IPv6 address
// (with the port set), /etc/hosts and /etc/resolv.conf honoured, as
// getaddrinfo() would, but the queries run on the reactor: c-ares (Debian's
// libc-ares) makes the packets and coronet's backend watches its sockets
// (poll operations) and its timeouts (a reactor timer), so while a DNS server
// is slow every other connection keeps being served. Failures throw
// std::system_error naming the host, with a coronet::errc: host_not_found,
// dns_timed_out, dns_refused, dns_failed. A with_timeout() around it cancels
// it. (GCC 12.2: pass the options as a named variable, not a braced temporary
// inside the co_await expression, in a coroutine that may be destroyed while it
// waits: see coro/connect.cpp.) Medusa ancestor: none (asyncore left names to the blocking socket
// module); the anchors are Asio's async_resolve and Seastar's c-ares resolver.

#include <chrono>
#include <coroutine>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <coronet/lib/address.hpp>
#include <coronet/lib/operation.hpp>
#include <coronet/lib/reactor.hpp>

struct ares_channeldata;  // c-ares' channel and answer, kept out of this header
struct ares_addrinfo;

namespace coronet {

// How resolve() asks.
struct resolve_options {
    // DNS servers to ask instead of /etc/resolv.conf's, "HOST[:PORT],...", e.g.
    // "127.0.0.1:5353" or "[::1]:53" (tests, containers). /etc/hosts is still read first.
    std::string servers{};
    std::chrono::milliseconds attempt_timeout{3000};  // per query sent to one server
    int tries = 2;                                    // queries per server before giving up
    int family = AF_UNSPEC;                           // AF_INET, AF_INET6, or both
};

class resolve_awaiter;

namespace detail {
// An operation the resolver starts on the reactor, and who to tell when it finishes.
struct resolver_op {
    operation op;
    resolve_awaiter* owner = nullptr;
    int fd = -1;  // the c-ares socket watched (-1: the timer)
    bool write = false;
};
}  // namespace detail

// co_await: every address of the name (at least one); throws std::system_error.
class [[nodiscard]] resolve_awaiter {
public:
    resolve_awaiter(reactor& r, std::string host, std::string service, resolve_options options);
    ~resolve_awaiter();
    resolve_awaiter(const resolve_awaiter&) = delete;
    resolve_awaiter& operator=(const resolve_awaiter&) = delete;

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        waiter_ = h;
        if constexpr (requires { h.promise().cancel_slot(); }) slot_ = h.promise().cancel_slot();
        return begin();
    }
    std::vector<address> await_resume();

    // (c-ares and reactor callbacks)
    static void on_sock_state(void* self, int fd, int readable, int writable);
    static void on_result(void* self, int status, int timeouts, ::ares_addrinfo* result);
    static void on_op_done(operation& op);

private:
    struct fd_watch {
        detail::resolver_op rd, wr;
        bool want_read = false, want_write = false, closed = false;
    };
    bool begin();
    void step(int read_fd, int write_fd, bool process);
    bool arm(int& read_fd, int& write_fd);
    void arm_timer();
    void finish();
    void abandon_all() noexcept;

    reactor& reactor_;
    std::string host_, service_;
    resolve_options options_;
    ares_channeldata* channel_ = nullptr;
    std::vector<fd_watch*> watches_;  // owned; closed ones stay until the end (a few at most)
    detail::resolver_op timer_;
    std::vector<address> addresses_;
    int result_ = 0;          // < 0: the failure (-errno or a coronet::errc)
    bool done_ = false;       // c-ares has answered (or failed)
    bool finished_ = false;   // finish() ran
    bool suspended_ = false;  // the waiter is suspended: finish() posts it
    bool posted_ = false, resumed_ = false;
    bool bad_servers_ = false;  // options_.servers did not parse
    std::coroutine_handle<> waiter_;
    cancel_slot* slot_ = nullptr;
    cancel_link link_;
};

// Resolves host (a name or a literal) and service (a port number or a name
// from /etc/services) to every address.
inline resolve_awaiter resolve(reactor& r, std::string host, std::string service,
                               resolve_options options = {}) {
    return {r, std::move(host), std::move(service), std::move(options)};
}

}  // namespace coronet
