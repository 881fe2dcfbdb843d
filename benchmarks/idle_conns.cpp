// idle_conns: opens N idle connections to a loopback server and holds them,
// so the harness can read the server's RSS with them open (RSS per idle
// connection).
//
//   idle_conns --host 127.0.0.1 --port P --connections N --hold SECONDS
//              [--source-addrs 127.0.0.1,127.0.0.2,...] [--ping]
//              [--setup-timeout SECONDS] [--max-in-progress K] [--fresh K]
//
// Connections are spread round-robin over the source addresses (so N can go
// past one address's ephemeral ports) with at most K connects in progress at
// once. With --ping every connection sends one byte and waits for it to come
// back (for echo servers: proof the server has accepted and serves it).
// When setup is over it prints
//   ready conns=N opened=K failed=F setup_secs=S
// With --fresh K it then opens K more connections one at a time, each sending
// a 64-byte message and timing its echo (the latency a new client sees beside
// N idle ones), closes them and prints
//   fresh n=K ok=K connect_us=MEDIAN echo_us=MEDIAN echo_max_us=MAX
// It then holds every connection for --hold seconds or until SIGTERM/SIGINT
// (the harness stops it once its load run beside the idle connections is
// done), checks none was closed by the server, and prints
//   conns=N opened=K alive=A failed=F setup_secs=S held_secs=H
// The descriptor limit is raised to its hard limit first (N + 16 must fit).
// Exit 0 when all N were opened and are still alive (and every fresh echo
// came back), 1 otherwise, 2 on bad usage. Only loopback addresses are accepted.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(
        stderr,
        "idle_conns: %s\nusage: idle_conns --host ADDR --port P --connections N --hold SECONDS "
        "[--source-addrs A,B,...] [--ping] [--setup-timeout SECONDS] [--max-in-progress K]\n",
        why);
    std::exit(2);
}

bool resolve(const std::string& host, int port, sockaddr_storage& out, socklen_t& len) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
        return false;
    std::memcpy(&out, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

bool is_loopback(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
    return false;
}

enum class State { kIdle, kConnecting, kPinging, kOpen, kFailed };

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

// Waits (poll, at most timeout_ms) for fd to be ready for `events`; false on timeout or error.
bool wait_fd(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n < 0 && errno == EINTR) continue;
        return n == 1 && (p.revents & (events | POLLERR | POLLHUP)) != 0;
    }
}

// One fresh connection on fd: connect, send 64 bytes, read them back. Fills
// the connect and echo times (µs); false on any failure or a 5 s timeout.
bool echo_on(int fd, const sockaddr_storage& dst, socklen_t dst_len, double& connect_us,
             double& echo_us) {
    char msg[64], back[64];
    for (std::size_t i = 0; i < sizeof msg; i++)
        msg[i] = static_cast<char>('a' + i % 26);
    const double t0 = now_s();
    if (connect(fd, reinterpret_cast<const sockaddr*>(&dst), dst_len) < 0 && errno != EINPROGRESS)
        return false;
    if (!wait_fd(fd, POLLOUT, 5000)) return false;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) return false;
    const double t1 = now_s();
    connect_us = (t1 - t0) * 1e6;
    if (send(fd, msg, sizeof msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof msg)) return false;
    std::size_t got = 0;
    while (got < sizeof back) {
        if (!wait_fd(fd, POLLIN, 5000)) return false;
        ssize_t r = recv(fd, back + got, sizeof back - got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
    }
    echo_us = (now_s() - t1) * 1e6;
    return std::memcmp(msg, back, sizeof msg) == 0;
}

