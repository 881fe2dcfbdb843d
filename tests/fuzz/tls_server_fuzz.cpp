// tests/fuzz/tls_server_fuzz.cpp: libFuzzer target for coro/tls.hpp's server side.
//
// Each input is what a client sends, over the in-memory transport
// (lib/memory_transport.hpp: no sockets, no kernel): tls_accept() runs the
// handshake on one end of a pair, and the input's bytes are written into the
// other end in the pieces the input says, one piece per loop turn (each piece
// arrives as a receive of its own, so records are cut exactly there); then
// that end ends its stream or resets, and whatever the server sent is
// dropped. Should the handshake ever succeed, a channel reads the plaintext
// until end of stream. Every failure must be a std::system_error (a TLS alert,
// a truncated stream); a crash, a leak, a hang or any other exception is a
// finding. Run it with tools/fuzz.sh.
//
// The server's certificate: no private key is checked in, so
// LLVMFuzzerInitialize makes one (EC P-256) and a self-signed certificate for
// it, writes both as PEM to a temporary directory, and builds the context
// from those files, once. The seeds (tests/fuzz/corpus/tls_server_fuzz/) are
// real ClientHellos from `openssl s_client` (TLS 1.3, and TLS 1.2 only) behind
// the header below: they hold no secret.
//
// Input layout:
//   byte 0      bit 0: how the client ends (0: end of stream, 1: a reset);
//               bits 1-4: piece count n (0: the bytes go as one piece)
//   n bytes     piece sizes (0 means 1); what is left after them goes as one more piece
//   the rest    the bytes the client sends (cut at 64 KiB)
#include <coronet/coro/tls.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/lib/memory_transport.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/timer.hpp>

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

// What the client sends, and how it ends.
struct plan {
    std::vector<std::string_view> pieces;
    bool reset = false;
};

plan parse(std::string_view in) {
    plan p;
    if (in.empty()) return p;
    auto head = static_cast<unsigned char>(in[0]);
    in.remove_prefix(1);
    p.reset = (head & 1) != 0;
    std::size_t n = (head >> 1) & 15;
    std::vector<std::size_t> sizes;
    for (; n > 0 && !in.empty(); --n) {
        auto size = static_cast<unsigned char>(in[0]);
        sizes.push_back(size == 0 ? 1 : size);
        in.remove_prefix(1);
    }
    in = in.substr(0, max_input);
    for (std::size_t size : sizes) {
        if (in.empty()) break;
        p.pieces.push_back(in.substr(0, size));
        in.remove_prefix(p.pieces.back().size());
    }
    if (!in.empty()) p.pieces.push_back(in);
    return p;
}

// The server: the handshake, then plaintext until end of stream. Failing is
// fine; failing with anything but a std::system_error is not.
task<void> serve(std::unique_ptr<transport> end) {
    try {
        channel ch(co_await tls_accept(std::move(end), *server_context));
        for (;;) {
            auto bytes = co_await ch.read_some();
            if (!bytes) break;
        }
    } catch (const std::system_error&) {
    }
}

// The client: one piece per loop turn, dropping what the server sent (alerts,
// a ServerHello), then the end.
task<void> client(reactor& r, memory_transport& end, plan p) {
    for (std::string_view piece : p.pieces) {
        end.write(piece);
        co_await sleep_for(r, std::chrono::nanoseconds(0));
        end.read_all();
    }
    if (p.reset)
        end.reset();
    else
        end.shutdown_send();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    server_context = tls_context::server({.certificate = make_certificate()});
    loop = std::make_unique<reactor>(reactor_options{.backend = backend_kind::epoll});
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    plan p = parse(std::string_view(reinterpret_cast<const char*>(data), size));
    reactor& r = *loop;
    auto [server_end, client_end] = memory_transport::pair(r);
    r.run(when_all(serve(std::move(server_end)), client(r, *client_end, std::move(p))));
    if (r.pending_count() != 0) die("operations left pending after a connection");
    return 0;
}
