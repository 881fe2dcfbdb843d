#pragma once
// connect(r, host, port): a connection to a host name, the way a client wants one.
//
// Resolves the name on the loop (lib/resolver.hpp: every address, nothing
// blocks), then races its addresses with Happy Eyeballs (lib/happy_eyeballs.hpp:
// IPv6 first, the next attempt 250 ms later or as soon as one fails, the first
// to connect wins), the whole of it under one deadline. Failures are
// std::system_errors naming the host: resolve errors (host_not_found,
// dns_timed_out, ...), the last attempt's errno (ECONNREFUSED, ...), or
// coronet::errc::timed_out. Medusa ancestor: asyncore.dispatcher.connect((host, port)).

#include <chrono>
#include <string>

#include <coronet/coro/task.hpp>
#include <coronet/lib/happy_eyeballs.hpp>
#include <coronet/lib/resolver.hpp>
#include <coronet/lib/socket.hpp>

namespace coronet {

// How connect(r, host, port) resolves and connects.
struct connect_host_options {
    resolve_options resolve{};                     // DNS servers, per-query timeout, family
    std::chrono::milliseconds attempt_delay{250};  // between Happy Eyeballs attempts
    std::chrono::milliseconds timeout{30'000};     // for all of it, resolution included
    bool nodelay = true;                           // TCP_NODELAY on the connection
};

// Connects to host (a name or a literal) on port; throws std::system_error.
task<socket> connect(reactor& r, std::string host, unsigned port,
                     connect_host_options options = {});

}  // namespace coronet
