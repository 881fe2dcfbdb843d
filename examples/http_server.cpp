// examples/http_server.cpp: a static-file HTTP/1.1 server, Medusa's http_server on coronet.
//
// GET and HEAD of the files under --root (index.html or an HTML listing for a directory), with
// keep-alive, pipelining and If-Modified-Since; /hello answers "Hello, world!" for benchmarks.
// /hello and the error pages are http::fixed_response: their bytes are built once per Date
// second for each variant (GET or HEAD, and the Connection header HTTP/1.0, keep-alive or
// close calls for) and pushed as they are, whatever the request's method and version.
// One coroutine per connection reads requests line by line (read_until("\r\n")) and pushes each
// response without flushing, so responses leave in request order and a pipelined batch leaves
// in one send. Paths are looked up in an open-file cache (coronet::open_file_cache: open
// descriptors, sizes and mtimes, checked again at every request) and files go out from its
// descriptors (sendfile), listings through chunked_producer. Parsing, path decoding, MIME
// types and dates live in examples/http.hpp. GET /status is Medusa's
// status page (HTML), GET /status.json the same figures as JSON: one row per live connection
// from the server's registry. The listener, --max-connections, the lingering close and the
// graceful stop are coronet::server's: SIGINT or SIGTERM stops accepting, answers the requests
// already received (pipelined ones too), lets the responses in flight finish and exits 0.
// --port 0 picks a free port.
// Medusa ancestor: medusa/http_server.py with default_handler.py.
//
// Try: bazel run //examples:http_server -- --root $PWD --port 8080
//      curl -i http://127.0.0.1:8080/hello        wrk -c50 -d5s http://127.0.0.1:8080/hello

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>
#include <coronet/examples/http.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using clock_type = coronet::reactor::clock;

// What the connections of one reactor share.
struct server {
    std::filesystem::path root;  // canonical
    clock_type::duration idle_timeout;
    unsigned thread = 0, threads = 1;
    const coronet::connection_totals* totals = nullptr;  // every thread's connections
    coronet::server* net = nullptr;                      // this thread's, for /status
    coronet::worker* w = nullptr;                        // this thread's, to ask the others
    coronet::open_file_cache* files = nullptr;           // this thread's: paths kept open
    std::vector<server*>* all = nullptr;                 // every thread's: entry i for thread i
    clock_type::time_point started = clock_type::now();
    std::uint64_t requests = 0;  // answered by this thread
    // The other threads' figures, gathered for the /status page being answered.
    std::vector<coronet::connection_info> other_rows{};
    std::uint64_t other_requests = 0, other_bytes = 0;
    std::size_t other_buffers = 0;
    http::date_cache date{};
    // The responses that change only with the Date: "Hello, world!" and the error pages (made
    // when first needed), each handed out whole for every method, version and Connection.
    http::fixed_response hello{200, "text/plain", "Hello, world!"};
    std::map<int, http::fixed_response> errors{};
};

// One client connection; its strings are reused from request to request.
struct connection {
    connection(server& s, coronet::connection& c) : srv(s), conn(c), ch(c.ch) {
        ch.set_max_line(http::max_line);
    }

    server& srv;
    coronet::connection& conn;  // the server's: the channel, and whether we are stopping
    coronet::channel& ch;
    http::request req;
    std::string path, out;         // the decoded path; the response head being built
    bool idle = false;             // waiting for a request to begin
    bool keep = true;              // keep the connection after this response
    bool pushed_producer = false;  // the last response queued a file or a listing

    // Compared as string_views: std::string == "literal" costs a strlen and a memcmp call.
    bool method_is(std::string_view m) const noexcept { return std::string_view(req.method) == m; }
};

// --- reading ---------------------------------------------------------------------------

