// examples/http_server.cpp: a static-file HTTP/1.1 server, Medusa's http_server on coronet.
//
// GET and HEAD of the files under --root (index.html or an HTML listing for a directory), with
// keep-alive, pipelining and If-Modified-Since; /hello answers "Hello, world!" for benchmarks.
// One coroutine per connection reads requests line by line (read_until("\r\n")) and pushes each
// response without flushing, so responses leave in request order and a pipelined batch leaves
// in one send. Files go out through file_producer, listings through chunked_producer. Parsing,
// path sanitising, MIME types and dates live in examples/http.hpp. SIGINT or SIGTERM stops
// accepting, answers the requests already received (pipelined ones too), lets the responses in
// flight finish and exits 0. --port 0 picks a free port.
// Medusa ancestor: medusa/http_server.py with default_handler.py.
//
// Try: bazel run //examples:http_server -- --root $PWD --port 8080
//      curl -i http://127.0.0.1:8080/hello        wrk -c50 -d5s http://127.0.0.1:8080/hello

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>
#include <coronet/examples/http.hpp>
#include <coronet/examples/serve.hpp>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

using namespace std::chrono_literals;
using clock_type = coronet::reactor::clock;

struct connection;

// What the connections of one reactor share.
struct server {
    std::filesystem::path root;  // canonical
    clock_type::duration idle_timeout;
    http::date_cache date{};
    std::string hello{}, hello_date{};  // the keep-alive GET /hello response and its Date
    std::unordered_set<connection*> connections{};
    coronet::cancel_slot accepting{};  // request() stops the accept loop
    std::optional<coronet::tls_context> tls{};  // --tls-cert/--tls-key: HTTPS
    bool draining = false;             // shutting down: close each connection after its response
};

// One client connection; its strings are reused from request to request.
struct connection {
    connection(server& s, coronet::channel over) : srv(s), ch(std::move(over)) {
        ch.set_max_line(http::max_line);
        srv.connections.insert(this);
    }
    ~connection() { srv.connections.erase(this); }

    server& srv;
    coronet::channel ch;
    http::request req;
    std::string path, out;         // the decoded path; the response head being built
    bool idle = false;             // waiting for a request to begin: shutdown may close it
    bool keep = true;              // keep the connection after this response
    bool pushed_producer = false;  // the last response queued a file or a listing

    // Compared as string_views: std::string == "literal" costs a strlen and a memcmp call.
    bool method_is(std::string_view m) const noexcept { return std::string_view(req.method) == m; }
};

// --- reading ---------------------------------------------------------------------------

