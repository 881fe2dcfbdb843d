#pragma once
// A socket address: IPv4, IPv6 or a Unix-domain path, parsed from text.
//
// "127.0.0.1:7000", "[::1]:7000", "localhost:7000" (resolved once, blocking,
// at parse time, to its first address: fine before a loop runs; inside one use
// lib/resolver.hpp's resolve() or coro/connect.hpp's connect(r, host, port),
// which never block and try every address) and "unix:/path/to/socket".
// Medusa ancestor: the (host, port) tuples asyncore passes to bind() and connect().

#include <cstddef>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace coronet {

class address {
public:
    address() = default;
    // Copies a raw sockaddr of the given length.
    address(const sockaddr* sa, socklen_t len) noexcept;

    // Parses host:port, [v6]:port or unix:/path; throws std::invalid_argument
    // with the reason on malformed text, std::system_error when a name does
    // not resolve.
    static address parse(std::string_view text);
    // host (name or literal) and port; throws like parse().
    static address from_host_port(std::string_view host, unsigned port);
    // unix:path; throws std::invalid_argument when the path is too long.
    static address unix_path(std::string_view path);

    int family() const noexcept { return storage_.ss_family; }
    // The port (0 for Unix-domain addresses).
    unsigned port() const noexcept;
    // "127.0.0.1:7000", "[::1]:7000" or "unix:/path".
    std::string to_string() const;

    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
    sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
    socklen_t size() const noexcept { return len_; }
    void resize(socklen_t len) noexcept { len_ = len; }
    static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }

private:
    sockaddr_storage storage_{};
    socklen_t len_ = 0;
};

}  // namespace coronet
