// examples/http_client.cpp: fetches every URL on the command line at once (the seed's asynhttp).
//
// One task per URL, all running together on one reactor: resolve the host name (on the loop:
// a slow DNS server delays only its own URL), connect (Happy Eyeballs: every address, IPv6
// first), send an HTTP/1.0 GET, read until the server closes (HTTP/1.0: the end of the body is the
// end of the stream), then print the whole response at once under a `==> URL (status, body bytes)`
// line, so responses never interleave, whichever finishes first. A fetch that fails (refused,
// reset, not HTTP, slower than --timeout) is one line on stderr and makes the exit status 1; a 404
// is a response like any other, as with curl. --dns-server HOST:PORT asks that DNS server instead
// of /etc/resolv.conf's. https:// URLs speak TLS, verifying the server's certificate and name
// against the system's trusted CAs (--cacert FILE: against those; --insecure: not at all).
// CORONET_BACKEND=io_uring|epoll|select picks the reactor's backend.
// Medusa ancestor: asynhttp.py, the first program in "Programming in Python with Medusa".
//
// Try: python3 -m http.server --bind 127.0.0.1 8000 &
//      bazel run //examples:http_client -- http://127.0.0.1:8000/ http://127.0.0.1:8000/nope

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// A URL from the command line: as given (for messages), and taken apart by proto/http.
struct url : coronet::http::url {
    std::string text;
};

// A whole response taken apart: its head (proto/http) and the size of the body after it;
// nullopt when it is not HTTP/1.x or its head never ends.
struct parsed_response {
    coronet::http::response_info info;
    std::size_t body_size = 0;
};

std::optional<parsed_response> parse_response(std::string_view response) {
    parsed_response p;
    auto head_end = response.find("\r\n\r\n");
    if (head_end == response.npos ||
        !coronet::http::parse_response_head(response.substr(0, head_end + 2), p.info))
        return std::nullopt;
    p.body_size = response.size() - head_end - 4;
    return p;
}

// True when a response announces its body's length and has all of it.
bool whole_body(std::string_view response) {
    auto p = parse_response(response);
    return p && p->info.content_length == p->body_size;
}

// The seed's http_client: connect (resolving the name; TLS for https), send the request, read
// until the server closes.
coronet::task<std::string> fetch(coronet::reactor& r, url u, coronet::connect_host_options how,
                                 const coronet::tls_context* tls) {
    coronet::socket s = co_await coronet::connect(r, u.host, u.port, how);
    coronet::channel ch;
    if (u.https)  // the handshake checks the certificate against u.host (unless --insecure)
        ch = coronet::channel(co_await coronet::tls_connect(std::move(s), *tls, u.host));
    else
        ch = coronet::channel(std::move(s));
    ch.push("GET " + u.target + " HTTP/1.0\r\nHost: " + u.authority + "\r\n\r\n");
    std::string response;
    while (auto data = co_await ch.read_some())  // nullopt: the server closed (handle_close)
        response += *data;
    // A reset, or TLS cut short without close_notify: an error unless the body is all there.
    if (ch.close_reason() && !whole_body(response))
        throw std::system_error(ch.close_reason(), "recv");
    co_return response;
}

// One line on stderr per URL that failed.
void report(const url& u, const std::string& why, int& failed) {
    ++failed;
    std::fprintf(stderr, "http_client: %s: %s\n", u.text.c_str(), why.c_str());
}

// Fetches u within the timeout, then prints the response in one piece, or one line on stderr.
// The try/catch is the point here: a failure is counted and reported, not just logged by spawn.
coronet::task<> fetch_and_print(coronet::reactor& r, url u, coronet::connect_host_options how,
                                const coronet::tls_context* tls, std::chrono::seconds timeout,
                                int& failed) {
    try {
        std::string response = co_await coronet::with_timeout(r, fetch(r, u, how, tls), timeout);
        // "HTTP/1.x NNN reason\r\n", headers, an empty line, then the body.
        auto parsed = parse_response(response);
        if (!parsed) throw std::runtime_error("bad response: not HTTP/1.x, or no end of headers");
        std::string out = "==> " + u.text + " (" + std::to_string(parsed->info.status) + ", " +
                          std::to_string(parsed->body_size) + " bytes)\n" + response;
        if (!out.ends_with('\n')) out += '\n';  // the next ==> starts a line of its own
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        auto* error = dynamic_cast<const std::system_error*>(&e);
        if (error && error->code() == coronet::errc::timed_out)
            report(u, "no response within " + std::to_string(timeout.count()) + " s", failed);
        else
            report(u, e.what(), failed);
    }
}

int main(int argc, char** argv) try {
    std::vector<std::string> texts;
    unsigned timeout = 30;
    std::string dns_server, cacert;
    bool insecure = false;
    cli::parser args("http_client",
                     "Fetches every URL at once over HTTP/1.0 and prints each whole response.");
    args.flag("timeout", timeout, 1u, 3600u, "seconds each fetch may take");
    args.flag("dns-server", dns_server, "DNS server to ask (default: resolv.conf's)", "HOST:PORT");
    args.flag("cacert", cacert, "https: trust the CAs in this PEM file, not the system's", "FILE");
    args.toggle("insecure", insecure, "https: accept any certificate and name (insecure!)");
    args.positionals("url", texts, "http[s]://host[:port]/path, as many as you like");
    args.parse(argc, argv);
    std::vector<url> urls;
    for (const auto& text : texts) {
        try {
            urls.push_back({coronet::http::parse_url(text), text});
        } catch (const std::invalid_argument& e) {
            args.fail(text + ": " + e.what());
        }
    }

    std::optional<coronet::tls_context> tls;  // one for every https URL: sessions are reused
    if (std::ranges::any_of(urls, &url::https))
        tls = args.convert("--cacert", [&] {
            return coronet::tls_context::client(
                {.ca_file = cacert, .insecure_no_verify = insecure});
        });

    coronet::reactor r;
    int failed = 0;
    coronet::connect_host_options how{.resolve = {.servers = dns_server},
                                      .timeout = std::chrono::seconds(timeout)};
    for (const auto& u : urls)  // every URL at once, name resolution included
        coronet::spawn(r,
                       fetch_and_print(r, u, how, tls ? &*tls : nullptr,
                                       std::chrono::seconds(timeout), failed),
                       u.text);
    r.run();  // until every fetch has finished: asyncore.loop() with an empty socket_map
    return failed ? 1 : 0;
} catch (const std::exception& e) {  // no reactor (CORONET_BACKEND names a missing backend)
    std::fprintf(stderr, "http_client: %s\n", e.what());
    return 1;
}
