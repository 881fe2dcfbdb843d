#pragma once
// Test support: loopback TCP from the test's side, blocking-free and bounded. `tcp_client` is a
// non-blocking connection to 127.0.0.1 driven by poll() with timeouts; `listen_tcp` a plain
// listener for a server under test to connect to. A socket call that fails throws
// std::system_error naming the call and the port.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <netinet/in.h>

namespace coronet::testing {

// 127.0.0.1:port.
sockaddr_in loopback(unsigned port);

// A blocking listener on 127.0.0.1 and a free port (stored in port); the caller closes it.
int listen_tcp(unsigned& port, int backlog = 16);

// True once 127.0.0.1:port accepts a connection, trying for up to `timeout`.
bool wait_until_accepting(unsigned port,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

// How a tcp_client connects.
struct client_options {
    int receive_buffer = 0;  // SO_RCVBUF in bytes before connecting (0: the default)
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
};

// A non-blocking connection to 127.0.0.1:port, driven by poll() with timeouts. What arrives
// collects in buffered(); eof() is set by the end of stream or a reset.
class tcp_client {
public:
    using milliseconds = std::chrono::milliseconds;

    explicit tcp_client(unsigned port, const client_options& options = {});
    tcp_client(tcp_client&& o) noexcept;
    tcp_client& operator=(tcp_client&& o) noexcept;
    ~tcp_client() { close(); }

    int fd() const { return fd_; }
    void close();

    // Sends up to all of data within `timeout`: the bytes sent (fewer if the peer closed or
    // stopped reading).
    std::size_t try_send(std::string_view data, milliseconds timeout = std::chrono::seconds(20));
    // Sends all of data within `timeout`, or throws.
    void send(std::string_view data, milliseconds timeout = std::chrono::seconds(20));

    // One read into buffered(), waiting up to `timeout`: false when nothing came (a timeout, or
    // the end of the stream).
    bool read_some(milliseconds timeout);
    // Reads until buffered() holds `size` bytes, the stream ends or `timeout` passes.
    bool fill(std::size_t size, milliseconds timeout = std::chrono::seconds(10));
    // True when the peer closes (or resets) within `timeout` and sends nothing more first.
    bool closed_by_peer(milliseconds timeout);
    // Reads and drops everything until the stream ends, within `timeout`: true if it ended.
    bool reaches_end(milliseconds timeout = std::chrono::seconds(20));
    // The next line without its "\n" (or "\r\n"), waiting up to `timeout`; nullopt at the end
    // of the stream or when none came in time.
    std::optional<std::string> line(milliseconds timeout = std::chrono::seconds(10));
    // Sends data while reading what comes back (so a large echo never deadlocks on full
    // buffers): what came back, data.size() bytes or fewer if the peer closed or `timeout` passed.
    std::string round_trip(std::string_view data, milliseconds timeout = std::chrono::seconds(20));

    std::string& buffered() { return in_; }
    bool eof() const { return eof_; }
    std::size_t received() const { return received_; }  // bytes read in all

private:
    int fd_;
    std::string in_;
    bool eof_ = false;
    std::size_t received_ = 0;
};

}  // namespace coronet::testing
