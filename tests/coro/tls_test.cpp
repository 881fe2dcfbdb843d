// tests/coro/tls_test.cpp: coro/tls.hpp, TLS under a channel, on every backend.
//
// A server and a client in one reactor over loopback TCP, and over an
// in-memory pair (lib/memory_transport.hpp: no sockets; the test decides how
// the ciphertext is split and how fast it is read), with certificates made at
// run time (tests/support/tls_certs.hpp). Interoperability with real clients
// and servers (curl, openssl s_client, Python, nginx, wrk) is tested through
// the examples in tests/examples/. Every co_await is bound, never tested (the
// README's GCC 12 rule).
#include <coronet/coro/tls.hpp>

#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGIFICATION
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/memory_transport.hpp>
#include <coronet/lib/poison.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"
#include "tests/support/tls_certs.hpp"

using namespace coronet;
using namespace std::chrono_literals;
using coronet::testing::certs;

namespace {

tls_context server_ctx(tls_server_options o = {}) {
    if (o.certificate.cert_file.empty()) o.certificate = {certs().cert, certs().key};
    return tls_context::server(o);
}

tls_context client_ctx(tls_client_options o = {}) {
    if (o.ca_file.empty() && !o.insecure_no_verify) o.ca_file = certs().ca;
    return tls_context::client(o);
}

tls_context self_signed_ctx() {
    tls_server_options o;
    o.certificate = {certs().self_cert, certs().self_key};
    return tls_context::server(o);
}

tls_context insecure_ctx() {
    tls_client_options o;
    o.insecure_no_verify = true;
    return tls_context::client(o);
}

// What the server saw of one connection.
struct served {
    std::string alpn, version, sni;
    bool reused = false;
    std::vector<std::string> lines;
    std::error_code end;  // close_reason() at end of stream
};

// Echoes lines until end of stream on a stream whose handshake is done.
task<served> serve_lines(std::unique_ptr<tls_stream> stream) {
    served out{
        stream->alpn(), stream->version(), stream->server_name(), stream->session_reused(), {}, {}};
    channel ch(std::move(stream));
    for (;;) {
        auto line = co_await ch.read_until("\n");
        if (!line) break;
        out.lines.emplace_back(*line);
        ch.push(std::string(*line) + "\n");
    }
    out.end = ch.close_reason();
    co_await ch.close_when_done();
    co_return out;
}

// Accepts one connection, echoes lines until end of stream.
task<served> echo_lines(coronet::socket& listener, tls_context ctx) {
    coronet::socket s = co_await listener.accept();
    auto stream = co_await tls_accept(std::move(s), ctx);
    served out = co_await serve_lines(std::move(stream));
    co_return out;
}

// The same on one end of an in-memory pair.
task<served> echo_lines_on(std::unique_ptr<transport> end, tls_context ctx) {
    auto stream = co_await tls_accept(std::move(end), ctx);
    served out = co_await serve_lines(std::move(stream));
    co_return out;
}

// What the client saw.
struct talked {
    std::string alpn, version, peer_cn;
    bool reused = false;
    std::vector<std::string> replies;
};

std::string subject_cn(SSL* ssl) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return {};
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    X509_free(cert);
    return buf;
}

// Sends each line, then reads as many replies; closes with close_notify.
task<talked> talk_lines(std::unique_ptr<tls_stream> stream, std::vector<std::string> lines) {
    talked out{stream->alpn(),
               stream->version(),
               subject_cn(stream->native_handle()),
               stream->session_reused(),
               {}};
    channel ch(std::move(stream));
    for (const auto& l : lines)
        ch.push(l + "\n");
    for (std::size_t i = 0; i < lines.size(); ++i) {
        auto reply = co_await ch.read_until("\n");
        if (!reply) break;
        out.replies.emplace_back(*reply);
    }
    co_await ch.close_when_done();  // close_notify: the server sees a clean end
    co_return out;
}

task<talked> say_lines(reactor& r, address to, tls_context ctx, std::string host,
                       std::vector<std::string> lines) {
    coronet::socket s = co_await coronet::socket::connect(r, to);
    auto stream = co_await tls_connect(std::move(s), ctx, host);
    talked out = co_await talk_lines(std::move(stream), std::move(lines));
    co_return out;
}

// The same on one end of an in-memory pair.
task<talked> say_lines_on(std::unique_ptr<transport> end, tls_context ctx, std::string host,
                          std::vector<std::string> lines) {
    auto stream = co_await tls_connect(std::move(end), ctx, host);
    talked out = co_await talk_lines(std::move(stream), std::move(lines));
    co_return out;
}

