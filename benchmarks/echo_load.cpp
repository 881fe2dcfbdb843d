// echo_load: coronet's echo load client. One thread, epoll, non-blocking.
//
//   echo_load --host 127.0.0.1 --port P --connections N --size BYTES
//             --pipeline DEPTH --duration SECONDS [--warmup SECONDS]
//             [--source-addrs 127.0.0.1,127.0.0.2,...]
//
// Opens N connections (spread round-robin over the source addresses, to keep
// clear of ephemeral-port exhaustion), and on each keeps DEPTH messages of
// BYTES bytes in flight: whenever one message has come back whole, the next
// one goes out. Message m of connection c is a deterministic slice of a
// per-connection pseudo-random pattern, and every echoed byte is checked
// against it; a mismatch, an early EOF, a reset or a failed connect counts
// as an error. Counting starts once every connection has connected (plus
// --warmup) and stops after --duration; then the tool prints one line
//
//   msgs=... secs=... msgs_per_s=... MBps=... p50_us=... p99_us=...
//   errors=... client_cpu_pct=... conns=... connected=...
//
// (MBps counts echoed payload one way, 1e6 bytes; latency is from queueing a
// message to its last byte back) and exits 1 if errors > 0, 2 on bad usage.
// Only loopback addresses (127.0.0.0/8, ::1) are accepted as --host.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

constexpr std::size_t kPatternSlack = 251;  // message m starts at m % 251
constexpr std::uint64_t kMaxLatencyUs = 2'000'000;

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

double cpu_secs() {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Options {
    std::string host = "127.0.0.1";
    int port = -1;
    int connections = 50;
    std::size_t size = 64;
    int pipeline = 1;
    double duration = 5;
    double warmup = 0;
    std::vector<std::string> source_addrs;
};

[[noreturn]] void usage(const char* argv0, const char* why) {
    std::fprintf(
        stderr,
        "%s: %s\nusage: %s --host ADDR --port P --connections N --size BYTES --pipeline DEPTH "
        "--duration SECONDS [--warmup SECONDS] [--source-addrs A,B,...]\n",
        argv0, why, argv0);
    std::exit(2);
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        std::size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        if (comma > start) out.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(argv[0], ("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--host")
            o.host = value();
        else if (a == "--port")
            o.port = std::atoi(value().c_str());
        else if (a == "--connections")
            o.connections = std::atoi(value().c_str());
        else if (a == "--size")
            o.size = static_cast<std::size_t>(std::atoll(value().c_str()));
        else if (a == "--pipeline")
            o.pipeline = std::atoi(value().c_str());
        else if (a == "--duration")
            o.duration = std::atof(value().c_str());
        else if (a == "--warmup")
            o.warmup = std::atof(value().c_str());
        else if (a == "--source-addrs")
            o.source_addrs = split_commas(value());
        else
            usage(argv[0], ("unknown argument " + a).c_str());
    }
    if (o.port <= 0 || o.port > 65535) usage(argv[0], "bad --port");
    if (o.connections <= 0) usage(argv[0], "bad --connections");
    if (o.size == 0 || o.size > (64u << 20)) usage(argv[0], "bad --size");
    if (o.pipeline <= 0) usage(argv[0], "bad --pipeline");
    if (!(o.duration > 0) || o.duration > 3600) usage(argv[0], "bad --duration");
    if (o.warmup < 0 || o.warmup > 600) usage(argv[0], "bad --warmup");
    return o;
}

bool is_loopback(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    return false;
}

bool resolve(const std::string& host, int port, sockaddr_storage& out, socklen_t& len) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string p = std::to_string(port);
    if (getaddrinfo(host.c_str(), p.c_str(), &hints, &res) != 0 || !res) return false;
    std::memcpy(&out, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

struct Conn {
    int fd = -1;
    bool connecting = true;
    bool dead = false;
    bool want_out = false;
    std::vector<unsigned char> pattern;  // size + kPatternSlack bytes
    std::uint64_t next_send = 0;         // next message index to queue
    std::uint64_t recv_msg = 0;          // message being received
    std::size_t recv_off = 0;            // bytes of it received so far
    std::vector<unsigned char> out;
    std::size_t out_off = 0;
    std::vector<std::uint64_t> sent_ns;  // ring of DEPTH queue times
};

class Load {
public:
    explicit Load(Options o) : o_(std::move(o)), conns_(static_cast<std::size_t>(o_.connections)) {}

    int run();

private:
    void open_all();
    void on_event(Conn& c, std::uint32_t ev);
    void on_connected(Conn& c);
    void on_readable(Conn& c);
    void queue_msg(Conn& c);
    void flush(Conn& c);
    void set_out(Conn& c, bool on);
    void fail(Conn& c, const char* what, int err);
    void record(std::uint64_t lat_ns);
    std::uint64_t percentile_us(double q) const;

    Options o_;
    std::vector<Conn> conns_;
    int epfd_ = -1;
    int connected_ = 0;
    int pending_connects_ = 0;
    bool counting_ = false;
    bool stopping_ = false;
    std::uint64_t now_ = 0;
    std::uint64_t msgs_ = 0;
    std::uint64_t errors_ = 0;
    std::uint64_t reported_errors_ = 0;
    std::vector<std::uint64_t> hist_ = std::vector<std::uint64_t>(kMaxLatencyUs + 1, 0);
    std::vector<unsigned char> rbuf_ = std::vector<unsigned char>(256 * 1024);
};

void Load::fail(Conn& c, const char* what, int err) {
    errors_++;
    if (reported_errors_++ < 5) {
        std::fprintf(stderr, "echo_load: connection %zu: %s%s%s\n",
                     static_cast<std::size_t>(&c - conns_.data()), what, err ? ": " : "",
                     err ? std::strerror(err) : "");
    }
    if (c.connecting) pending_connects_--;
    c.connecting = false;
    c.dead = true;
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
}

void Load::set_out(Conn& c, bool on) {
    if (c.want_out == on) return;
    c.want_out = on;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
    ev.data.ptr = &c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Load::open_all() {
    sockaddr_storage dst{};
    socklen_t dst_len = 0;
    if (!resolve(o_.host, o_.port, dst, dst_len))
        usage("echo_load", "--host must be a numeric address");
    if (!is_loopback(dst))
        usage("echo_load", "--host must be a loopback address (127.0.0.0/8 or ::1)");

    std::vector<sockaddr_storage> srcs;
    std::vector<socklen_t> src_lens;
    for (const std::string& s : o_.source_addrs) {
        sockaddr_storage ss{};
        socklen_t len = 0;
        if (!resolve(s, 0, ss, len) || ss.ss_family != dst.ss_family || !is_loopback(ss)) {
            usage("echo_load", ("bad --source-addrs entry " + s).c_str());
        }
        srcs.push_back(ss);
        src_lens.push_back(len);
    }

    for (std::size_t i = 0; i < conns_.size(); i++) {
        Conn& c = conns_[i];
        // Per-connection pattern from a xorshift64 stream seeded by the index.
        c.pattern.resize(o_.size + kPatternSlack);
        std::uint64_t x = 0x9E3779B97F4A7C15ull * (i + 1);
        for (auto& b : c.pattern) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b = static_cast<unsigned char>(x >> 24);
        }
        c.sent_ns.assign(static_cast<std::size_t>(o_.pipeline), 0);
        c.out.reserve(o_.size * static_cast<std::size_t>(o_.pipeline));

        c.fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        pending_connects_++;
        if (c.fd < 0) {
            fail(c, "socket", errno);
            continue;
        }
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!srcs.empty()) {
            setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            std::size_t k = i % srcs.size();
            if (bind(c.fd, reinterpret_cast<sockaddr*>(&srcs[k]), src_lens[k]) < 0) {
                fail(c, "bind", errno);
                continue;
            }
        }
        if (connect(c.fd, reinterpret_cast<sockaddr*>(&dst), dst_len) < 0 && errno != EINPROGRESS) {
            fail(c, "connect", errno);
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.ptr = &c;
        c.want_out = true;
        if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) < 0) fail(c, "epoll_ctl", errno);
    }
}

