// examples/udp_echo.cpp: a UDP server that sends every datagram back to its sender.
//
// One socket, one coroutine: receive a datagram with its sender's address, send the same bytes
// back to that address, forever. Each datagram stays one message (no stream: what one send
// sent, one receive gets); one longer than the 64 KiB buffer would be cut, and is logged as
// truncated. On io_uring the socket keeps one multishot receive armed that takes datagrams
// ahead of the coroutine (--no-multishot: one receive per datagram, to compare). SIGINT or
// SIGTERM stops it (exit 0); --port 0 picks a free port, printed in the "listening on" line.
// Medusa ancestor: asyncore.dispatcher over a SOCK_DGRAM socket.
//
// Try: bazel run //examples:udp_echo, then: socat - UDP:127.0.0.1:7001

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <string>

coronet::reactor* running = nullptr;  // for the signal handler: stop() is async-signal-safe

void stop(int) { running->stop(); }

// Sends every datagram back where it came from (asyncore's handle_read, then sendto).
coronet::task<> echo(coronet::datagram_socket s) {
    std::array<std::byte, 65536> buf;
    for (;;) {
        coronet::datagram d = co_await s.recv_from(buf);
        if (d.truncated)
            coronet::log(coronet::log_level::warning,
                         "datagram from " + d.from.to_string() + " truncated");
        co_await s.send_to(std::span(buf).first(d.size), d.from);
    }
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend = "auto";
    unsigned port = 7001;
    bool no_multishot = false;
    cli::parser args("udp_echo", "Sends every UDP datagram back to its sender.");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "UDP port; 0 picks a free one");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.toggle("no-multishot", no_multishot,
                "io_uring: one receive per datagram, no multishot receive");
    args.parse(argc, argv);
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });
    try {
        coronet::reactor r{{.backend = *coronet::parse_backend_kind(backend)}};
        auto s = coronet::datagram_socket::bind(r, at, {.multishot_recv = !no_multishot});
        std::printf("udp_echo: listening on %s (backend %s)\n",
                    s.local_address().to_string().c_str(), std::string(r.backend_name()).c_str());
        std::fflush(stdout);
        running = &r;
        std::signal(SIGINT, stop);
        std::signal(SIGTERM, stop);
        coronet::spawn(r, echo(std::move(s)), "udp_echo");
        r.run();  // until a signal
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "udp_echo: %s\n", e.what());
        return 1;
    }
}
