// asio_http: Boost.Asio HTTP/1.1 server with C++20 coroutines, one thread.
//
// GET /hello -> 200 "Hello, world!" (13 bytes, Content-Length, keep-alive);
// anything else -> 404. Requests are read with async_read_until("\r\n\r\n")
// into a streambuf; after each read every complete request already in the
// buffer is answered, and all those answers go out with one async_write, so
// pipelined requests cost one write per batch. Requests with a body are not
// supported (answered 400 and closed): the benchmarks only send GETs.
//
// Usage: asio_http --port P [--host 127.0.0.1]
// Boost 1.74 awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::string_view kHello =
    "HTTP/1.1 200 OK\r\n"
    "Server: asio_http\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, world!";
constexpr std::string_view kNotFound =
    "HTTP/1.1 404 Not Found\r\n"
    "Server: asio_http\r\n"
    "Content-Length: 0\r\n"
    "\r\n";
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\n"
    "Server: asio_http\r\n"
    "Content-Length: 0\r\n"
    "Connection: close\r\n"
    "\r\n";

bool iequals_prefix(std::string_view line, std::string_view prefix) {
    if (line.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); i++) {
        char a = line[i], b = prefix[i];
        if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
        if (a != b) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Answers one request head (request line + headers, without the final CRLF
// CRLF). Returns false when the connection must close after the answer.
bool answer(std::string_view head, std::string& out) {
    std::size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    std::string_view headers =
        eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);

    std::size_t sp1 = line.find(' ');
    std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
        out += kBadRequest;
        return false;
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);

    bool keep_alive = version == "HTTP/1.1";
    while (!headers.empty()) {
        std::size_t e = headers.find("\r\n");
        std::string_view h = headers.substr(0, e);
        headers = e == std::string_view::npos ? std::string_view{} : headers.substr(e + 2);
        if (iequals_prefix(h, "connection:")) {
            std::string_view v = trim(h.substr(11));
            if (iequals_prefix(v, "close")) keep_alive = false;
            if (iequals_prefix(v, "keep-alive")) keep_alive = true;
        } else if (iequals_prefix(h, "content-length:")) {
            if (trim(h.substr(15)) != "0") {
                out += kBadRequest;
                return false;
            }
        } else if (iequals_prefix(h, "transfer-encoding:")) {
            out += kBadRequest;
            return false;
        }
    }
    if ((method == "GET" || method == "HEAD") && target == "/hello") {
        out += method == "HEAD" ? kHello.substr(0, kHello.size() - 13) : kHello;
    } else {
        out += kNotFound;
    }
    return keep_alive;
}

asio::awaitable<void> session(tcp::socket socket) {
    asio::streambuf in(1 << 20);  // a request head larger than 1 MiB is an error
    std::string out;
    try {
        for (;;) {
            co_await asio::async_read_until(socket, in, "\r\n\r\n", asio::use_awaitable);
            // Answer every complete request already buffered.
            out.clear();
            bool keep_alive = true;
            for (;;) {
                std::string_view data(static_cast<const char*>(in.data().data()), in.size());
                std::size_t end = data.find("\r\n\r\n");
                if (end == std::string_view::npos) break;
                keep_alive = answer(data.substr(0, end), out);
                in.consume(end + 4);
                if (!keep_alive) break;
            }
            co_await asio::async_write(socket, asio::buffer(out), asio::use_awaitable);
            if (!keep_alive) {
                boost::system::error_code ec;
                socket.shutdown(tcp::socket::shutdown_send, ec);
                co_return;
            }
        }
    } catch (const std::exception&) {
        // EOF, reset or an oversized head: the coroutine ends, the socket closes.
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
        asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
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
        asio::io_context io(1);
        tcp::endpoint ep(asio::ip::make_address(host), static_cast<unsigned short>(port));
        tcp::acceptor acceptor(io);
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen(4096);
        asio::co_spawn(io, listener(std::move(acceptor)), asio::detached);
        io.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "asio_http: %s\n", e.what());
        return 1;
    }
}