void Load::queue_msg(Conn& c) {
    std::size_t start = static_cast<std::size_t>(c.next_send % kPatternSlack);
    c.out.insert(c.out.end(), c.pattern.begin() + static_cast<std::ptrdiff_t>(start),
                 c.pattern.begin() + static_cast<std::ptrdiff_t>(start + o_.size));
    c.sent_ns[static_cast<std::size_t>(c.next_send % static_cast<std::uint64_t>(o_.pipeline))] =
        now_;
    c.next_send++;
}

void Load::flush(Conn& c) {
    while (c.out_off < c.out.size()) {
        ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_off += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(c, true);
            return;
        } else {
            fail(c, "send", n < 0 ? errno : 0);
            return;
        }
    }
    c.out.clear();
    c.out_off = 0;
    set_out(c, false);
}

void Load::on_connected(Conn& c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        fail(c, "connect", err);
        return;
    }
    c.connecting = false;
    pending_connects_--;
    connected_++;
    for (int k = 0; k < o_.pipeline; k++)
        queue_msg(c);
    flush(c);
}

void Load::record(std::uint64_t lat_ns) {
    std::uint64_t us = lat_ns / 1000;
    hist_[std::min(us, kMaxLatencyUs)]++;
}

void Load::on_readable(Conn& c) {
    for (;;) {
        ssize_t n = recv(c.fd, rbuf_.data(), rbuf_.size(), 0);
        if (n == 0) {
            if (!stopping_) fail(c, "server closed the connection", 0);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            fail(c, "recv", errno);
            return;
        }
        now_ = now_ns();
        const unsigned char* p = rbuf_.data();
        std::size_t left = static_cast<std::size_t>(n);
        while (left > 0) {
            if (c.recv_msg >= c.next_send) {
                fail(c, "received more bytes than were sent", 0);
                return;
            }
            std::size_t take = std::min(left, o_.size - c.recv_off);
            const unsigned char* want = c.pattern.data() + c.recv_msg % kPatternSlack + c.recv_off;
            if (std::memcmp(p, want, take) != 0) {
                fail(c, "echoed bytes differ from what was sent", 0);
                return;
            }
            p += take;
            left -= take;
            c.recv_off += take;
            if (c.recv_off == o_.size) {
                if (counting_) {
                    msgs_++;
                    record(now_ - c.sent_ns[static_cast<std::size_t>(
                                      c.recv_msg % static_cast<std::uint64_t>(o_.pipeline))]);
                }
                c.recv_msg++;
                c.recv_off = 0;
                if (!stopping_) queue_msg(c);
            }
        }
        if (static_cast<std::size_t>(n) < rbuf_.size()) break;
    }
    if (!c.out.empty()) flush(c);
}