bool fresh_echo(const sockaddr_storage& dst, socklen_t dst_len, double& connect_us,
                double& echo_us) {
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = echo_on(fd, dst, dst_len, connect_us, echo_us);
    close(fd);
    return ok;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = -1, conns = 1000, max_in_progress = 256, fresh = 0;
    double hold = 5, setup_timeout = 60;
    bool ping = false;
    std::vector<std::string> src_names;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--host")
            host = value();
        else if (a == "--port")
            port = std::atoi(value().c_str());
        else if (a == "--connections")
            conns = std::atoi(value().c_str());
        else if (a == "--hold")
            hold = std::atof(value().c_str());
        else if (a == "--setup-timeout")
            setup_timeout = std::atof(value().c_str());
        else if (a == "--max-in-progress")
            max_in_progress = std::atoi(value().c_str());
        else if (a == "--fresh")
            fresh = std::atoi(value().c_str());
        else if (a == "--ping")
            ping = true;
        else if (a == "--source-addrs") {
            std::string s = value();
            std::size_t start = 0;
            while (start <= s.size()) {
                std::size_t c = s.find(',', start);
                if (c == std::string::npos) c = s.size();
                if (c > start) src_names.push_back(s.substr(start, c - start));
                start = c + 1;
            }
        } else
            usage(("unknown argument " + a).c_str());
    }
    if (port <= 0 || port > 65535) usage("bad --port");
    if (conns <= 0 || max_in_progress <= 0 || fresh < 0 || fresh > 10000)
        usage("bad --connections, --max-in-progress or --fresh");
    if (!(hold >= 0) || hold > 3600 || !(setup_timeout > 0) || setup_timeout > 3600)
        usage("bad --hold or --setup-timeout");

    sockaddr_storage dst{};
    socklen_t dst_len = 0;
    if (!resolve(host, port, dst, dst_len) || !is_loopback(dst))
        usage("--host must be a numeric loopback address");
    std::vector<sockaddr_storage> srcs;
    std::vector<socklen_t> src_lens;
    for (const std::string& s : src_names) {
        sockaddr_storage ss{};
        socklen_t len = 0;
        if (!resolve(s, 0, ss, len) || ss.ss_family != dst.ss_family || !is_loopback(ss))
            usage(("bad --source-addrs entry " + s).c_str());
        srcs.push_back(ss);
        src_lens.push_back(len);
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = on_stop;  // no SA_RESTART: epoll_wait returns EINTR
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (static_cast<std::uint64_t>(conns) + 16 > rl.rlim_cur)
            std::fprintf(stderr,
                         "idle_conns: warning: RLIMIT_NOFILE %llu is below %d connections\n",
                         static_cast<unsigned long long>(rl.rlim_cur), conns);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        std::perror("epoll_create1");
        return 1;
    }

    std::vector<int> fds(static_cast<std::size_t>(conns), -1);
    std::vector<State> st(static_cast<std::size_t>(conns), State::kIdle);
    int next = 0, in_progress = 0, opened = 0, failed = 0, reported = 0;
    auto fail = [&](int i, const char* what, int err) {
        if (reported++ < 5)
            std::fprintf(stderr, "idle_conns: connection %d: %s%s%s\n", i, what, err ? ": " : "",
                         err ? std::strerror(err) : "");
        if (st[static_cast<std::size_t>(i)] == State::kConnecting ||
            st[static_cast<std::size_t>(i)] == State::kPinging)
            in_progress--;
        st[static_cast<std::size_t>(i)] = State::kFailed;
        if (fds[static_cast<std::size_t>(i)] >= 0) close(fds[static_cast<std::size_t>(i)]);
        fds[static_cast<std::size_t>(i)] = -1;
        failed++;
    };
    auto opened_one = [&](int i) {
        st[static_cast<std::size_t>(i)] = State::kOpen;
        in_progress--;
        opened++;
        epoll_event ev{};
        ev.events = EPOLLRDHUP;  // only to notice a close by the server later
        ev.data.u32 = static_cast<std::uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_MOD, fds[static_cast<std::size_t>(i)], &ev);
    };

    const double t_start = now_s();
    std::vector<epoll_event> events(1024);
    while (opened + failed < conns) {
        if (now_s() - t_start > setup_timeout) {
            for (int i = 0; i < conns; i++) {
                State s = st[static_cast<std::size_t>(i)];
                if (s == State::kIdle || s == State::kConnecting || s == State::kPinging)
                    fail(i, "setup timed out", 0);
            }
            break;
        }
        while (next < conns && in_progress < max_in_progress) {
            int i = next++;
            int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            st[static_cast<std::size_t>(i)] = State::kConnecting;
            in_progress++;
            fds[static_cast<std::size_t>(i)] = fd;
            if (fd < 0) {
                fail(i, "socket", errno);
                continue;
            }
            if (!srcs.empty()) {
                int one = 1;
                setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                std::size_t k = static_cast<std::size_t>(i) % srcs.size();
                if (bind(fd, reinterpret_cast<sockaddr*>(&srcs[k]), src_lens[k]) < 0) {
                    fail(i, "bind", errno);
                    continue;
                }
            }
            if (connect(fd, reinterpret_cast<sockaddr*>(&dst), dst_len) < 0 &&
                errno != EINPROGRESS) {
                fail(i, "connect", errno);
                continue;
            }
            epoll_event ev{};
            ev.events = EPOLLOUT | EPOLLRDHUP;
            ev.data.u32 = static_cast<std::uint32_t>(i);
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail(i, "epoll_ctl", errno);
        }
        int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
        if (n < 0 && errno != EINTR) {
            std::perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            int i = static_cast<int>(events[static_cast<std::size_t>(k)].data.u32);
            std::uint32_t e = events[static_cast<std::size_t>(k)].events;
            int fd = fds[static_cast<std::size_t>(i)];
            if (st[static_cast<std::size_t>(i)] == State::kConnecting) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || (e & (EPOLLERR | EPOLLHUP))) {
                    fail(i, "connect", err);
                    continue;
                }
                if (!ping) {
                    opened_one(i);
                    continue;
                }
                if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
                    fail(i, "send", errno);
                    continue;
                }
                st[static_cast<std::size_t>(i)] = State::kPinging;
                epoll_event ev{};
                ev.events = EPOLLIN | EPOLLRDHUP;
                ev.data.u32 = static_cast<std::uint32_t>(i);
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            } else if (st[static_cast<std::size_t>(i)] == State::kPinging) {
                char c = 0;
                ssize_t r = recv(fd, &c, 1, 0);
                if (r == 1 && c == 'x')
                    opened_one(i);
                else if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                else
                    fail(i, r == 0 ? "server closed before the ping came back" : "ping",
                         r < 0 ? errno : 0);
            } else if (st[static_cast<std::size_t>(i)] == State::kOpen) {
                fail(i, "server closed the connection", 0);
                opened--;
            }
        }
    }
    const double setup_secs = now_s() - t_start;
    std::printf("ready conns=%d opened=%d failed=%d setup_secs=%.2f\n", conns, opened, failed,
                setup_secs);
    std::fflush(stdout);

    std::size_t fresh_ok = 0;
    if (fresh > 0) {
        std::vector<double> cus, eus;
        for (int k = 0; k < fresh && !g_stop; k++) {
            double c = 0, e = 0;
            if (fresh_echo(dst, dst_len, c, e)) {
                cus.push_back(c);
                eus.push_back(e);
            }
        }
        std::printf("fresh n=%d ok=%zu connect_us=%.1f echo_us=%.1f echo_max_us=%.1f\n", fresh,
                    eus.size(), median(cus), median(eus),
                    eus.empty() ? 0.0 : *std::max_element(eus.begin(), eus.end()));
        std::fflush(stdout);
        fresh_ok = eus.size();
    }

    // Hold: sleep in epoll_wait, noticing any connection the server closes.
    const double t_hold = now_s();
    int closed_by_server = 0;
    while (!g_stop) {
        double left = hold - (now_s() - t_hold);
        if (left <= 0) break;
        int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                           static_cast<int>(left * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        for (int k = 0; k < n; k++) {
            int i = static_cast<int>(events[static_cast<std::size_t>(k)].data.u32);
            if (st[static_cast<std::size_t>(i)] == State::kOpen) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[static_cast<std::size_t>(i)], nullptr);
                st[static_cast<std::size_t>(i)] = State::kFailed;
                closed_by_server++;
            }
        }
    }
    const int alive = opened - closed_by_server;
    std::printf("conns=%d opened=%d alive=%d failed=%d setup_secs=%.2f held_secs=%.2f\n", conns,
                opened, alive, failed, setup_secs, now_s() - t_hold);
    std::fflush(stdout);
    for (int fd : fds)
        if (fd >= 0) close(fd);
    return (opened == conns && alive == opened && fresh_ok == static_cast<std::size_t>(fresh)) ? 0
                                                                                               : 1;
}
