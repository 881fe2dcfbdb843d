// tests/fuzz/tls_server_fuzz.cpp: libFuzzer target for coro/tls.hpp's server side.
//
// Each input is what a client sends: it is written whole to one end of a
// socket pair, which then shuts its sending down and reads whatever comes
// back until the server closes; tls_accept() runs the handshake on the other
// end and, should it ever succeed, a channel reads the plaintext until end of
// stream. Every failure must be a std::system_error (a TLS alert, a truncated
// stream); a crash, a leak, a hang or any other exception is a finding. Run it
// with tools/fuzz.sh.
//
// The server's certificate: no private key is checked in, so
// LLVMFuzzerInitialize makes one (EC P-256) and a self-signed certificate for
// it, writes both as PEM to a temporary directory, and builds the context
// from those files, once. The seeds (tests/fuzz/corpus/tls_server_fuzz/) are
// real ClientHellos from `openssl s_client` (TLS 1.3, and TLS 1.2 only): they
// hold no secret.
//
// Input layout: the bytes the client sends (cut at 64 KiB).
#include <coronet/coro/tls.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/net.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

namespace {

using namespace coronet;

constexpr std::size_t max_input = 64 * 1024;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "tls_server_fuzz: %s\n", what);
    std::abort();
}

// A fresh EC P-256 key and a self-signed certificate for it, as PEM files in a
// temporary directory (removed at exit).
tls_certificate make_certificate() {
    static char dir[] = "/tmp/tls_server_fuzz.XXXXXX";
    if (!::mkdtemp(dir)) die("mkdtemp failed");
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (!key) die("EVP_PKEY_Q_keygen failed");
    X509* cert = X509_new();
    if (!cert) die("X509_new failed");
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 365);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    if (!X509_sign(cert, key, EVP_sha256())) die("X509_sign failed");

    tls_certificate out{std::string(dir) + "/cert.pem", std::string(dir) + "/key.pem"};
    std::FILE* f = std::fopen(out.cert_file.c_str(), "w");
    if (!f || !PEM_write_X509(f, cert)) die("writing the certificate failed");
    std::fclose(f);
    f = std::fopen(out.key_file.c_str(), "w");
    if (!f || !PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr))
        die("writing the key failed");
    std::fclose(f);
    X509_free(cert);
    EVP_PKEY_free(key);
    static std::string cert_file = out.cert_file, key_file = out.key_file, dir_name = dir;
    std::atexit([] {
        ::unlink(cert_file.c_str());
        ::unlink(key_file.c_str());
        ::rmdir(dir_name.c_str());
    });
    return out;
}

std::optional<tls_context> server_context;
std::unique_ptr<reactor> loop;

// The server: the handshake, then plaintext until end of stream. Failing is
// fine; failing with anything but a std::system_error is not.
task<void> serve(coronet::socket s) {
    try {
        channel ch(co_await tls_accept(std::move(s), *server_context));
        for (;;) {
            auto bytes = co_await ch.read_some();
            if (!bytes) break;
        }
    } catch (const std::system_error&) {
    }
}

// The client: sends the input, ends its stream, and reads what comes back
// (alerts, a ServerHello) until the server closes.
task<void> client(coronet::socket s, std::string_view input) {
    try {
        co_await send_all(s, input);
    } catch (const std::system_error&) {  // the server may close first
    }
    s.shutdown_send();
    std::byte buf[4096];
    try {
        for (;;) {
            std::size_t n = co_await s.recv(buf);
            if (n == 0) break;
        }
    } catch (const std::system_error&) {  // a reset
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    server_context = tls_context::server({.certificate = make_certificate()});
    loop = std::make_unique<reactor>(reactor_options{.backend = backend_kind::epoll});
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), std::min(size, max_input));
    reactor& r = *loop;
    auto [server_end, client_end] = coronet::socket::pair(r);
    r.run(when_all(serve(std::move(server_end)), client(std::move(client_end), input)));
    if (r.pending_count() != 0) die("operations left pending after a connection");
    return 0;
}