// Writes each piece as sends of their own (so records of their own), then
// reads `replies` lines back. Then close_notify, and reading on to the server's
// end: on a pipe that holds one byte, close_notify must be read while this end
// is still open (closing drops what a pipe has not taken, as on a full socket).
task<std::vector<std::string>> say_in_pieces(std::unique_ptr<transport> end, tls_context ctx,
                                             std::vector<std::string> pieces, std::size_t replies) {
    auto stream = co_await tls_connect(std::move(end), ctx, "localhost");
    channel ch(std::move(stream));
    for (const auto& p : pieces)
        co_await ch.write(p);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < replies; ++i) {
        auto reply = co_await ch.read_until("\n");
        if (!reply) break;
        out.emplace_back(*reply);
    }
    ch.shutdown_send();
    auto rest = co_await ch.read_some();
    if (rest) out.emplace_back("unexpected: " + std::string(*rest));
    co_return out;
}

// A line of n bytes that is no repetition of a short pattern.
std::string long_line(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
    return s;
}

}  // namespace

TEST_CASE("tls: lines echo over TLS 1.3 and 1.2 with the certificate verified", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    auto version = GENERATE(tls_version::tls1_2, tls_version::tls1_3);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    tls_server_options so;
    so.alpn = {"http/1.1"};
    so.max_version = version;
    auto sctx = server_ctx(so);
    tls_client_options co;
    co.alpn = {"h2", "http/1.1"};
    auto cctx = client_ctx(co);
    std::vector<std::string> lines = {"hello world", "", "I'm not dead yet!"};
    auto [srv, cli] =
        r.run(when_all(echo_lines(listener, sctx),
                       say_lines(r, listener.local_address(), cctx, "localhost", lines)));
    CHECK(cli.replies == lines);
    CHECK(srv.lines == lines);
    CHECK(srv.alpn == "http/1.1");
    CHECK(cli.alpn == "http/1.1");
    CHECK(cli.version == (version == tls_version::tls1_3 ? "TLSv1.3" : "TLSv1.2"));
    CHECK(srv.sni == "localhost");
    CHECK(cli.peer_cn == "localhost");
    CHECK_FALSE(srv.end);  // close_notify came: a clean end, not a truncation
}

TEST_CASE("tls: the client verifies the certificate and the host name", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));

    auto refused = [&](tls_context sctx, tls_context cctx, std::string host) {
        auto server = [](coronet::socket& l, tls_context ctx) -> task<void> {
            coronet::socket s = co_await l.accept();
            try {
                auto stream = co_await tls_accept(std::move(s), ctx);
            } catch (const std::system_error&) {  // the client's alert
            }
        };
        auto client = [](reactor& r, address to, tls_context ctx,
                         std::string host) -> task<std::string> {
            coronet::socket s = co_await coronet::socket::connect(r, to);
            try {
                auto stream = co_await tls_connect(std::move(s), ctx, host);
            } catch (const std::system_error& e) {
                co_return e.what();
            }
            co_return "";
        };
        auto [ignored, message] = r.run(
            when_all(server(listener, sctx), client(r, listener.local_address(), cctx, host)));
        return message;
    };

    SECTION("a self-signed certificate is not trusted") {
        std::string m = refused(self_signed_ctx(), client_ctx(), "localhost");
        INFO(m);
        CHECK(m.find("certificate verify failed") != std::string::npos);
        CHECK(m.find("self-signed") != std::string::npos);
    }
    SECTION("a certificate for another name is refused") {
        std::string m = refused(server_ctx(), client_ctx(), "not-localhost.test");
        INFO(m);
        CHECK(m.find("certificate verify failed") != std::string::npos);
        CHECK(m.find("not-localhost.test") != std::string::npos);
    }
    SECTION("the system store does not know the test CA") {
        std::string m = refused(server_ctx(), tls_context::client(), "localhost");
        INFO(m);
        CHECK(m.find("certificate verify failed") != std::string::npos);
    }
    SECTION("insecure_no_verify accepts anything") {
        std::string m = refused(self_signed_ctx(), insecure_ctx(), "wrong.test");
        CHECK(m.empty());
    }
}

