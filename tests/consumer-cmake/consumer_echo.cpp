// tests/consumer-cmake/consumer_echo.cpp: the smallest coronet echo server, built outside
// coronet against an installed coronet (`cmake --install`): once by CMakeLists.txt here with
// find_package(coronet), once by a plain compiler command with `pkg-config --cflags --libs
// coronet` (run.sh). Usage: consumer_echo [port] (0, the default, picks one). It prints
// "consumer_echo: listening on 127.0.0.1:PORT (backend NAME)" and exits 0 on SIGTERM or SIGINT.

#include <coronet/coronet.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>

coronet::task<> echo(coronet::socket s) {
    std::array<std::byte, 4096> buf;
    while (std::size_t n = co_await s.recv(buf))
        co_await coronet::send_all(s, std::span(buf).first(n));
}

coronet::task<> accept_loop(coronet::socket listener) {
    for (;;)
        coronet::spawn(listener.context(), echo(co_await listener.accept()), "echo");
}

coronet::reactor* loop = nullptr;

extern "C" void on_signal(int) { loop->stop(); }  // async-signal-safe

int main(int argc, char** argv) {
    unsigned port = argc > 1 ? unsigned(std::strtoul(argv[1], nullptr, 10)) : 0;
    coronet::reactor r;
    auto listener = coronet::socket::listen(r, coronet::address::from_host_port("127.0.0.1", port));
    std::printf("consumer_echo: listening on %s (backend %.*s)\n",
                listener.local_address().to_string().c_str(), int(r.backend_name().size()),
                r.backend_name().data());
    std::fflush(stdout);
    coronet::spawn(r, accept_loop(std::move(listener)), "accept");
    loop = &r;
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    while (!r.stopped())
        r.run_once();
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGINT, SIG_DFL);
}
