// tls_keep_openssl_malloc(): called before the first tls_context, OpenSSL keeps
// malloc (its own process: which allocator OpenSSL uses is decided once per process).

#include <coronet/coro/tls.hpp>

#include <catch2/catch.hpp>

#include "tests/support/tls_certs.hpp"

using namespace coronet;
using coronet::testing::certs;

TEST_CASE("tls: tls_keep_openssl_malloc() before the first context leaves OpenSSL on malloc",
          "[tls]") {
    CHECK_FALSE(tls_openssl_memory_cached());
    tls_keep_openssl_malloc();
    auto server =
        tls_context::server(tls_server_options{.certificate = {certs().cert, certs().key}});
    auto client = tls_context::client();
    CHECK_FALSE(tls_openssl_memory_cached());
}