TEST_CASE("tls: the server picks its certificate by SNI", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    auto sctx = server_ctx();
    sctx.add_server_name("other.test", {certs().other_cert, certs().other_key});
    auto name = GENERATE(std::string("other.test"), std::string("localhost"));
    auto [srv, cli] =
        r.run(when_all(echo_lines(listener, sctx),
                       say_lines(r, listener.local_address(), client_ctx(), name, {"x"})));
    CHECK(srv.sni == name);
    CHECK(cli.peer_cn == name);
    CHECK(cli.replies == std::vector<std::string>{"x"});
}

TEST_CASE("tls: a second connection resumes the session", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    auto version = GENERATE(tls_version::tls1_2, tls_version::tls1_3);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    tls_server_options so;
    so.max_version = version;
    auto sctx = server_ctx(so);
    auto cctx = client_ctx();
    auto [s1, c1] =
        r.run(when_all(echo_lines(listener, sctx),
                       say_lines(r, listener.local_address(), cctx, "localhost", {"one"})));
    auto [s2, c2] =
        r.run(when_all(echo_lines(listener, sctx),
                       say_lines(r, listener.local_address(), cctx, "localhost", {"two"})));
    CHECK_FALSE(c1.reused);
    CHECK(c2.reused);
    CHECK(s2.reused);
    CHECK(c2.replies == std::vector<std::string>{"two"});
}

TEST_CASE("tls: a peer that closes without close_notify is a truncation, not data", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    auto client = [](reactor& r, address to, tls_context ctx) -> task<void> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        auto stream = co_await tls_connect(std::move(s), ctx, "localhost");
        channel ch(std::move(stream));
        co_await ch.write(std::string("partial line without its end"));
        co_await ch.flush();
        ::shutdown(ch.sock().native_handle(), SHUT_RDWR);  // TCP ends, no close_notify
    };
    auto [srv, ignored] = r.run(when_all(echo_lines(listener, server_ctx()),
                                         client(r, listener.local_address(), client_ctx())));
    CHECK(srv.lines.empty());
    CHECK(srv.end == errc::stream_truncated);
}

TEST_CASE("tls: a server that closes after its last reply ends the connection at once, cleanly",
          "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    // The server answers one line as an HTTP server answers "Connection: close": the
    // connection ends after the output, then close(); it keeps the closed channel (and its
    // stream) for a while after, so the client's end of stream must come from close() itself.
    bool server_done = false;
    auto server = [](coronet::socket& listener, tls_context ctx, bool& done) -> task<void> {
        coronet::socket s = co_await listener.accept();
        auto stream = co_await tls_accept(std::move(s), ctx);
        channel ch(std::move(stream));
        auto line = co_await ch.read_until("\n");
        if (!line) co_return;
        ch.push(std::string(*line) + "\n");
        ch.via()->closing_after_output();
        co_await ch.flush();
        ch.close();
        bool slept = co_await sleep_for(ch.context(), 300ms);
        (void)slept;
        done = true;
    };
    struct seen {
        std::optional<std::string> reply;
        bool end = false, before_server_done = false;
        std::error_code reason;
    };
    auto client = [](reactor& r, address to, tls_context ctx, const bool& done) -> task<seen> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        auto stream = co_await tls_connect(std::move(s), ctx, "localhost");
        channel ch(std::move(stream));
        ch.push("ping\n");
        seen out;
        auto reply = co_await ch.read_until("\n");
        if (reply) out.reply = std::string(*reply);
        auto rest = co_await ch.read_some();
        out.end = !rest;
        out.before_server_done = !done;
        out.reason = ch.close_reason();
        co_return out;
    };
    auto [ignored, c] =
        r.run(when_all(server(listener, server_ctx(), server_done),
                       client(r, listener.local_address(), client_ctx(), server_done)));
    CHECK(c.reply == std::string("ping"));
    CHECK(c.end);
    CHECK(c.before_server_done);           // close() ended it, not the stream's destruction
    CHECK(c.reason == std::error_code());  // close_notify came first: no truncation
}

TEST_CASE("tls: contexts and sessions made on one thread serve handshakes on others", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    // OpenSSL's memory is kept per thread (coro/tls.cpp): blocks allocated on one thread and
    // freed on another, and threads that end with blocks kept, must all stay sound.
    auto sctx = server_ctx();
    auto cctx = client_ctx();
    std::vector<std::string> replies[2];
    bool reused[2] = {false, false};
    for (int round = 0; round < 2; ++round) {
        std::thread t([&, round] {
            reactor r{{.backend = kind}};
            coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
            auto [srv, cli] = r.run(
                when_all(echo_lines(listener, sctx),
                         say_lines(r, listener.local_address(), cctx, "localhost",
                                   {"from thread " + std::to_string(round), long_line(40000)})));
            replies[round] = cli.replies;
            reused[round] = cli.reused;
        });
        t.join();
    }
    CHECK(replies[0] == std::vector<std::string>{"from thread 0", long_line(40000)});
    CHECK(replies[1] == std::vector<std::string>{"from thread 1", long_line(40000)});
    CHECK_FALSE(reused[0]);
    CHECK(reused[1]);  // the first thread's session (its memory from there) resumed here
    // The lists were in use (an AddressSanitizer build keeps malloc).
#ifdef CORONET_ASAN
    CHECK_FALSE(tls_openssl_memory_cached());
#else
    CHECK(tls_openssl_memory_cached());
#endif
}

