// examples/echo_server.cpp: a TCP server that sends every byte it receives back.
//
// The whole shape of a coronet server on one page: a handler coroutine per connection, a
// coronet::server around it (listener, connection limit, graceful shutdown) on each thread of a
// coronet::runtime (--threads N reactors sharing the port through SO_REUSEPORT). SIGINT or
// SIGTERM stops every thread: accepting ends, connections finish, the server exits 0. --port 0
// picks a free port; past --max-connections a new connection is closed at once. With
// --tls-cert and --tls-key every connection speaks TLS, and the handler does not change.
// Medusa ancestor: the echo server of the asyncore documentation.
//
// Try: nc 127.0.0.1 7000
//      openssl s_client -connect 127.0.0.1:7000 (with --tls-cert cert.pem --tls-key key.pem)
//      bazel run //examples:echo_server -- --backend epoll --threads 4

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>

#include <cstdio>
#include <string>

// One connection: write back what arrives until the peer closes (nullopt: handle_close).
// An error escapes to the server, which logs it and closes this connection only.
coronet::task<> echo(coronet::connection& c) {
    for (;;) {
        auto data = co_await c.ch.read_some();
        if (!data) break;
        co_await c.ch.write(*data);
    }
}

// One thread: its own server on the shared port, until the runtime stops.
coronet::task<> serve(coronet::worker& w, coronet::server_options options) {
    options.listen = w.listen_on(options.listen);
    coronet::server server(w.loop(), options, echo);
    server.start();
    w.started(server.local_addresses());
    co_await w.stopped();
    co_await server.shutdown();
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend = "auto", tls_cert, tls_key;
    unsigned port = 7000, threads = 1, max_connections = 10'000;
    cli::parser args("echo_server", "Echoes every byte it receives back to the sender.");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("threads", threads, 1u, 256u, "reactors, one thread and one listener each");
    args.flag("max-connections", max_connections, 1u, 1'000'000u,
              "per thread; past it, closed at once");
    args.flag("tls-cert", tls_cert, "PEM certificate chain: speak TLS (with --tls-key)", "FILE");
    args.flag("tls-key", tls_key, "PEM private key of --tls-cert", "FILE");
    args.parse(argc, argv);
    if (tls_cert.empty() != tls_key.empty()) args.fail("--tls-cert and --tls-key go together");
    std::optional<coronet::tls_server_options> tls;
    if (!tls_cert.empty()) {
        tls = coronet::tls_server_options{.certificate = {tls_cert, tls_key}};
        // Loads the certificate and key now, or fails with a clear message.
        args.convert("--tls-cert", [&] { return coronet::tls_context::server(*tls); });
    }
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });

    coronet::runtime rt(
        {.threads = threads, .reactor = {.backend = *coronet::parse_backend_kind(backend)}});
    coronet::server_options options{.listen = {at},
                                    .max_connections = max_connections,
                                    .reuse_port = true,
                                    .tls = tls,
                                    .name = "echo_server"};
    try {
        rt.run([&options](coronet::worker& w) { return serve(w, options); },
               [&rt, threads] {
                   std::printf("echo_server: listening on %s (backend %s, %u thread%s)\n",
                               rt.addresses()[0].to_string().c_str(), rt.backend_name().c_str(),
                               threads, threads == 1 ? "" : "s");
                   std::fflush(stdout);
               });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
}
