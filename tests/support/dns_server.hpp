#pragma once
// Test support: DNS servers on loopback for the resolver tests.
//
// `dnsmasq_server` runs Debian's dnsmasq (dnsmasq-base) as a child on 127.0.0.1 and a free
// port, with its own hosts file and nothing else: names under .test that the file lacks are
// NXDOMAIN, other names are REFUSED (no upstream). `slow_dns_server` is a small Python script
// that answers every A query with 127.0.0.1 (and AAAA with no address) only after a delay.
// `silent_dns_port` is a UDP socket that reads nothing and answers nothing. Every child is
// started here and killed by PID when the object dies.

#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/process.hpp"

namespace coronet::testing {

// A port on 127.0.0.1 free a moment ago for both UDP and TCP (dnsmasq binds both).
inline unsigned free_udp_port() {
    for (int tries = 0; tries < 50; ++tries) {
        int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(udp >= 0);
        REQUIRE(tcp >= 0);
        sockaddr_in a = loopback(0);
        REQUIRE(::bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        bool both = ::bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(udp);
        ::close(tcp);
        if (both) return ntohs(a.sin_port);
    }
    FAIL("no port free for both UDP and TCP on 127.0.0.1");
    return 0;
}

// dnsmasq on 127.0.0.1:port answering from `hosts` ("127.0.0.1 name.test\n::1 name.test\n").
class dnsmasq_server {
public:
    explicit dnsmasq_server(const std::string& hosts) {
        dir_.write("hosts", hosts);
        std::string exe = tool("dnsmasq", "apt-get install dnsmasq-base");
        for (int tries = 0; tries < 5 && !child_; ++tries) {  // the port may be taken meanwhile
            port = free_udp_port();
            child_.emplace(std::vector<std::string>{
                exe, "--no-daemon", "--port=" + std::to_string(port), "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--local=/test/",
                "--addn-hosts=" + (dir_.path() / "hosts").string(), "--conf-file=/dev/null",
                "--log-facility=-", "--user=root", "--pid-file="});
            // dnsmasq reads its hosts file once its sockets are bound: then it answers. If the
            // port was taken meanwhile it says so and exits: another port, at once.
            auto deadline = steady::now() + std::chrono::seconds(10);
            bool ready = false;
            while (!ready && steady::now() < deadline) {
                ready = child_->wait_for_err("names", std::chrono::milliseconds(50));
                if (!ready && child_->wait_exit(std::chrono::milliseconds(0)) != -1) break;
            }
            if (ready) break;
            INFO("dnsmasq said: " << child_->err());
            child_->stop(std::chrono::milliseconds(0));
            child_.reset();
        }
        REQUIRE(child_);
    }
    ~dnsmasq_server() {
        if (child_) child_->stop(std::chrono::seconds(5));
    }
    // "127.0.0.1:PORT", for resolve_options::servers and --dns-server.
    std::string server() const { return "127.0.0.1:" + std::to_string(port); }
    unsigned port = 0;

private:
    temp_dir dir_{"dnsmasq"};
    std::optional<child> child_;
};

// A DNS server that answers A queries with 127.0.0.1 (AAAA with no address) after `delay_s`.
class slow_dns_server {
public:
    explicit slow_dns_server(double delay_s)
        : child_({"/usr/bin/python3", "-u", "-c", script, std::to_string(delay_s)}) {
        port = unsigned(std::stoul(child_.first_line()));
    }
    ~slow_dns_server() { child_.stop(std::chrono::seconds(5)); }
    std::string server() const { return "127.0.0.1:" + std::to_string(port); }
    unsigned port = 0;

private:
    static constexpr const char* script = R"(
import socket, struct, sys, threading, time
delay = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
def answer(q, peer):
    time.sleep(delay)
    i = 12
    while q[i] != 0:
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    records = b""
    if qtype == 1:
        records = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
    header = q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if records else 0, 0, 0)
    s.sendto(header + question + records, peer)
while True:
    q, peer = s.recvfrom(512)
    threading.Thread(target=answer, args=(q, peer), daemon=True).start()
)";
    child child_;
};

// A UDP socket on 127.0.0.1 that never answers: queries sent there time out.
class silent_dns_port {
public:
    silent_dns_port() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in a = loopback(0);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
    }
    ~silent_dns_port() { ::close(fd_); }
    silent_dns_port(const silent_dns_port&) = delete;
    silent_dns_port& operator=(const silent_dns_port&) = delete;
    std::string server() const { return "127.0.0.1:" + std::to_string(port); }
    unsigned port = 0;

private:
    int fd_ = -1;
};

}  // namespace coronet::testing