TEST_CASE("tls: 4 MiB each way through producers, every byte intact", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);

    auto server = [](coronet::socket& l, tls_context ctx, const std::string& expect) -> task<bool> {
        coronet::socket s = co_await l.accept();
        channel ch(co_await tls_accept(std::move(s), ctx));
        auto got = co_await ch.read_exactly(expect.size());
        bool same = got && *got == expect;
        co_await ch.write(simple_producer(expect, 60'000));  // back, in producer-sized pieces
        co_await ch.close_when_done();
        co_return same;
    };
    auto client = [](reactor& r, address to, tls_context ctx,
                     const std::string& data) -> task<bool> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        channel ch(co_await tls_connect(std::move(s), ctx, "127.0.0.1"));
        ch.set_max_buffer(data.size());
        co_await ch.write(data);
        auto back = co_await ch.read_exactly(data.size());
        co_return back&&* back == data;
    };
    auto [server_ok, client_ok] =
        r.run(when_all(server(listener, server_ctx(), big),
                       client(r, listener.local_address(), client_ctx(), big)));
    CHECK(server_ok);
    CHECK(client_ok);
}

TEST_CASE("tls: a client that says nothing is dropped at the handshake timeout", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    auto server = [](coronet::socket& l, tls_context ctx) -> task<std::error_code> {
        coronet::socket s = co_await l.accept();
        try {
            tls_handshake_options options{
                .timeout = 200ms};  // named, not braced in the co_await (README: GCC 12)
            auto stream = co_await tls_accept(std::move(s), ctx, options);
        } catch (const std::system_error& e) {
            co_return e.code();
        }
        co_return std::error_code{};
    };
    auto silent = [](reactor& r, address to) -> task<std::size_t> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        std::array<std::byte, 64> buf;
        co_return co_await s.recv(buf);  // the server gives up: end of stream
    };
    auto [code, got] =
        r.run(when_all(server(listener, server_ctx()), silent(r, listener.local_address())));
    CHECK(code == errc::timed_out);
    CHECK(got == 0);
}

TEST_CASE("tls: a handshake waiting mid-record holds no provided block", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    auto server = [](coronet::socket& l, tls_context ctx) -> task<std::error_code> {
        coronet::socket s = co_await l.accept();
        try {
            tls_handshake_options options{.timeout = 300ms};  // named, not braced in the co_await
            auto stream = co_await tls_accept(std::move(s), ctx, options);
        } catch (const std::system_error& e) {
            co_return e.code();
        }
        co_return std::error_code{};
    };
    // Sends 60 bytes of a 512-byte record, and looks at the provided blocks while the server waits.
    auto stalled = [](reactor& r, address to) -> task<std::size_t> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        std::string part = std::string("\x16\x03\x01\x02\x00", 5) + std::string(60, '\x01');
        co_await s.send(std::string_view(part));
        // No signal from inside the server's handshake says it has taken the 65 bytes: a while.
        co_await sleep_for(r, 50ms);
        std::size_t in_use = r.buffers_in_use();
        std::array<std::byte, 64> buf;
        for (;;) {  // until the server gives up
            std::size_t n = co_await s.recv(buf);
            if (n == 0) break;
        }
        co_return in_use;
    };
    auto [code, in_use] =
        r.run(when_all(server(listener, server_ctx()), stalled(r, listener.local_address())));
    CHECK(code == errc::timed_out);
    CHECK(in_use == 0);  // the 60 bytes were copied out of their block, which went back
}

