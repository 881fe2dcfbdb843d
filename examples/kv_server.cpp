// examples/kv_server.cpp: a key-value server that speaks Redis's protocol (RESP2).
//
// What it shows is terminator switching, asynchat's set_terminator() as awaitables: a request
// starts with a line (read_until "\n"); "*3" there announces three bulk strings, each a "$5"
// line (read_until "\r\n") followed by exactly 5 bytes and "\r\n" (read_exactly). Any other
// line is an inline command ("SET k v", for telnet). Pipelined requests stay buffered between
// reads, and replies are pushed without a flush: a batch of 16 requests leaves in one send.
// Announced counts and lengths are checked before anything is allocated (--max-bulk). The
// commands and the keyspace live in resp.hpp; with --threads N, N reactors share one keyspace.
// SIGINT or SIGTERM stops it gracefully: requests already received are answered first.
// Medusa ancestor: asynchat.async_chat's terminator switching (its http_server, for headers
// then a body).
//
// Try: redis-cli -p 6380
//      redis-benchmark -p 6380 -t set,get -P 16 -q
//      bazel run //examples:kv_server -- --threads 4 --backend epoll

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>
#include <coronet/examples/resp.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

// A bulk string up to this size is read whole (read_exactly); a bigger one comes in pieces, so
// memory follows the bytes that arrive, not the length a client announces.
constexpr std::size_t whole_bulk = 64 * 1024;

// Replies queued beyond this stop the reading: a client that does not read cannot grow them.
constexpr std::size_t max_queued = 1024 * 1024;

// The requests of one connection: read one (switching terminators), run it, push the reply.
// Returns at end of stream, after QUIT, or after replying to a protocol error.
coronet::task<> serve_requests(coronet::channel* ch, kv::store* db, kv::limits lim) {
    std::vector<std::string> args;  // reused, so steady traffic does not allocate
    std::string reply;
    for (;;) {
        std::size_t argc = 0;
        std::string error;
        try {
            auto line = co_await ch->read_until("\n");  // "\n", not "\r\n": Redis takes both inline
            if (!line) co_return;                       // the peer closed (handle_close)
            std::string_view first = *line;
            if (first.ends_with('\r')) first.remove_suffix(1);
            if (!first.starts_with('*')) {
                argc = kv::split_inline(first, args);  // "SET k v"
            } else {
                for (std::size_t n = kv::multibulk_count(first, lim); argc < n; ++argc) {
                    auto head = co_await ch->read_until("\r\n");  // "$5"
                    if (!head) co_return;
                    std::size_t len = kv::bulk_length(*head, lim);
                    if (argc == args.size()) args.emplace_back();
                    std::string& arg = args[argc];
                    if (len <= whole_bulk) {
                        auto bulk = co_await ch->read_exactly(len + 2);  // "hello\r\n"
                        if (!bulk) co_return;
                        arg.assign(kv::bulk_body(*bulk));  // copied: the view dies at the next read
                    } else {
                        arg.clear();
                        while (arg.size() < len + 2) {
                            auto part = co_await ch->read_some(len + 2 - arg.size());
                            if (!part) co_return;
                            arg.append(*part);
                        }
                        arg.resize(kv::bulk_body(arg).size());
                    }
                }
            }
        } catch (const kv::protocol_error& e) {
            error = e.what();
        } catch (const std::system_error& e) {
            if (e.code() != coronet::errc::line_too_long) throw;
            error = "too big inline request";
        }
        reply.clear();
        if (!error.empty()) {  // as Redis: say why, then close
            kv::reply_error(reply, "ERR Protocol error: " + error);
            ch->push(std::string_view(reply));
            co_return;
        }
        if (argc == 0) continue;  // an empty line, or "*0"
        kv::after_reply next = db->execute(std::span(args.data(), argc), reply);
        ch->push(std::string_view(reply));  // queued; sent once this coroutine waits for input
        if (next == kv::after_reply::close) co_return;
        if (ch->queued() > max_queued) co_await ch->flush();
    }
}

// One connection. An I/O error escapes to the server, which logs it and closes this one only;
// the server's lingering close sends what is still queued first.
coronet::task<> session(coronet::connection& c, kv::store* db, kv::limits lim) {
    c.ch.sock().set_nodelay(true);  // a reply goes out as soon as it is ready
    co_await serve_requests(&c.ch, db, lim);
}

// Expiry's second half (the first is lazy, on access): every 100 ms, delete the keys whose
// deadline passed, at most 10,000 a turn so one sweep never stalls the loop for long.
coronet::task<> sweep_expired(coronet::reactor* r, kv::store* db) {
    for (;;) {
        bool slept = co_await coronet::sleep_for(*r, 100ms);
        if (!slept) co_return;  // cancelled: shutting down
        db->sweep(10'000);
    }
}

// Thread number w.index(): its own server on the shared port; thread 0 also sweeps. After
// SIGINT or SIGTERM, the server's graceful shutdown: each connection's reads end after what its
// client already sent, so every request received is still answered.
coronet::task<> serve(coronet::worker& w, coronet::server_options options, kv::store* db,
                      kv::limits lim) {
    options.listen = w.listen_on(options.listen);
    coronet::server server(w.loop(), options,
                           [db, lim](coronet::connection& c) { return session(c, db, lim); });
    server.start();
    coronet::task_handle sweeper;
    if (w.index() == 0) sweeper = coronet::spawn(w.loop(), sweep_expired(&w.loop(), db), "sweep");
    w.started(server.local_addresses());
    co_await w.stopped();
    sweeper.cancel();
    co_await server.shutdown();
    co_await sweeper;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend = "auto";
    unsigned port = 6380, threads = 1, max_connections = 10'000;
    kv::limits lim;
    cli::parser args("kv_server",
                     "A key-value server speaking Redis's protocol (try: redis-cli -p 6380).");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.flag("threads", threads, 1u, 256u,
              "reactors, one thread and one listener each, one keyspace");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("max-bulk", lim.max_bulk, std::size_t{1}, std::size_t{1} << 40,
              "longest bulk string accepted, in bytes; a longer one closes the connection");
    args.flag("max-connections", max_connections, 1u, 1'000'000u,
              "per thread; past it, closed at once");
    args.parse(argc, argv);
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });

    kv::store db(threads > 1 ? kv::sharing::many_threads : kv::sharing::one_thread);
    coronet::connection_totals clients;  // every thread's connections, for INFO
    db.count_clients(&clients.open, &clients.accepted);
    coronet::runtime rt(
        {.threads = threads, .reactor = {.backend = *coronet::parse_backend_kind(backend)}});
    // Lines are at most 64 KiB (max_line's default, Redis's inline limit).
    coronet::server_options options{
        .listen = {at},
        .max_connections = max_connections,
        .reuse_port = true,
        .channel = {.max_buffer = std::min(lim.max_bulk, whole_bulk) + 2},
        .totals = &clients,
        .name = "kv_server"};
    try {
        rt.run([&](coronet::worker& w) { return serve(w, options, &db, lim); },
               [&rt, threads] {
                   std::printf("kv_server: listening on %s (backend %s, %u thread%s)\n",
                               rt.addresses()[0].to_string().c_str(), rt.backend_name().c_str(),
                               threads, threads == 1 ? "" : "s");
                   std::fflush(stdout);
               });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kv_server: %s\n", e.what());
        return 1;
    }
}
