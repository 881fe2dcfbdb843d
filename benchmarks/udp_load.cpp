// udp_load: a UDP echo load client. One thread, epoll, non-blocking.
//
//   udp_load --port P [--host 127.0.0.1] [--sockets N] [--window W] [--size BYTES]
//            [--duration SECONDS] [--warmup SECONDS]
//
// Opens N UDP sockets connected to the echo server and keeps W datagrams of
// BYTES bytes in flight on each: whenever one comes back (whole and with the
// bytes sent: every datagram carries its sequence number and a pattern), the
// next goes out. UDP may drop: a socket that hears nothing for 100 ms counts
// what it had in flight as lost and sends a fresh window. Counting starts after
// --warmup and stops after --duration; then it prints one line
//
//   dgrams=... secs=... dgrams_per_s=... lost=... bad=... client_cpu_pct=...
//
// and exits 1 if a datagram came back damaged, 2 on bad usage. Loopback only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "udp_load: %s\nusage: udp_load --port P [--host 127.0.0.1] [--sockets N] "
                 "[--window W] [--size BYTES] [--duration S] [--warmup S]\n",
                 why);
    std::exit(2);
}

struct flow {
    int fd = -1;
    int in_flight = 0;
    std::uint64_t next_seq = 0;
    std::uint64_t last_heard = 0;
};

// Datagram seq: its number, then bytes that depend on it.
void fill(std::vector<unsigned char>& d, std::uint64_t seq) {
    std::memcpy(d.data(), &seq, sizeof seq);
    for (std::size_t k = sizeof seq; k < d.size(); ++k)
        d[k] = static_cast<unsigned char>((k + seq) & 0xff);
}

bool intact(const unsigned char* d, std::size_t n, std::size_t size) {
    if (n != size) return false;
    std::uint64_t seq;
    std::memcpy(&seq, d, sizeof seq);
    for (std::size_t k = sizeof seq; k < n; ++k)
        if (d[k] != static_cast<unsigned char>((k + seq) & 0xff)) return false;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = 0, sockets = 4, window = 16;
    std::size_t size = 64;
    double duration = 3, warmup = 0.5;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + a).c_str());
        const char* v = argv[++i];
        if (a == "--host")
            host = v;
        else if (a == "--port")
            port = std::atoi(v);
        else if (a == "--sockets")
            sockets = std::atoi(v);
        else if (a == "--window")
            window = std::atoi(v);
        else if (a == "--size")
            size = std::strtoul(v, nullptr, 10);
        else if (a == "--duration")
            duration = std::atof(v);
        else if (a == "--warmup")
            warmup = std::atof(v);
        else
            usage(("unknown flag " + a).c_str());
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host.c_str(), &to.sin_addr) != 1 ||
        (ntohl(to.sin_addr.s_addr) >> 24) != 127)
        usage("--port and a loopback IPv4 --host are needed");
    if (sockets < 1 || window < 1 || size < 8 || size > 65507)
        usage("bad --sockets, --window or --size");

    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<flow> flows(static_cast<std::size_t>(sockets));
    std::vector<unsigned char> out(size), in(65536);
    for (std::size_t i = 0; i < flows.size(); ++i) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
            std::perror("udp_load: socket/connect");
            return 2;
        }
        flows[i].fd = fd;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    auto send_one = [&](flow& f) {
        fill(out, f.next_seq++);
        if (send(f.fd, out.data(), out.size(), 0) == ssize_t(out.size())) ++f.in_flight;
    };
    const std::uint64_t start = now_ns();
    for (auto& f : flows) {
        f.last_heard = start;
        for (int k = 0; k < window; ++k)
            send_one(f);
    }
    const std::uint64_t count_from = start + std::uint64_t(warmup * 1e9);
    const std::uint64_t stop = count_from + std::uint64_t(duration * 1e9);
    std::uint64_t dgrams = 0, lost = 0, bad = 0;
    double cpu_from = -1;
    epoll_event evs[64];
    for (;;) {
        std::uint64_t t = now_ns();
        if (t >= stop) break;
        if (cpu_from < 0 && t >= count_from) {
            cpu_from = cpu_seconds();
            dgrams = lost = 0;
        }
        int n = epoll_wait(ep, evs, 64, 10);
        t = now_ns();
        for (int e = 0; e < n; ++e) {
            flow& f = flows[evs[e].data.u64];
            for (;;) {
                ssize_t got = recv(f.fd, in.data(), in.size(), 0);
                if (got < 0) break;  // EAGAIN (or ECONNREFUSED: the server is gone)
                --f.in_flight;
                f.last_heard = t;
                if (intact(in.data(), std::size_t(got), size))
                    ++dgrams;
                else
                    ++bad;
                send_one(f);
            }
        }
        for (auto& f : flows) {
            if (t - f.last_heard < 100'000'000u) continue;
            lost += std::uint64_t(f.in_flight > 0 ? f.in_flight : 0);  // dropped on the way
            f.in_flight = 0;
            f.last_heard = t;
            for (int k = 0; k < window; ++k)
                send_one(f);
        }
    }
    double secs = duration;
    double cpu = cpu_from < 0 ? 0 : cpu_seconds() - cpu_from;
    std::printf("dgrams=%llu secs=%.2f dgrams_per_s=%.0f lost=%llu bad=%llu client_cpu_pct=%.0f\n",
                static_cast<unsigned long long>(dgrams), secs, double(dgrams) / secs,
                static_cast<unsigned long long>(lost), static_cast<unsigned long long>(bad),
                100.0 * cpu / secs);
    return bad > 0 ? 1 : 0;
}
