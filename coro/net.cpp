#include <coronet/coro/net.hpp>

namespace coronet {

task<void> send_all(socket& s, std::span<const std::byte> data) {
    while (!data.empty())
        data = data.subspan(co_await s.send(data));
}

task<void> send_all(socket& s, std::string_view data) {
    co_await send_all(s, std::as_bytes(std::span(data)));
}

task<std::size_t> recv_exactly(socket& s, std::span<std::byte> buffer) {
    std::size_t got = 0;
    while (got < buffer.size()) {
        std::size_t n = co_await s.recv(buffer.subspan(got));
        if (n == 0) break;
        got += n;
    }
    co_return got;
}

}  // namespace coronet