// Reads one request head into c.req: 0, an error status to answer before closing, or -1 when
// the connection just ends (the peer closed, it stayed idle too long, or we are shutting down).
// One deadline covers the wait for the request and the whole head: a client that dribbles a
// byte at a time (slowloris) is cut off when it passes, however often its bytes come.
coronet::task<int> read_request(connection& c) {
    c.req.clear();
    // Reads that wait give up then (a coarse clock: a tick off is nothing beside the timeout).
    c.ch.set_read_deadline(coronet::coarse_now() + c.srv.idle_timeout);
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

// What the response says about the connection: close, or keep-alive (which HTTP/1.0 must hear).
http::connection_header connection_header_for(const connection& c) {
    return !c.keep            ? http::connection_header::close
           : c.req.minor == 0 ? http::connection_header::keep_alive
                              : http::connection_header::none;
}

// Pushes a response head, and body unless the request was HEAD; nothing is sent yet.
void push_response(connection& c, http::response_head head, std::string_view body = {}) {
    head.connection = connection_header_for(c);
    c.out.clear();
    http::append_head(c.out, head, c.srv.date.now());
    if (!c.method_is("HEAD")) c.out += body;
    c.ch.push(std::string_view(c.out));
    log_response(c, head.status);
}

// Pushes a fixed response as the bytes it keeps for this request's variant: the same path
// for GET and HEAD, HTTP/1.0 and 1.1, kept or closed. /hello is the benchmarks' hot path.
void push_fixed(connection& c, http::fixed_response& response) {
    c.ch.push(response.bytes(c.srv.date.now(), {.head_only = c.method_is("HEAD"),
                                                .connection = connection_header_for(c)}));
    log_response(c, response.status());
}

// An HTML page for a status, a fixed response made the first time the status is answered;
// 405 says which methods are allowed.
void push_error(connection& c, int status) {
    auto page = c.srv.errors.find(status);
    if (page == c.srv.errors.end())
        page =
            c.srv.errors
                .try_emplace(status, status, "text/html; charset=utf-8", http::error_page(status),
                             status == 405 ? "Allow: GET, HEAD\r\n" : "")
                .first;
    push_fixed(c, page->second);
}

// Pushes a producer onto the channel unless the request was HEAD.
void push_body(connection& c, coronet::producer body) {
    if (c.method_is("HEAD")) return;
    c.ch.push(std::move(body));
    c.pushed_producer = true;
}

void serve_file(connection& c, const std::string& rel, const coronet::open_file& file);

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
    coronet::open_file index = c.srv.files->lookup(rel + "index.html");
    if (index.status == 403) return push_error(c, 403);  // a symlink out of the root, say
    if (index.status == 0 && !index.directory) return serve_file(c, rel + "index.html", index);
    bool chunked = c.req.minor >= 1;
    if (!chunked) c.keep = false;
    push_response(c,
                  {.status = 200, .content_type = "text/html; charset=utf-8", .chunked = chunked});
    coronet::producer listing = http::listing_producer(dir, rel);
    if (chunked) listing = coronet::chunked_producer(std::move(listing));
    push_body(c, std::move(listing));
}

// A file found under the root: its head, then its bytes from the descriptor the open-file
// cache keeps (sendfile for all but small files).
void serve_file(connection& c, const std::string& rel, const coronet::open_file& file) {
    auto since = http::parse_http_date(c.req.if_modified_since);
    if (since && file.mtime <= *since)
        return push_response(c, {.status = 304, .last_modified = file.mtime});
    push_response(c, {.status = 200,
                      .content_type = http::mime_type(rel),
                      .content_length = file.size,
                      .last_modified = file.mtime});
    if (file.size > 0) push_body(c, file.body());
}

// A file or directory under the root, by its decoded relative path: the open-file cache
// answers (403 when symlinks lead outside root), checking the path again on every request.
void serve_path(connection& c, const std::string& rel) {
    coronet::open_file found = c.srv.files->lookup(rel);
    if (found.status) return push_error(c, found.status);
    if (found.directory) return serve_directory(c, rel, found.path);
    serve_file(c, rel, found);
}

// --- the status page (Medusa's status_handler) ------------------------------------------

// Seconds, with milliseconds.
std::string seconds(clock_type::duration d) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", std::chrono::duration<double>(d).count());
    return text;
}