void Load::on_event(Conn& c, std::uint32_t ev) {
    if (c.dead) return;
    if (c.connecting) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        if (c.dead || c.connecting) return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        on_readable(c);
        if (c.dead) return;
    }
    if ((ev & EPOLLOUT) && c.want_out) flush(c);
}

std::uint64_t Load::percentile_us(double q) const {
    if (msgs_ == 0) return 0;
    std::uint64_t target = static_cast<std::uint64_t>(q * static_cast<double>(msgs_));
    if (target >= msgs_) target = msgs_ - 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < hist_.size(); i++) {
        seen += hist_[i];
        if (seen > target) return i;
    }
    return kMaxLatencyUs;
}

int Load::run() {
    signal(SIGPIPE, SIG_IGN);
    // Many connections need many descriptors: take the hard limit.
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
        std::perror("epoll_create1");
        return 1;
    }
    now_ = now_ns();
    const std::uint64_t connect_deadline = now_ + 10'000'000'000ull;
    open_all();

    std::vector<epoll_event> events(1024);
    std::uint64_t t0 = 0, t_end = 0;
    double cpu0 = 0;
    const std::uint64_t warmup_ns = static_cast<std::uint64_t>(o_.warmup * 1e9);
    const std::uint64_t duration_ns = static_cast<std::uint64_t>(o_.duration * 1e9);
    std::uint64_t warm_start = 0;  // when the last connection was in

    for (;;) {
        now_ = now_ns();
        if (!warm_start && (pending_connects_ == 0 || now_ >= connect_deadline)) {
            warm_start = now_;
            if (pending_connects_ > 0) {  // give up on the stragglers
                for (Conn& c : conns_)
                    if (c.connecting && !c.dead) fail(c, "connect timed out", 0);
            }
        }
        if (warm_start && !counting_ && now_ >= warm_start + warmup_ns) {
            counting_ = true;
            t0 = now_;
            t_end = t0 + duration_ns;
            cpu0 = cpu_secs();
        }
        if (counting_ && now_ >= t_end) break;
        if (connected_ == 0 && warm_start) break;  // nothing can ever be counted

        std::uint64_t wake = counting_    ? t_end
                             : warm_start ? warm_start + warmup_ns
                                          : connect_deadline;
        int timeout_ms = wake > now_ ? static_cast<int>((wake - now_ + 999'999) / 1'000'000) : 0;
        int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++)
            on_event(*static_cast<Conn*>(events[i].data.ptr), events[i].events);
    }
    std::uint64_t t1 = now_ns();
    double cpu1 = cpu_secs();
    stopping_ = true;

    double secs = counting_ ? static_cast<double>(t1 - t0) / 1e9 : 0.0;
    double rate = secs > 0 ? static_cast<double>(msgs_) / secs : 0.0;
    double mbps = rate * static_cast<double>(o_.size) / 1e6;
    double cpu_pct = secs > 0 ? (cpu1 - cpu0) / secs * 100.0 : 0.0;
    if (connected_ == 0) {
        errors_ = std::max<std::uint64_t>(errors_, 1);
        std::fprintf(stderr, "echo_load: no connection could be made\n");
    }
    std::printf(
        "msgs=%llu secs=%.3f msgs_per_s=%.0f MBps=%.2f p50_us=%llu p99_us=%llu errors=%llu "
        "client_cpu_pct=%.1f "
        "conns=%d connected=%d\n",
        static_cast<unsigned long long>(msgs_), secs, rate, mbps,
        static_cast<unsigned long long>(percentile_us(0.50)),
        static_cast<unsigned long long>(percentile_us(0.99)),
        static_cast<unsigned long long>(errors_), cpu_pct, o_.connections, connected_);
    std::fflush(stdout);
    for (Conn& c : conns_)
        if (c.fd >= 0) close(c.fd);
    return errors_ > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    Load load(parse(argc, argv));
    return load.run();
}
