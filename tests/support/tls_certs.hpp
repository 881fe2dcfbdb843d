#pragma once
// Test support: certificates made at run time with the `openssl` command (no
// private key is committed). One set per test process, in a fresh temporary
// directory: a CA; a server certificate it signed for localhost and
// 127.0.0.1; a second one for other.test (SNI); and a self-signed one nobody
// trusts. All ECDSA P-256.

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace coronet::testing {

struct test_certs {
    std::string dir;
    std::string ca;                     // the CA's certificate (trust this)
    std::string cert, key;              // localhost, 127.0.0.1, ::1: signed by ca
    std::string other_cert, other_key;  // other.test: signed by ca
    std::string self_cert, self_key;    // localhost, self-signed: trusted by nobody
};

inline void run_or_throw(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
        throw std::runtime_error("test certificates: failed: " + command);
}

inline const test_certs& certs() {
    static const test_certs made = [] {
        std::string tmpl = (std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp");
        tmpl += "/coronet-certs-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("test certificates: mkdtemp");
        test_certs c;
        c.dir = tmpl;
        auto p = [&](const char* name) { return c.dir + "/" + name; };
        c.ca = p("ca.pem");
        c.cert = p("server.pem");
        c.key = p("server.key");
        c.other_cert = p("other.pem");
        c.other_key = p("other.key");
        c.self_cert = p("self.pem");
        c.self_key = p("self.key");
        const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        run_or_throw("openssl req -x509" + ec + " -keyout " + p("ca.key") + " -out " + c.ca +
                     " -days 2 -subj /CN=coronet-test-ca");
        auto leaf = [&](const std::string& cert, const std::string& key, const std::string& cn,
                        const std::string& san) {
            std::ofstream(p("ext.cnf")) << "subjectAltName=" << san << "\n";
            run_or_throw("openssl req" + ec + " -keyout " + key + " -out " + p("leaf.csr") +
                         " -subj /CN=" + cn);
            run_or_throw("openssl x509 -req -in " + p("leaf.csr") + " -CA " + c.ca + " -CAkey " +
                         p("ca.key") + " -CAcreateserial -out " + cert + " -days 2 -extfile " +
                         p("ext.cnf"));
        };
        leaf(c.cert, c.key, "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1");
        leaf(c.other_cert, c.other_key, "other.test", "DNS:other.test");
        run_or_throw(
            "openssl req -x509" + ec + " -keyout " + c.self_key + " -out " + c.self_cert +
            " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1");
        return c;
    }();
    return made;
}

}  // namespace coronet::testing
