// examples/echo_server.cpp: a TCP server that sends every byte it receives back.
//
// The whole shape of a coronet server on one page: parse the command line, build a reactor,
// listen, spawn one coroutine per connection, run. --threads N runs N reactors, one per thread,
// each with its own SO_REUSEPORT listener on the same port (the kernel spreads connections);
// SIGINT or SIGTERM stops them all and the server exits 0. --port 0 picks a free port.
// Medusa ancestor: the echo server of the asyncore documentation.
//
// Try: nc 127.0.0.1 7000
//      bazel run //examples:echo_server -- --backend epoll --threads 4

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// One connection: write back what arrives until the peer closes (nullopt: handle_close).
// The channel holds receive memory only while it has unread bytes, so a connection that
// waits costs its socket and this frame. An error escapes to spawn(), which logs it and
// closes this connection only.
coronet::task<> echo(coronet::socket s) {
    coronet::channel ch(std::move(s));
    for (;;) {
        auto data = co_await ch.read_some();
        if (!data) break;
        co_await ch.write(*data);
    }
}

// Accepts forever, one echo task per connection (asyncore's handle_accept). When accept fails,
// typically EMFILE/ENFILE (out of descriptors), the listener stays readable: log once per burst
// and back off for 50 ms instead of spinning. A peer that left before we took it is no error.
coronet::task<> accept_loop(coronet::socket listener) {
    auto& r = listener.context();
    std::error_code last;
    for (;;) {
        std::error_code error;
        try {
            coronet::spawn(r, echo(co_await listener.accept()), "echo");
            last.clear();
            continue;
        } catch (const std::system_error& e) {
            error = e.code();  // a catch block cannot co_await: handle it below
        }
        if (error == std::errc::connection_aborted) continue;
        if (error != last) coronet::log(coronet::log_level::warning, "accept: " + error.message());
        last = error;
        co_await coronet::sleep_for(r, 50ms);
    }
}

// Every running reactor, for stop_all(); filled before the signal handlers are installed.
std::vector<coronet::reactor*> loops;
std::atomic<bool> stopping{false};  // set once every loop has been told to stop

// SIGINT/SIGTERM. reactor::stop() is async-signal-safe (an atomic store and an eventfd write).
// A loop ends only when `stopping` is set, so no reactor dies while this still uses it.
extern "C" void stop_all(int) {
    static std::atomic<bool> once{false};
    if (once.exchange(true)) return;
    for (auto* r : loops)
        r->stop();
    stopping = true;
}

struct started {
    coronet::reactor* loop;
    coronet::address at;  // the real port, when asked for port 0
    std::string_view backend;
};

// One thread: its own reactor and its own listener, sharing the port through SO_REUSEPORT.
void serve(coronet::address at, coronet::backend_kind kind, std::promise<started> ready) try {
    coronet::reactor r{{.backend = kind}};
    auto listener = coronet::socket::listen(r, at, {.reuse_port = true});
    ready.set_value({&r, listener.local_address(), r.backend_name()});
    coronet::spawn(r, accept_loop(std::move(listener)), "accept");
    // Not r.run(): that returns at r.stop(), and r would die while stop_all() may still use it.
    while (!stopping)
        r.run_once();
} catch (...) {
    ready.set_exception(std::current_exception());  // startup failed: main() says why
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend = "auto";
    unsigned port = 7000, threads = 1;
    cli::parser args("echo_server", "Echoes every byte it receives back to the sender.");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("threads", threads, 1u, 256u, "reactors, one thread and one listener each");
    args.parse(argc, argv);
    coronet::address at;
    try {
        at = coronet::address::from_host_port(host, port);
    } catch (const std::exception& e) {
        args.fail(std::string("--host: ") + e.what());
    }

    // Start the threads one by one: the first binds (maybe port 0), the others join its port.
    std::vector<std::thread> workers;
    std::string_view backend_used;
    try {
        for (unsigned i = 0; i < threads; ++i) {
            std::promise<started> ready;
            auto result = ready.get_future();
            workers.emplace_back(serve, at, *coronet::parse_backend_kind(backend),
                                 std::move(ready));
            auto s = result.get();
            loops.push_back(s.loop);
            at = s.at;
            backend_used = s.backend;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        stop_all(0);
        for (auto& t : workers)
            t.join();
        return 1;
    }
    std::signal(SIGINT, stop_all);
    std::signal(SIGTERM, stop_all);
    std::printf("echo_server: listening on %s (backend %.*s, %u thread%s)\n",
                at.to_string().c_str(), int(backend_used.size()), backend_used.data(), threads,
                threads == 1 ? "" : "s");
    std::fflush(stdout);
    for (auto& t : workers)
        t.join();
}