TEST_CASE("tls: plaintext sent to a TLS server fails the handshake with OpenSSL's reason",
          "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    auto server = [](coronet::socket& l, tls_context ctx) -> task<std::string> {
        coronet::socket s = co_await l.accept();
        try {
            auto stream = co_await tls_accept(std::move(s), ctx);
        } catch (const std::system_error& e) {
            co_return std::string(e.code().category().name()) + ": " + e.what();
        }
        co_return "";
    };
    auto plain = [](reactor& r, address to) -> task<void> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        co_await s.send(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::array<std::byte, 256> buf;
        for (;;) {  // the co_await initializes a variable (README: GCC 12)
            std::size_t n = co_await s.recv(buf);
            if (n == 0) break;
        }
    };
    auto [message, ignored] =
        r.run(when_all(server(listener, server_ctx()), plain(r, listener.local_address())));
    INFO(message);
    CHECK(message.rfind("tls: ", 0) == 0);
    CHECK(message.find("http request") != std::string::npos);
}

TEST_CASE("tls: shutdown() waits for the peer's close_notify only as long as asked", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
    // The server answers close_notify with its own (a channel closing), or never (`answer` false).
    auto server = [](coronet::socket& l, tls_context ctx, bool answer) -> task<void> {
        coronet::socket s = co_await l.accept();
        channel ch(co_await tls_accept(std::move(s), ctx));
        auto got = co_await ch.read_some();                 // nullopt: the client's close_notify
        if (!answer) co_await sleep_for(ch.context(), 1s);  // a peer that never answers
        CHECK_FALSE(got);
    };
    auto client = [](reactor& r, address to, tls_context ctx) -> task<bool> {
        coronet::socket s = co_await coronet::socket::connect(r, to);
        auto stream = co_await tls_connect(std::move(s), ctx, "localhost");
        co_return co_await stream->shutdown(300ms);
    };
    SECTION("the peer answers: a clean two-way close") {
        auto [ignored, clean] = r.run(when_all(server(listener, server_ctx(), true),
                                               client(r, listener.local_address(), client_ctx())));
        CHECK(clean);
    }
    SECTION("the peer stays silent: false after the wait, no hang") {
        auto [ignored, clean] = r.run(when_all(server(listener, server_ctx(), false),
                                               client(r, listener.local_address(), client_ctx())));
        CHECK_FALSE(clean);
    }
}

// --- over an in-memory pair: no sockets --------------------------------------------------

TEST_CASE("tls: a server and a client over an in-memory pair: handshake and lines both ways",
          "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    auto version = GENERATE(tls_version::tls1_2, tls_version::tls1_3);
    reactor r{{.backend = kind}};
    auto [server_end, client_end] = memory_transport::pair(r);
    tls_server_options so;
    so.alpn = {"http/1.1"};
    so.max_version = version;
    tls_client_options co;
    co.alpn = {"http/1.1"};
    std::vector<std::string> lines = {"hello world", "", "I'm not dead yet!"};
    auto [srv, cli] =
        r.run(when_all(echo_lines_on(std::move(server_end), server_ctx(so)),
                       say_lines_on(std::move(client_end), client_ctx(co), "localhost", lines)));
    CHECK(cli.replies == lines);
    CHECK(srv.lines == lines);
    CHECK(srv.alpn == "http/1.1");
    CHECK(cli.alpn == "http/1.1");
    CHECK(cli.version == (version == tls_version::tls1_3 ? "TLSv1.3" : "TLSv1.2"));
    CHECK(srv.sni == "localhost");
    CHECK(cli.peer_cn == "localhost");
    CHECK_FALSE(srv.end);  // close_notify came: a clean end
    CHECK(r.pending_count() == 0);
}

TEST_CASE(
    "tls: over an in-memory pair, read_until finds lines across records, one byte at a time too",
    "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    // capacity 1: a slow reader of one byte; every record (the handshake's too, and a
    // 40 KiB line's three records each way) arrives one byte per receive.
    auto capacity = GENERATE(std::size_t{0}, std::size_t{1});
    INFO("capacity " << capacity);
    reactor r{{.backend = kind}};
    memory_options mo;
    mo.capacity = capacity;
    auto [server_end, client_end] = memory_transport::pair(r, mo);
    std::string big = long_line(40 * 1024);
    std::vector<std::string> pieces = {
        "hel", "lo\nwor", "ld", "\n", big.substr(0, 20000), big.substr(20000) + "\n"};
    std::vector<std::string> lines = {"hello", "world", big};
    auto [srv, replies] =
        r.run(when_all(echo_lines_on(std::move(server_end), server_ctx()),
                       say_in_pieces(std::move(client_end), client_ctx(), pieces, 3)));
    CHECK(srv.lines == lines);
    CHECK(replies == lines);
    CHECK_FALSE(srv.end);
}

