// examples/echo_server.cpp: a TCP server that sends every byte it receives back.
//
// The whole shape of a coronet server on one page: parse the command line, build a reactor,
// listen, spawn one coroutine per connection, run. --threads N runs N reactors, one per thread,
// each with its own SO_REUSEPORT listener on the same port (the kernel spreads connections);
// SIGINT or SIGTERM stops them all and the server exits 0. --port 0 picks a free port. The
// threads, the signals and the accept loop are serve.hpp's, shared with the other servers.
// Medusa ancestor: the echo server of the asyncore documentation.
//
// Try: nc 127.0.0.1 7000
//      bazel run //examples:echo_server -- --backend epoll --threads 4

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>
#include <coronet/examples/serve.hpp>

#include <cstdio>
#include <string>
#include <string_view>

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

// The same over TLS (--tls-cert, --tls-key): the handshake, then the same loop on a channel.
coronet::task<> echo_tls(coronet::socket s, coronet::tls_context tls) {
    coronet::channel ch(co_await coronet::tls_accept(std::move(s), tls));
    for (;;) {
        auto data = co_await ch.read_some();
        if (!data) break;
        co_await ch.write(*data);
    }
}

// One thread: its own reactor and listener, echoing until SIGINT or SIGTERM.
void serve_thread(serve::thread& t, const coronet::tls_server_options* tls_options) {
    coronet::reactor r{{.backend = t.backend()}};
    std::optional<coronet::tls_context> tls;
    if (tls_options) tls = coronet::tls_context::server(*tls_options);
    // One echo task per connection (asyncore's handle_accept).
    auto accept_loop = serve::accept_each(t.listen(r), [&r, &tls](coronet::socket s) {
        if (tls)
            coronet::spawn(r, echo_tls(std::move(s), *tls), "echo");
        else
            coronet::spawn(r, echo(std::move(s)), "echo");
    });
    coronet::spawn(r, std::move(accept_loop), "accept");
    t.run_until_stopped(r);
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend = "auto", tls_cert, tls_key;
    unsigned port = 7000, threads = 1;
    cli::parser args("echo_server", "Echoes every byte it receives back to the sender.");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("threads", threads, 1u, 256u, "reactors, one thread and one listener each");
    args.flag("tls-cert", tls_cert, "PEM certificate chain: speak TLS (with --tls-key)", "FILE");
    args.flag("tls-key", tls_key, "PEM private key of --tls-cert", "FILE");
    args.parse(argc, argv);
    if (tls_cert.empty() != tls_key.empty()) args.fail("--tls-cert and --tls-key go together");
    std::optional<coronet::tls_server_options> tls;
    if (!tls_cert.empty()) {
        tls = coronet::tls_server_options{.certificate = {tls_cert, tls_key}};
        args.convert("--tls-cert", [&] { return coronet::tls_context::server(*tls); });  // loads?
    }
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });

    return serve::run({.program = "echo_server",
                       .at = at,
                       .backend = *coronet::parse_backend_kind(backend),
                       .threads = threads},
                      [&tls](serve::thread& t) { serve_thread(t, tls ? &*tls : nullptr); });
}