// A JSON string (the peer addresses and the backend need nothing more than quotes).
std::string json_string(std::string_view text) { return "\"" + std::string(text) + "\""; }

// GET /status (HTML) and GET /status.json: the server's figures and its live connections.
void push_status(connection& c, bool json) {
    const server& srv = c.srv;
    const coronet::connection_registry& live = srv.net->connections();
    auto rows = live.list();
    rows.insert(rows.end(), srv.other_rows.begin(), srv.other_rows.end());
    std::uint64_t requests = srv.requests + srv.other_requests;
    std::uint64_t bytes_sent = live.bytes_out() + srv.other_bytes;
    std::size_t buffers = c.ch.context().buffers_in_use() + srv.other_buffers;
    std::string backend(c.ch.context().backend_name());
    std::size_t open = srv.totals ? srv.totals->open.load(std::memory_order_relaxed) : live.size();
    std::uint64_t total =
        srv.totals ? srv.totals->accepted.load(std::memory_order_relaxed) : live.total();
    std::string uptime = seconds(clock_type::now() - srv.started);
    std::string body;
    if (json) {
        body = "{\"backend\":" + json_string(backend) +
               ",\"threads\":" + std::to_string(srv.threads) +
               ",\"thread\":" + std::to_string(srv.thread) + ",\"uptime_seconds\":" + uptime +
               ",\"connections_open\":" + std::to_string(open) +
               ",\"connections_total\":" + std::to_string(total) +
               ",\"requests_served\":" + std::to_string(requests) +
               ",\"bytes_sent\":" + std::to_string(bytes_sent) +
               ",\"provided_buffers_in_use\":" + std::to_string(buffers) + ",\"connections\":[";
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const auto& r = rows[i];
            body += std::string(i ? "," : "") + "{\"id\":" + std::to_string(r.id) +
                    ",\"peer\":" + json_string(r.peer.to_string()) +
                    ",\"age_seconds\":" + seconds(r.age) +
                    ",\"bytes_in\":" + std::to_string(r.bytes_in) +
                    ",\"bytes_out\":" + std::to_string(r.bytes_out) +
                    ",\"state\":" + json_string(coronet::to_string(r.state)) + "}";
        }
        body += "]}\n";
    } else {
        auto item = [&body](std::string_view name, const std::string& value) {
            body += "<li>" + std::string(name) + ": " + http::html_escape(value) + "</li>\n";
        };
        body =
            "<!DOCTYPE html>\n<html><head><title>http_server status</title></head><body>\n"
            "<h1>coronet http_server status</h1>\n<ul>\n";
        item("backend", backend);
        item("threads",
             std::to_string(srv.threads) + " (this is thread " + std::to_string(srv.thread) + ")");
        item("uptime", uptime + " s");
        item("connections", std::to_string(open) + " open, " + std::to_string(total) + " in total");
        item("requests served", std::to_string(requests));
        item("bytes sent", std::to_string(bytes_sent));
        item("provided buffers in use", std::to_string(buffers));
        body +=
            "</ul>\n<table>\n<tr><th>id</th><th>peer</th><th>age (s)</th><th>bytes in</th>"
            "<th>bytes out</th><th>state</th></tr>\n";
        for (const auto& r : rows)
            body += "<tr><td>" + std::to_string(r.id) + "</td><td>" +
                    http::html_escape(r.peer.to_string()) + "</td><td>" + seconds(r.age) +
                    "</td><td>" + std::to_string(r.bytes_in) + "</td><td>" +
                    std::to_string(r.bytes_out) + "</td><td>" +
                    std::string(coronet::to_string(r.state)) + "</td></tr>\n";
        body += "</table>\n</body></html>\n";
    }
    push_response(c,
                  {.status = 200,
                   .content_type = json ? "application/json" : "text/html; charset=utf-8",
                   .content_length = body.size()},
                  body);
}

bool is_status(std::string_view target) { return target == "/status" || target == "/status.json"; }

