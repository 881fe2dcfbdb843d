#pragma once
// examples/serve.hpp: the thread-per-core start-up the servers share.
//
// serve::run() starts N threads one by one. Each builds its own reactor and listens on the same
// address with SO_REUSEPORT (the kernel spreads connections); the first binds, maybe port 0,
// and the others join the port it got. A thread that fails to start passes its error back to
// main(), which stops the ones already running and exits 1. Once all are up, SIGINT or SIGTERM
// stops every reactor; each thread then does its own shutdown, and run() returns 0 when all
// have ended. What a thread serves, and how it shuts down, stays in the server's own file.
// accept_each() is the accept loop they share (asyncore's handle_accept).
// Not part of coronet: examples only.

#include <coronet/coronet.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace serve {

// Every running reactor, for stop_all(); filled before the signal handlers are installed.
inline std::vector<coronet::reactor*> loops;
inline std::atomic<bool> stopping{false};  // set once every loop has been told to stop

// SIGINT/SIGTERM. reactor::stop() is async-signal-safe (an atomic store and an eventfd write).
// A loop ends only when `stopping` is set, so no reactor dies while this still uses it.
extern "C" inline void stop_all(int) {
    static std::atomic<bool> once{false};
    if (once.exchange(true)) return;
    for (auto* r : loops)
        r->stop();
    stopping = true;
}

// One server thread, as run() hands it to the server: its number, and the steps it shares with
// the others. The server builds its reactor (after whatever must outlive it), calls listen(),
// spawns its tasks, calls run_until_stopped(), then shuts down its own way.
class thread {
public:
    struct started {
        coronet::reactor* loop;
        coronet::address at;  // the real port, when asked for port 0
        std::string_view backend;
    };

    thread(unsigned index, coronet::address at, coronet::backend_kind backend,
           std::promise<started> ready)
        : index_(index), at_(at), backend_(backend), ready_(std::move(ready)) {}

    unsigned index() const { return index_; }
    coronet::backend_kind backend() const { return backend_; }

    // The listener, sharing the port through SO_REUSEPORT; tells main() this thread is up.
    [[nodiscard]] coronet::socket listen(coronet::reactor& r) {
        auto listener = coronet::socket::listen(r, at_, {.reuse_port = true});
        ready_.set_value({&r, listener.local_address(), r.backend_name()});
        reported_ = true;
        return listener;
    }

    // Runs r until stop_all(). Not r.run(): that returns at r.stop(), and r would die while
    // stop_all() may still use it.
    void run_until_stopped(coronet::reactor& r) const {
        while (!stopping)
            r.run_once();
    }

    // Start-up failed: main() says why. After listen() there is no one left to tell.
    void fail(std::exception_ptr e) {
        if (reported_) std::rethrow_exception(e);
        ready_.set_exception(std::move(e));
    }

private:
    unsigned index_;
    coronet::address at_;
    coronet::backend_kind backend_;
    std::promise<started> ready_;
    bool reported_ = false;
};

// Accepts until cancelled (cancel_slot), handing each connection to take(socket). When accept
// fails, typically EMFILE/ENFILE (out of descriptors), the listener stays readable: back off for
// 50 ms instead of spinning, and log the error once, again only if it changes or persists past
// 10 s (a server at its descriptor limit lets a connection through whenever one closes; that
// must not log again each time). A peer that left before we took it is no error.
template <class Take>
coronet::task<> accept_each(coronet::socket listener, Take take) {
    using namespace std::chrono_literals;
    auto& r = listener.context();
    std::error_code logged;
    coronet::reactor::clock::time_point logged_at{};
    for (;;) {
        std::error_code error;
        try {
            take(co_await listener.accept());
            continue;
        } catch (const std::system_error& e) {
            error = e.code();  // a catch block cannot co_await: handle it below
        }
        if (error == std::errc::operation_canceled) co_return;  // shutting down
        if (error == std::errc::connection_aborted) continue;
        auto now = coronet::reactor::clock::now();
        if (error != logged || now - logged_at >= 10s) {
            coronet::log(coronet::log_level::warning, "accept: " + error.message());
            logged = error;
            logged_at = now;
        }
        co_await coronet::sleep_for(r, 50ms);
    }
}

struct options {
    std::string_view program;  // the name in the start-up error message
    coronet::address at;
    coronet::backend_kind backend;
    unsigned threads = 1;
};

// Starts o.threads threads, each running body; calls listening(address, backend name) once all
// are up, with the signal handlers installed (without one, prints "<program>: listening on
// <address> (backend <name>, <n> threads)"). Returns main()'s exit status: 1 when a thread
// failed to start (said on stderr), else 0 once every thread has ended.
inline int run(const options& o, std::function<void(thread&)> body,
               const std::function<void(const coronet::address&, std::string_view)>& listening = {}) {
    auto thread_main = [&body](thread t) {
        try {
            body(t);
        } catch (...) {
            t.fail(std::current_exception());
        }
    };
    // One thread at a time: the first binds (maybe port 0), the others join its port.
    std::vector<std::thread> workers;
    coronet::address at = o.at;
    std::string_view backend_used;
    try {
        for (unsigned i = 0; i < o.threads; ++i) {
            std::promise<thread::started> ready;
            auto result = ready.get_future();
            workers.emplace_back(thread_main, thread(i, at, o.backend, std::move(ready)));
            auto s = result.get();
            loops.push_back(s.loop);
            at = s.at;
            backend_used = s.backend;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%.*s: %s\n", int(o.program.size()), o.program.data(), e.what());
        stop_all(0);
        for (auto& t : workers)
            t.join();
        return 1;
    }
    std::signal(SIGINT, stop_all);
    std::signal(SIGTERM, stop_all);
    if (listening) {
        listening(at, backend_used);
    } else {
        std::printf("%.*s: listening on %s (backend %.*s, %u thread%s)\n", int(o.program.size()),
                    o.program.data(), at.to_string().c_str(), int(backend_used.size()), backend_used.data(),
                    o.threads, o.threads == 1 ? "" : "s");
    }
    std::fflush(stdout);
    for (auto& t : workers)
        t.join();
    return 0;
}

}  // namespace serve
