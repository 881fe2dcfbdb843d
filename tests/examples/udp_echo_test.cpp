// tests/examples/udp_echo_test.cpp: runs examples/udp_echo the way a user does.
//
// The server (a data dependency, found in the runfiles) runs as a child process on each
// backend; the clients are real ones: socat for one line, and a Python script that sends
// datagrams of mixed sizes and checks each echo byte for byte, one by one and in bursts.
// Every wait is bounded, and only the children started here are signalled.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include <signal.h>

#include "tests/support/backends.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace std::chrono_literals;
using namespace coronet::testing;

// Sends `count` datagrams (sizes 0 to 9000 bytes) to the port, in bursts of `burst`, and checks
// that every one comes back whole: prints "ok COUNT" or what went wrong.
const char* python_client = R"(
import socket, sys
port, count, burst = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("127.0.0.1", port))
sizes = [0, 1, 17, 512, 1400, 1500, 4096, 9000, 100, 3]
def payload(i):
    n = sizes[i % len(sizes)] + i % 7
    return bytes((k * 31 + i) & 0xff for k in range(n))
i = 0
while i < count:
    batch = [payload(j) for j in range(i, min(i + burst, count))]
    for p in batch:
        s.send(p)
    for p in batch:
        got = s.recv(65536)
        if got != p:
            print("datagram %d: sent %d bytes, got %d back" % (i, len(p), len(got)))
            sys.exit(1)
        i += 1
print("ok", count)
)";

}  // namespace

TEST_CASE("udp_echo: --help prints the usage and exits 0", "[udp_echo]") {
    auto r = run({runfile("examples/udp_echo"), "--help"}, 10s);
    CHECK(exited_with(r.status, 0));
    CHECK(r.out.starts_with("usage: udp_echo [--host 127.0.0.1] [--port 7001] [--backend auto"));
}

TEST_CASE("udp_echo: real clients get every datagram back whole, on every backend", "[udp_echo]") {
    CORONET_FOR_EACH_BACKEND(kind);
    std::string name(coronet::to_string(kind));
    // io_uring receives through a multishot receive unless --no-multishot: both ways.
    const bool no_multishot = GENERATE(false, true);
    if (no_multishot && kind != coronet::backend_kind::io_uring) return;  // the same program there
    INFO("--no-multishot: " << no_multishot);
    std::vector<std::string> argv{runfile("examples/udp_echo"), "--port", "0", "--backend", name};
    if (no_multishot) argv.push_back("--no-multishot");
    child server(argv);
    std::string line = server.first_line();
    CHECK(line.ends_with("(backend " + name + ")"));
    unsigned port = port_after(line, "listening on 127.0.0.1:");

    // socat reads the line from its stdin, sends it as one datagram, prints the echo.
    auto line_back =
        run({"/bin/sh", "-c",
             "printf 'hello, datagram\\n' | " + tool("socat", "apt-get install socat") +
                 " -t 2 - UDP:127.0.0.1:" + std::to_string(port)},
            10s);
    INFO("socat stderr: " << line_back.err);
    CHECK(line_back.out == "hello, datagram\n");

    for (const char* burst : {"1", "8"}) {
        auto py = run(
            {"/usr/bin/python3", "-c", python_client, std::to_string(port), "2000", burst}, 60s);
        INFO("burst " << burst << ": " << py.out << py.err);
        CHECK(exited_with(py.status, 0));
        CHECK(py.out == "ok 2000\n");
    }

    server.signal(SIGTERM);
    int status = server.wait_exit(10s);
    INFO(describe(status) << "\nstderr: " << server.err());
    CHECK(exited_with(status, 0));
}