// With several threads, the status page covers them all: each thread's figures are read on
// that thread (worker::run_on), so nothing is shared but the answer.
coronet::task<> gather_status(connection& c) {
    server& me = c.srv;
    me.other_rows.clear();
    me.other_requests = me.other_bytes = me.other_buffers = 0;
    struct figures {
        std::vector<coronet::connection_info> rows;
        std::uint64_t requests = 0, bytes = 0;
        std::size_t buffers = 0;
    };
    for (unsigned j = 0; j < me.threads; ++j) {
        if (j == me.thread) continue;
        auto got = std::make_shared<figures>();
        // A named std::function, not a lambda temporary in the co_await: GCC 12.2 destroys
        // such a temporary twice, and the second release frees `got` under our feet.
        std::function<void()> ask = [got, all = me.all, j] {
            server* other = (*all)[j];  // written by thread j itself, before it started
            if (!other) return;
            got->rows = other->net->connections().list();
            got->requests = other->requests;
            got->bytes = other->net->connections().bytes_out();
            got->buffers = other->net->context().buffers_in_use();
        };
        co_await me.w->run_on(j, std::move(ask));
        me.other_rows.insert(me.other_rows.end(), got->rows.begin(), got->rows.end());
        me.other_requests += got->requests;
        me.other_bytes += got->bytes;
        me.other_buffers += got->buffers;
    }
}

