// asio_echo: Boost.Asio echo server written with C++20 coroutines
// (co_spawn + use_awaitable), one io_context run by one thread. The reference
// for "the same program in the mainstream C++ coroutine networking library".
//
// Usage: asio_echo --port P [--host 127.0.0.1]
// Boost 1.74 awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

asio::awaitable<void> echo(tcp::socket socket) {
    std::array<char, 65536> buf;
    try {
        for (;;) {
            std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
            co_await asio::async_write(socket, asio::buffer(buf.data(), n), asio::use_awaitable);
        }
    } catch (const std::exception&) {
        // EOF or reset: the coroutine ends and the socket closes.
    }
}

asio::awaitable<void> listener(tcp::acceptor acceptor) {
    for (;;) {
        boost::system::error_code ec;
        tcp::socket socket =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::no_descriptors)
                std::fprintf(stderr, "accept: %s\n", ec.message().c_str());
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
    }
}

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(stderr, "usage: %s --port P [--host ADDR]\n", argv0);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    int port = -1;
    std::string host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--port") && i + 1 < argc) {
            port = std::atoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--host") && i + 1 < argc) {
            host = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    if (port <= 0 || port > 65535) usage(argv[0]);

    try {
        asio::io_context io(1);  // concurrency hint 1: single-threaded, fewer locks
        tcp::endpoint ep(asio::ip::make_address(host), static_cast<unsigned short>(port));
        tcp::acceptor acceptor(io);
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen(4096);
        asio::co_spawn(io, listener(std::move(acceptor)), asio::detached);
        io.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "asio_echo: %s\n", e.what());
        return 1;
    }
}