// steady_clock's now() from CLOCK_MONOTONIC_COARSE: the same clock read without the TSC, up to
// a few milliseconds behind, which is plenty for a deadline seconds away, and much cheaper to
// read once per request (the precise read was ~5% of the server's user time on /hello).
clock_type::time_point coarse_now() noexcept {
    ::timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return clock_type::time_point(std::chrono::duration_cast<clock_type::duration>(
        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// Reads one request head into c.req: 0, an error status to answer before closing, or -1 when
// the connection just ends (the peer closed, it stayed idle too long, or we are shutting down).
// One deadline covers the wait for the request and the whole head: a client that dribbles a
// byte at a time (slowloris) is cut off when it passes, however often its bytes come.
coronet::task<int> read_request(connection& c) {
    c.req.clear();
    c.ch.set_read_deadline(coarse_now() + c.srv.idle_timeout);  // reads that wait give up then
    bool request_line = true;
    try {
        std::optional<std::string_view> line;
        do {  // empty lines before a request are allowed (RFC 9112 2.2)
            c.idle = c.ch.buffered() == 0;
            line = co_await c.ch.read_until("\r\n");
            c.idle = false;
            if (!line) co_return -1;
        } while (line->empty());
        if (int status = http::parse_request_line(*line, c.req)) co_return status;
        request_line = false;
        for (;;) {  // no co_await in a loop condition: GCC 12.2 miscompiles it
            line = co_await c.ch.read_until("\r\n");
            if (!line) co_return -1;
            if (line->empty()) break;
            if (int status = http::parse_header(*line, c.req)) co_return status;
        }
    } catch (const std::system_error& e) {
        if (e.code() == coronet::errc::line_too_long) co_return request_line ? 414 : 431;
        if (e.code() == coronet::errc::timed_out) co_return c.idle ? -1 : 408;
        throw;
    }
    co_return http::finish_head(c.req);
}

// Reads and drops a request body (finish_head has refused one over http::max_body).
coronet::task<int> skip_body(connection& c) {
    std::uint64_t left = c.req.content_length.value_or(0);
    if (left > 0 && c.req.expect_continue) c.ch.push("HTTP/1.1 100 Continue\r\n\r\n");
    try {
        while (left > 0) {
            auto got = co_await c.ch.read_some(left);
            if (!got) co_return -1;
            left -= got->size();
        }
    } catch (const std::system_error& e) {
        if (e.code() == coronet::errc::timed_out) co_return 408;
        throw;
    }
    co_return 0;
}

// --- answering -------------------------------------------------------------------------

// One access-log line per response, when info logging is on.
void log_response(connection& c, int status) {
    if (coronet::log_enabled(coronet::log_level::info))
        coronet::log(coronet::log_level::info, c.ch.sock().peer_address().to_string() + " \"" +
                                                   c.req.method + " " + c.req.target + "\" " +
                                                   std::to_string(status));
}

// Pushes a response head, and body unless the request was HEAD; nothing is sent yet.
void push_response(connection& c, http::response_head head, std::string_view body = {}) {
    head.connection = !c.keep            ? http::connection_header::close
                      : c.req.minor == 0 ? http::connection_header::keep_alive
                                         : http::connection_header::none;
    c.out.clear();
    http::append_head(c.out, head, c.srv.date.now());
    if (!c.method_is("HEAD")) c.out += body;
    c.ch.push(std::string_view(c.out));
    log_response(c, head.status);
}

// "Hello, world!" as text/plain. The benchmarks' hot path: a keep-alive HTTP/1.1 GET gets a
// response that only changes with the Date, so it is built once a second, not per request.
void push_hello(connection& c) {
    std::string_view hello = "Hello, world!";
    if (!c.method_is("GET") || !c.keep || c.req.minor == 0)
        return push_response(c, {.status = 200, .content_type = "text/plain", .content_length = 13},
                             hello);
    std::string_view date = c.srv.date.now();
    std::string& cached = c.srv.hello;
    if (date != c.srv.hello_date) {  // a new second (or the first request)
        c.srv.hello_date = date;
        cached.clear();
        http::append_head(
            cached, {.status = 200, .content_type = "text/plain", .content_length = 13}, date);
        cached += hello;
    }
    c.ch.push(std::string_view(cached));
    log_response(c, 200);
}

// An HTML page for a status; 405 says which methods are allowed.
void push_error(connection& c, int status) {
    std::string page = http::error_page(status);
    push_response(c,
                  {.status = status,
                   .content_type = "text/html; charset=utf-8",
                   .content_length = page.size(),
                   .extra = status == 405 ? "Allow: GET, HEAD\r\n" : ""},
                  page);
}

// Pushes a producer onto the channel unless the request was HEAD.
void push_body(connection& c, coronet::producer body) {
    if (c.method_is("HEAD")) return;
    c.ch.push(std::move(body));
    c.pushed_producer = true;
}

void serve_path(connection& c, const std::string& rel);

// A directory: "/docs" is redirected to "/docs/" (so relative links work), then its
// index.html is served, or else a listing whose length nobody knows yet: chunked on HTTP/1.1,
// ended by closing the connection on HTTP/1.0.
void serve_directory(connection& c, const std::string& rel, const std::filesystem::path& dir) {
    if (!rel.empty() && !rel.ends_with('/')) {
        auto query = c.req.target.find('?');
        std::string location = "Location: " + c.req.target.substr(0, query) + "/" +
                               (query == std::string::npos ? "" : c.req.target.substr(query)) +
                               "\r\n";
        std::string page = http::error_page(301);
        return push_response(c,
                             {.status = 301,
                              .content_type = "text/html; charset=utf-8",
                              .content_length = page.size(),
                              .extra = location},
                             page);
    }
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / "index.html", ec))
        return serve_path(c, rel + "index.html");
    bool chunked = c.req.minor >= 1;
    if (!chunked) c.keep = false;
    push_response(c,
                  {.status = 200, .content_type = "text/html; charset=utf-8", .chunked = chunked});
    coronet::producer listing = http::listing_producer(dir, rel);
    if (chunked) listing = coronet::chunked_producer(std::move(listing));
    push_body(c, std::move(listing));
}

// A file or directory under the root, by its decoded relative path.
void serve_path(connection& c, const std::string& rel) {
    auto where = http::resolve_under(c.srv.root, rel);  // 403 when symlinks lead outside root
    if (where.status) return push_error(c, where.status);
    // O_NONBLOCK: opening a FIFO must not block the loop (fstat refuses it below).
    int fd = ::open(where.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return push_error(c, errno == ENOENT || errno == ENOTDIR ? 404 : 403);
    coronet::file_producer file(fd);  // owns fd from here on
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) return push_error(c, 500);
    if (S_ISDIR(st.st_mode)) return serve_directory(c, rel, where.path);
    if (!S_ISREG(st.st_mode)) return push_error(c, 403);
    auto since = http::parse_http_date(c.req.if_modified_since);
    if (since && st.st_mtime <= *since)
        return push_response(c, {.status = 304, .last_modified = st.st_mtime});
    push_response(c, {.status = 200,
                      .content_type = http::mime_type(rel),
                      .content_length = std::uint64_t(st.st_size),
                      .last_modified = st.st_mtime});
    if (st.st_size > 0) push_body(c, std::move(file));
}

// Answers one well-formed request: pushes the whole response (or its producers).
void answer(connection& c) {
    // Shutting down: still answer the requests a client has already pipelined (they are in
    // the buffer), and close after the last of them.
    c.keep = c.req.keep_alive() && !(c.srv.draining && c.ch.buffered() == 0);
    c.pushed_producer = false;
    if (!c.method_is("GET") && !c.method_is("HEAD")) return push_error(c, 405);
    if (std::string_view(c.req.target) == "/hello")
        return push_hello(c);  // what decode_path would make "hello"
    if (int status = http::decode_path(c.req.target, c.path))
        return push_error(c, status);  // "..", %2f
    if (std::string_view(c.path) == "hello") return push_hello(c);
    serve_path(c, c.path);
}

// --- connections -----------------------------------------------------------------------

// Waits, at most the idle timeout, until c's queued output has gone; false if it could not.
coronet::task<bool> flush(connection& c) {
    try {
        co_await coronet::with_timeout(c.ch.context(), c.ch.flush(), c.srv.idle_timeout);
    } catch (const std::system_error&) {
        co_return false;  // the peer went away, or stopped reading
    }
    co_return true;
}

// Ends a connection politely: send what is queued, shut our side, then read (and drop) what
// the peer still sends until it closes too, at most 2 s. Closing with unread input would
// reset the connection and could destroy a response the peer has not read (a 413, say).
coronet::task<> close_gently(connection& c) {
    bool flushed = co_await flush(c);
    if (!flushed) co_return;
    c.ch.shutdown_send();
    c.ch.set_read_deadline(clock_type::now() + 2s);
    try {
        for (;;) {
            auto dropped = co_await c.ch.read_some();
            if (!dropped) break;
        }
    } catch (const std::system_error&) {
    }
}

// One connection: requests in, responses out, in order, until either side is done.
coronet::task<> session(coronet::socket s, server* srv) {
    coronet::channel over;
    coronet::tls_handshake_options handshake{.timeout = srv->idle_timeout};  // named: README, GCC 12
    if (srv->tls)  // the handshake, bounded by the idle timeout; a failure is logged by spawn
        over = coronet::channel(co_await coronet::tls_accept(std::move(s), *srv->tls, handshake));
    else
        over = coronet::channel(std::move(s));
    connection c(*srv, std::move(over));
    for (;;) {
        int status = co_await read_request(c);
        if (status == 0 && c.req.content_length.value_or(0) > 0) status = co_await skip_body(c);
        if (status < 0) break;
        if (status > 0) {  // a malformed request: answer, then close (we may have lost our place)
            c.keep = false;
            push_error(c, status);
            break;
        }
        answer(c);
        if (!c.keep) break;
        // Backpressure: a client that pipelines faster than it reads must not make us queue
        // without limit (nor open a file per request before the previous one has gone out).
        bool pipelined = c.ch.buffered() > 0;
        if (c.ch.queued() > 256 * 1024 || (c.pushed_producer && pipelined)) {
            bool flushed = co_await flush(c);
            if (!flushed) break;
        }
    }
    co_await close_gently(c);
}

// --- main ------------------------------------------------------------------------------

// One thread: its own reactor and listener; after SIGINT or SIGTERM, its own gentle shutdown.
void serve_thread(serve::thread& t, const std::filesystem::path& root,
                  clock_type::duration idle_timeout, const coronet::tls_server_options* tls) {
    server srv{.root = root, .idle_timeout = idle_timeout};  // outlives r's sessions
    if (tls) srv.tls = coronet::tls_context::server(*tls);  // one per thread: its session cache
    coronet::reactor r{{.backend = t.backend()}};
    // One session per connection, until shutdown cancels the loop (srv.accepting).
    auto acceptor = serve::accept_each(t.listen(r), [&r, &srv](coronet::socket s) {
        coronet::spawn(r, session(std::move(s), &srv), "http session");
    });
    srv.accepting.owner = &r;
    acceptor.set_cancel_slot(&srv.accepting);
    coronet::spawn(r, std::move(acceptor), "accept");
    t.run_until_stopped(r);

    // Shutting down: stop accepting, close idle connections once their last response has
    // gone, let the others finish theirs (they close after it). Every wait is bounded by the
    // idle timeout.
    srv.accepting.request();
    srv.draining = true;
    for (connection* c : srv.connections)
        if (c->idle) (void)c->ch.close_when_done();  // takes effect without being awaited
    r.restart();  // stop() is kept until restart(): without it run_for() would return at once
    r.run_for(idle_timeout + 3s);
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", root = ".", backend = "auto", tls_cert, tls_key;
    unsigned port = 8080, threads = 1, idle_timeout = 30;
    cli::parser args("http_server", "Serves the files under --root over HTTP/1.1 (GET and HEAD).");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.flag("root", root, "directory to serve");
    args.flag("threads", threads, 1u, 256u, "reactors, one thread and one listener each");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("idle-timeout", idle_timeout, 1u, 3600u,
              "seconds to wait for a request and its whole head (and a stalled reader)");
    args.flag("tls-cert", tls_cert, "PEM certificate chain: serve HTTPS (with --tls-key)", "FILE");
    args.flag("tls-key", tls_key, "PEM private key of --tls-cert", "FILE");
    args.parse(argc, argv);
    if (tls_cert.empty() != tls_key.empty()) args.fail("--tls-cert and --tls-key go together");
    std::optional<coronet::tls_server_options> tls;
    if (!tls_cert.empty()) {
        tls = coronet::tls_server_options{.certificate = {tls_cert, tls_key}, .alpn = {"http/1.1"}};
        args.convert("--tls-cert", [&] { return coronet::tls_context::server(*tls); });  // loads?
    }
    std::error_code ec;
    auto dir = std::filesystem::canonical(root, ec);
    if (ec) args.fail("--root: " + root + ": " + ec.message());
    if (!std::filesystem::is_directory(dir)) args.fail("--root: " + root + ": not a directory");
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });

    auto thread_main = [&dir, &tls, idle = std::chrono::seconds(idle_timeout)](serve::thread& t) {
        serve_thread(t, dir, idle, tls ? &*tls : nullptr);
    };
    auto listening = [&dir, https = tls.has_value()](const coronet::address& bound,
                                                      std::string_view backend_used) {
        std::printf("http_server: serving %s on %s://%s/ (backend %.*s)\n", dir.c_str(),
                    https ? "https" : "http", bound.to_string().c_str(), int(backend_used.size()),
                    backend_used.data());
    };
    return serve::run({.program = "http_server",
                       .at = at,
                       .backend = *coronet::parse_backend_kind(backend),
                       .threads = threads},
                      thread_main, listening);
}