TEST_CASE(
    "tls: over an in-memory pair, a peer that ends without close_notify is a truncation, not data",
    "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server_end, client_end] = memory_transport::pair(r);
    memory_transport* wire = client_end.get();  // the client's end, under its TLS stream
    // How the client's end stops: end of stream (TCP's FIN) or a reset.
    auto reset = GENERATE(false, true);
    auto client = [](std::unique_ptr<transport> end, tls_context ctx, memory_transport* wire,
                     bool reset) -> task<void> {
        channel ch(co_await tls_connect(std::move(end), ctx, "localhost"));
        co_await ch.write(std::string("partial line without its end"));
        if (reset)
            wire->reset();
        else
            wire->shutdown_send();           // no close_notify
        auto got = co_await ch.read_some();  // the server's side ends too
        CHECK_FALSE(got);
    };
    auto [srv, ignored] = r.run(when_all(echo_lines_on(std::move(server_end), server_ctx()),
                                         client(std::move(client_end), client_ctx(), wire, reset)));
    CHECK(srv.lines.empty());
    if (reset)
        CHECK(srv.end == std::errc::connection_reset);
    else
        CHECK(srv.end == errc::stream_truncated);
}

TEST_CASE("tls: over an in-memory pair, a slow reader holds the writer back and gets every byte",
          "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    memory_options mo;
    mo.capacity = 4096;  // ciphertext the pipe holds unread before a send waits
    auto [server_end, client_end] = memory_transport::pair(r, mo);
    std::string data = long_line(256 * 1024);
    bool flushed = false;
    auto server = [](std::unique_ptr<transport> end, tls_context ctx, const std::string& data,
                     bool& flushed) -> task<void> {
        channel ch(co_await tls_accept(std::move(end), ctx));
        co_await ch.write(data);
        co_await ch.flush();
        flushed = true;
        co_await ch.close_when_done();
    };
    auto client = [](reactor& r, std::unique_ptr<transport> end, tls_context ctx,
                     const bool& flushed, std::size_t size) -> task<std::string> {
        channel ch(co_await tls_connect(std::move(end), ctx, "localhost"));
        ch.set_max_buffer(size);
        co_await sleep_for(r, 20ms);  // a reader that reads nothing for a while
        CHECK_FALSE(flushed);         // 256 KiB cannot pass 4 KiB of pipe while nobody reads
        std::string got;
        while (got.size() < size) {
            auto some = co_await ch.read_some(1000);  // a thousand bytes per loop turn
            if (!some) break;
            got += *some;
            co_await sleep_for(r, 0ms);
        }
        auto end_of_stream = co_await ch.read_some();
        CHECK_FALSE(end_of_stream);
        CHECK(ch.close_reason() == std::error_code{});  // close_notify
        co_return got;
    };
    auto [ignored, got] =
        r.run(when_all(server(std::move(server_end), server_ctx(), data, flushed),
                       client(r, std::move(client_end), client_ctx(), flushed, data.size())));
    CHECK(flushed);
    CHECK(got.size() == data.size());
    CHECK(got == data);
}

TEST_CASE("tls: over an in-memory pair, handshakes fail as on a socket", "[tls]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto [server_end, client_end] = memory_transport::pair(r);
    auto server = [](std::unique_ptr<transport> end, tls_context ctx) -> task<std::error_code> {
        try {
            tls_handshake_options options{.timeout = 200ms};  // named, not braced in the co_await
            auto stream = co_await tls_accept(std::move(end), ctx, options);
        } catch (const std::system_error& e) {
            co_return e.code();
        }
        co_return std::error_code{};
    };
    SECTION("a peer that says nothing: the handshake timeout") {
        std::error_code code = r.run(server(std::move(server_end), server_ctx()));
        CHECK(code == errc::timed_out);
    }
    SECTION("plaintext: OpenSSL's reason") {
        client_end->write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        std::error_code code = r.run(server(std::move(server_end), server_ctx()));
        CHECK(code.category() == tls_category());
        CHECK(code.message().find("http request") != std::string::npos);
        CHECK(client_end->peer_done());  // the server closed its end
    }
    SECTION("a ClientHello cut mid-record, then end of stream") {
        client_end->write(
            std::string("\x16\x03\x01\x02\x00", 5));  // a 512-byte handshake record...
        client_end->write(std::string(60, '\x01'));   // ...of which 60 bytes come
        client_end->shutdown_send();
        std::error_code code = r.run(server(std::move(server_end), server_ctx()));
        CHECK(code == errc::stream_truncated);
    }
}
