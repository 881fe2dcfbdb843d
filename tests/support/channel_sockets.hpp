#pragma once
// Socket helpers shared by the channel tests over socket pairs (channel_*_test.cpp).
//
// Where a test needs data to arrive as separate receives, send_pieces() sends one
// piece and then waits until the reader's socket has nothing left unread (FIONREAD)
// before it sends the next: each receive then holds exactly one piece, whatever
// the backend or the machine's speed.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/net.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>

#include "tests/support/channel_data.hpp"

namespace coronet::testing {

// Bytes the kernel holds for fd that nobody has received yet; -1 once fd is gone.
inline int unread_bytes(int fd) {
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

inline void set_linger_zero(coronet::socket& s) {
    ::linger l{1, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Sends each piece as its own receive (see the header), then closes: end of stream.
inline task<void> send_pieces(coronet::socket s, std::vector<std::string> pieces, int reader_fd) {
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        co_await send_all(s, pieces[i]);
        if (i + 1 < pieces.size())
            while (unread_bytes(reader_fd) > 0)
                co_await sleep_for(s.context(), std::chrono::milliseconds(0));
    }
    s.close();
}

// Sends data as fast as the peer takes it, then closes.
inline task<void> send_and_close(coronet::socket s, std::string data) {
    co_await send_all(s, data);
    s.close();
}

// Sends data; the peer may go away meanwhile (its error is returned, not thrown).
inline task<std::error_code> send_tolerating_close(coronet::socket s, std::string data) {
    try {
        co_await send_all(s, data);
    } catch (const std::system_error& e) {
        co_return e.code();
    }
    co_return std::error_code{};
}

struct lines_and_tail {
    std::vector<std::string> lines;
    std::string tail;  // what read_some() returned after read_until() saw the end of stream
};

inline task<lines_and_tail> read_lines(channel ch, std::string term) {
    lines_and_tail out;
    for (;;) {
        auto line = co_await ch.read_until(term);
        if (!line) break;
        out.lines.emplace_back(*line);
    }
    for (;;) {
        auto rest = co_await ch.read_some();
        if (!rest) break;
        out.tail += *rest;
    }
    co_return out;
}

// Runs read_lines() against send_pieces() over a fresh socket pair.
inline lines_and_tail lines_from_pieces(reactor& r, std::vector<std::string> pieces,
                                        std::string term, channel_options options = {}) {
    auto [a, b] = socket::pair(r);
    int fd = a.native_handle();
    auto [got, unused] = r.run(when_all(read_lines(channel(std::move(a), options), std::move(term)),
                                        send_pieces(std::move(b), std::move(pieces), fd)));
    return got;
}

// The first case whose lines differ from classic_lines, described; "" when all match.
inline std::string first_bad_case(const lines_and_tail& got,
                                  const std::vector<std::string>& case_names) {
    const std::size_t per = classic_lines.size();
    for (std::size_t k = 0; k < case_names.size(); ++k) {
        for (std::size_t j = 0; j < per; ++j) {
            std::size_t i = k * per + j;
            if (i >= got.lines.size())
                return case_names[k] + ": line " + std::to_string(j) + " missing";
            if (got.lines[i] != classic_lines[j])
                return case_names[k] + ": line " + std::to_string(j) + " is \"" +
                       printable(got.lines[i]) + "\", expected \"" + printable(classic_lines[j]) +
                       "\"";
        }
    }
    if (got.lines.size() != case_names.size() * per)
        return std::to_string(got.lines.size() - case_names.size() * per) + " extra lines";
    return "";
}

struct received {
    std::string bytes;
    std::size_t reads = 0;
};

// Receives until end of stream (the socket is closed when done).
inline task<received> receive_all(coronet::socket s) {
    received out;
    std::vector<std::byte> buf(64 * 1024);
    for (;;) {
        std::size_t n = co_await s.recv(buf);
        if (n == 0) break;
        ++out.reads;
        out.bytes.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    s.close();
    co_return out;
}

inline task<std::optional<std::string>> line_from(channel& ch, std::string term) {
    co_return own(co_await ch.read_until(term));
}

inline task<std::optional<std::string>> exactly_from(channel& ch, std::size_t n) {
    co_return own(co_await ch.read_exactly(n));
}

}  // namespace coronet::testing
