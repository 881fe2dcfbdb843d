#pragma once
// coronet's errors: one convention everywhere.
//
// Inside lib/ an operation's outcome is an int shaped like an io_uring CQE's
// `res`: >= 0 is a byte count or an fd, < 0 is -errno. coronet's own conditions
// (a line too long, an fd select() cannot watch, a timeout) share one
// std::error_category and travel in the same int, encoded below errno's range.
// At the awaitable boundary throw_if_error() turns a negative result into a
// std::system_error; end of stream is a value (0 bytes), never an exception.
// Medusa ancestor: asyncore's handle_error() and its socket.error tuples.

#include <string>
#include <system_error>

namespace coronet {

// coronet's own error conditions.
enum class errc {
    line_too_long = 1,      // a terminator was not found within max_line bytes
    fd_exceeds_fd_setsize,  // select() cannot watch an fd >= FD_SETSIZE
    timed_out,              // with_timeout() expired before the operation finished
    backend_unavailable,    // the requested backend cannot be set up here
    message_too_long,       // a length-prefixed item exceeds its limit
    channel_closed,         // the channel was closed while the operation waited
    stream_truncated,       // the peer ended the stream without TLS's close_notify
    transport_failed,       // a transport failed; transport::error() says how (a TLS alert...)
    // --- name resolution (resolve(), connect to a host name) ---
    host_not_found,        // the name does not exist, or has no address
    dns_timed_out,         // no DNS server answered in time
    dns_refused,           // the DNS server refused the query (or the connection)
    dns_failed,            // the DNS server failed (SERVFAIL), or an answer was malformed
    no_address_connected,  // connecting to a name: every address failed
    // --- output ---
    producer_failed,  // a producer's more() threw something other than a system_error
};

// The category of coronet::errc ("coronet").
const std::error_category& coronet_category() noexcept;

// Makes an error_code from a coronet::errc.
inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), coronet_category()};
}

// Encodes a coronet error as an operation result (below -errno's range).
constexpr int result_of(errc e) noexcept { return -(0x10000 + static_cast<int>(e)); }

// The error_code an operation result < 0 stands for (errno or coronet::errc).
std::error_code error_of(int result) noexcept;

// Throws std::system_error for result < 0; returns result otherwise.
inline int throw_if_error(int result, const char* what) {
    if (result < 0) [[unlikely]]
        throw std::system_error(error_of(result), what);
    return result;
}

// True for the errnos that mean "the peer went away" (ECONNRESET, EPIPE,
// ENOTCONN, ESHUTDOWN, ECONNABORTED): asyncore's _DISCONNECTED.
bool is_disconnect(const std::error_code& ec) noexcept;

// Short symbolic name of an errno value ("ECONNRESET"), for logs and test output.
std::string errno_name(int err);

}  // namespace coronet

template <>
struct std::is_error_code_enum<coronet::errc> : std::true_type {};
