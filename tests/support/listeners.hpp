#pragma once
// Test support: TCP listeners on 127.0.0.1 and ::1 sharing one port, for Happy Eyeballs.
//
// `dual_listeners` listens on the same port on both loopbacks, each side either `open`
// (connections complete, nobody accepts them), `absent` (no listener: a SYN gets a RST, so
// connect() is refused at once) or `stuck` (backlog 0 and its accept queue already full: SYNs
// are dropped, so a connect() hangs until it times out, the way an address that never answers
// does). Only loopback is used.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace coronet::testing {

enum class side { open, absent, stuck };

class dual_listeners {
public:
    dual_listeners(side v6, side v4) {
        for (int tries = 0; tries < 50 && port == 0; ++tries) {
            int probe = listen_on(AF_INET, 0, 16);  // a free port, held while ::1 takes it too
            REQUIRE(probe >= 0);
            unsigned p = local_port(probe);
            int fd6 = v6 == side::absent ? -2 : listen_on(AF_INET6, p, v6 == side::stuck ? 0 : 16);
            if (fd6 == -1) {  // taken on ::1: another port
                ::close(probe);
                continue;
            }
            port = p;
            fd6_ = fd6;
            if (v4 == side::absent) {
                ::close(probe);  // nothing listens on 127.0.0.1:port now
            } else if (v4 == side::stuck) {
                ::close(probe);
                fd4_ = listen_on(AF_INET, p, 0);
                REQUIRE(fd4_ >= 0);
            } else {
                fd4_ = probe;
            }
        }
        REQUIRE(port != 0);
        if (v6 == side::stuck) filler6_ = fill(AF_INET6);
        if (v4 == side::stuck) filler4_ = fill(AF_INET);
    }
    ~dual_listeners() {
        for (int fd : {fd6_, fd4_, filler6_, filler4_})
            if (fd >= 0) ::close(fd);
    }
    dual_listeners(const dual_listeners&) = delete;
    dual_listeners& operator=(const dual_listeners&) = delete;

    unsigned port = 0;

private:
    static sockaddr_storage loopback_of(int family, unsigned port, socklen_t& len) {
        sockaddr_storage ss{};
        if (family == AF_INET) {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_port = htons(std::uint16_t(port));
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(std::uint16_t(port));
            a->sin6_addr = in6addr_loopback;
            len = sizeof *a;
        }
        return ss;
    }
    static int listen_on(int family, unsigned port, int backlog) {
        int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        socklen_t len = 0;
        sockaddr_storage ss = loopback_of(family, port, len);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 || ::listen(fd, backlog) < 0) {
            ::close(fd);
            return -1;
        }
        return fd;
    }
    static unsigned local_port(int fd) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
        return ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                       : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    }
    // One connection that fills a backlog-0 accept queue (it completes; the next SYN is dropped).
    int fill(int family) const {
        int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        socklen_t len = 0;
        sockaddr_storage ss = loopback_of(family, port, len);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
        return fd;
    }

    int fd6_ = -1, fd4_ = -1, filler6_ = -1, filler4_ = -1;
};

}  // namespace coronet::testing