// Answers one well-formed request: pushes the whole response (or its producers).
void answer(connection& c) {
    // Shutting down: still answer the requests a client has already pipelined (they are in
    // the buffer), and close after the last of them.
    c.keep = c.req.keep_alive() && !(c.conn.stopping() && c.ch.buffered() == 0);
    c.pushed_producer = false;
    ++c.srv.requests;
    if (!c.method_is("GET") && !c.method_is("HEAD")) return push_error(c, 405);
    if (std::string_view(c.req.target) == "/hello")
        return push_fixed(c, c.srv.hello);  // what decode_path would make "hello"
    if (std::string_view(c.req.target) == "/status") return push_status(c, false);
    if (std::string_view(c.req.target) == "/status.json") return push_status(c, true);
    if (int status = http::decode_path(c.req.target, c.path))
        return push_error(c, status);  // "..", %2f
    if (std::string_view(c.path) == "hello") return push_fixed(c, c.srv.hello);
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

// One connection: requests in, responses out, in order, until either side is done.
// The server ends it with a lingering close, so a reset never destroys the last response
// (closing at once after a request that asked to close and had nothing after it).
coronet::task<> session(coronet::connection& conn, server* srv) {
    connection c(*srv, conn);
    for (;;) {
        int status = co_await read_request(c);
        if (status == 0 && c.req.content_length.value_or(0) > 0) status = co_await skip_body(c);
        if (status < 0) break;
        if (status > 0) {  // a malformed request: answer, then close (we may have lost our place)
            c.keep = false;
            push_error(c, status);
            break;
        }
        if (c.srv.threads > 1 && is_status(c.req.target)) co_await gather_status(c);
        answer(c);
        if (!c.keep) {
            // The client asked to close (Connection: close, or HTTP/1.0 without keep-alive) and
            // nothing followed its request: it sends no more (RFC 9112 9.6), so close once the
            // response has gone, as nginx does, instead of lingering for the client's end. Bytes
            // after the request, an unread body or a malformed request's reply (above) keep the
            // lingering close.
            if (!c.req.keep_alive() && c.ch.buffered() == 0) conn.close_at_once();
            break;
        }
        // Backpressure: a client that pipelines faster than it reads must not make us queue
        // without limit (nor open a file per request before the previous one has gone out).
        bool pipelined = c.ch.buffered() > 0;
        if (c.ch.queued() > 256 * 1024 || (c.pushed_producer && pipelined)) {
            bool flushed = co_await flush(c);
            if (!flushed) break;
        }
    }
}

// --- main ------------------------------------------------------------------------------

// One thread: its own server on the shared port; after SIGINT or SIGTERM, its graceful stop.
coronet::task<> serve(coronet::worker& w, coronet::server_options options, server shared) {
    options.listen = w.listen_on(options.listen);
    server srv = std::move(shared);  // this thread's copy: its counters and date cache
    srv.thread = w.index();
    coronet::open_file_cache files(srv.root);
    srv.files = &files;
    coronet::server net(w.loop(), options,
                        [&srv](coronet::connection& c) { return session(c, &srv); });
    srv.net = &net;
    srv.w = &w;
    (*srv.all)[w.index()] = &srv;
    net.start();
    w.started(net.local_addresses());
    co_await w.stopped();
    co_await net.shutdown();
    (*srv.all)[w.index()] = nullptr;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", root = ".", backend = "auto", tls_cert, tls_key;
    unsigned port = 8080, threads = 1, idle_timeout = 30, max_connections = 10'000;
    cli::parser args("http_server", "Serves the files under --root over HTTP/1.1 (GET and HEAD).");
    args.flag("host", host, "address to listen on");
    args.flag("port", port, 0u, 65535u, "TCP port; 0 picks a free one");
    args.flag("root", root, "directory to serve");
    args.flag("threads", threads, 1u, 256u, "reactors, one thread and one listener each");
    args.choice("backend", backend, {"auto", "io_uring", "epoll", "select"},
                "the reactor's backend");
    args.flag("idle-timeout", idle_timeout, 1u, 3600u,
              "seconds to wait for a request and its whole head (and a stalled reader)");
    args.flag("max-connections", max_connections, 1u, 1'000'000u,
              "per thread; past it, closed at once");
    args.flag("tls-cert", tls_cert, "PEM certificate chain: serve HTTPS (with --tls-key)", "FILE");
    args.flag("tls-key", tls_key, "PEM private key of --tls-cert", "FILE");
    args.parse(argc, argv);
    if (tls_cert.empty() != tls_key.empty()) args.fail("--tls-cert and --tls-key go together");
    std::optional<coronet::tls_server_options> tls;
    if (!tls_cert.empty()) {
        tls = coronet::tls_server_options{.certificate = {tls_cert, tls_key}, .alpn = {"http/1.1"}};
        args.convert("--tls-cert",
                     [&] { return coronet::tls_context::server(*tls); });  // loads, or fails
    }
    std::error_code ec;
    auto dir = std::filesystem::canonical(root, ec);
    if (ec) args.fail("--root: " + root + ": " + ec.message());
    if (!std::filesystem::is_directory(dir)) args.fail("--root: " + root + ": not a directory");
    auto at = args.convert("--host", [&] { return coronet::address::from_host_port(host, port); });

    // A reset peer is an error the server handles, never a signal: SIGPIPE ignored, as nginx
    // does, which also spares each sendfile the library's SIGPIPE guard (lib/perform.cpp).
    std::signal(SIGPIPE, SIG_IGN);
    coronet::connection_totals totals;
    auto idle = std::chrono::seconds(idle_timeout);
    std::vector<server*> every_thread(threads, nullptr);
    server shared{.root = dir,
                  .idle_timeout = idle,
                  .threads = threads,
                  .totals = &totals,
                  .all = &every_thread};
    coronet::server_options options{.listen = {at},
                                    .max_connections = max_connections,
                                    .drain_timeout = idle + 3s,
                                    .reuse_port = true,
                                    .tls = tls,
                                    .handshake_timeout = idle,
                                    .totals = &totals,
                                    .name = "http_server"};
    coronet::runtime rt(
        {.threads = threads, .reactor = {.backend = *coronet::parse_backend_kind(backend)}});
    try {
        rt.run([&](coronet::worker& w) { return serve(w, options, shared); },
               [&] {
                   std::printf("http_server: serving %s on %s://%s/ (backend %s)\n", dir.c_str(),
                               tls ? "https" : "http", rt.addresses()[0].to_string().c_str(),
                               rt.backend_name().c_str());
                   std::fflush(stdout);
               });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "http_server: %s\n", e.what());
        return 1;
    }
}
