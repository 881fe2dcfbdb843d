// tests/examples/echo_server_test.cpp: runs examples/echo_server the way a user does.
//
// Each test starts the real binary (a data dependency, found in the runfiles) as a child
// process on port 0, reads the port from its start line, talks to it over loopback and stops
// it with a signal, expecting exit status 0. Every wait is bounded, and the only processes
// signalled are the children started here (a guard kills and reaps one a failed test leaves).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/backends.hpp"

extern char** environ;

// Present only when UBSan is linked in (--config=ubsan): see the descriptor test.
extern "C" __attribute__((weak)) void __ubsan_handle_dynamic_type_cache_miss(void*, void*, void*);

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// The binary under test, from the runfiles tree.
std::string server_path() {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/examples/echo_server";
    return "examples/echo_server";
}

// Milliseconds left until deadline (0 when past), for poll().
int ms_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
    return left > 0 ? int(left) : 0;
}

// "exited 0", "killed by SIGABRT", ... for failure messages.
std::string describe(int status) {
    if (status == -1) return "still running";
    if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + sigabbrev_np(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// An echo_server child with its stdout and stderr on pipes.
class server {
public:
    explicit server(std::vector<std::string> args) {
        int out[2], err[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_adddup2(&actions, err[1], 2);
        std::string path = server_path();
        std::vector<char*> argv{path.data()};
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int rc = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        ::close(err[1]);
        out_ = out[0];
        err_ = err[0];
        INFO("posix_spawn " << path);
        REQUIRE(rc == 0);
    }
    ~server() {
        if (pid_ > 0) {  // a test failed half-way: do not leave our child behind
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
        ::close(err_);
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const { REQUIRE(::kill(pid_, sig) == 0); }

    // The first line of stdout (the start line), waiting up to 10 s.
    std::string start_line() {
        auto deadline = steady::now() + 10s;
        while (out_text_.find('\n') == std::string::npos &&
               drain(out_, out_text_, ms_until(deadline)))
            continue;
        return out_text_.substr(0, out_text_.find('\n'));
    }

    // The port of "echo_server: listening on 127.0.0.1:PORT (backend ...)".
    unsigned port() {
        std::string line = start_line();
        INFO("start line: " << line << "\nstderr: " << err());
        auto at = line.find("listening on 127.0.0.1:");
        REQUIRE(at != std::string::npos);
        return unsigned(std::stoul(line.substr(at + 23)));
    }

    // Everything on stderr so far (waits for nothing).
    const std::string& err() {
        while (drain(err_, err_text_, 0))
            continue;
        return err_text_;
    }

    // Waits up to `timeout` for the child to exit: its wait status, or -1.
    int wait_exit(milliseconds timeout) {
        auto deadline = steady::now() + timeout;
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return status;
            }
            if (steady::now() >= deadline) return -1;
            std::this_thread::sleep_for(10ms);
        }
    }

    // Reads both pipes to their end (the child has exited or is about to), at most 10 s.
    std::pair<std::string, std::string> output() {
        auto deadline = steady::now() + 10s;
        while (drain(out_, out_text_, ms_until(deadline)))
            continue;
        while (drain(err_, err_text_, ms_until(deadline)))
            continue;
        return {out_text_, err_text_};
    }

private:
    // Appends what fd has within timeout_ms; false at EOF or when nothing came.
    static bool drain(int fd, std::string& into, int timeout_ms) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return false;
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return false;
        into.append(buf, std::size_t(n));
        return true;
    }

    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    std::string out_text_, err_text_;
};

// A TCP connection to 127.0.0.1:port, closed when it dies.
class client {
public:
    explicit client(unsigned port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(std::uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        INFO("connect to port " << port << ": " << std::strerror(errno));
        REQUIRE(rc == 0);
        ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    }
    client(client&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    client& operator=(client&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    ~client() {
        if (fd_ >= 0) ::close(fd_);
    }

    // Sends data while reading the echo (so 1 MiB never deadlocks on full socket buffers);
    // returns what came back: data.size() bytes, or fewer if the server closed or 20 s passed.
    std::string round_trip(const std::string& data) {
        std::string back;
        std::size_t sent = 0;
        auto deadline = steady::now() + 20s;
        while (back.size() < data.size() && steady::now() < deadline) {
            pollfd p{fd_, short(POLLIN | (sent < data.size() ? POLLOUT : 0)), 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) break;
            if (sent < data.size() && (p.revents & POLLOUT)) {
                ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
                if (n > 0) sent += std::size_t(n);
            }
            if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                char buf[65536];
                ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
                if (n == 0 || (n < 0 && errno != EAGAIN)) break;
                if (n > 0) back.append(buf, std::size_t(n));
            }
        }
        return back;
    }

private:
    int fd_;
};

// size bytes that are not all alike, so a misplaced chunk shows.
std::string pattern(std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = char('a' + (i * 7 + i / 4096) % 26);
    return s;
}

// CPU time (user + system) the process has used so far.
std::chrono::duration<double> cpu_time(pid_t pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    REQUIRE(f);
    char buf[1024] = {};
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::string stat(buf, n);
    // Fields after the ")" that ends the command name: state is 3rd, utime 14th, stime 15th.
    std::string rest = stat.substr(stat.rfind(')') + 2);
    std::vector<std::string> fields;
    for (std::size_t at = 0; at < rest.size();) {
        std::size_t end = rest.find(' ', at);
        fields.push_back(rest.substr(at, end - at));
        at = end == std::string::npos ? rest.size() : end + 1;
    }
    double ticks = std::stod(fields[11]) + std::stod(fields[12]);
    return std::chrono::duration<double>(ticks / double(::sysconf(_SC_CLK_TCK)));
}

std::size_t open_fd_count(pid_t pid) {
    auto dir = std::filesystem::path("/proc") / std::to_string(pid) / "fd";
    return std::size_t(std::distance(std::filesystem::directory_iterator(dir), {}));
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("echo_server: --help prints the usage and exits 0", "[echo_server]") {
    server s({"--help"});
    int status = s.wait_exit(10s);
    auto [out, err] = s.output();
    INFO(describe(status) << "\nstdout: " << out << "\nstderr: " << err);
    CHECK(status == 0);
    CHECK(
        out.starts_with("usage: echo_server [--host 127.0.0.1] [--port 7000] "
                        "[--backend auto|io_uring|epoll|select] [--threads 1]\n"));
    CHECK(err.empty());
}

TEST_CASE("echo_server: a bad argument prints what is wrong and the usage, and exits 2",
          "[echo_server]") {
    using case_t = std::pair<std::vector<std::string>, std::string>;
    auto [args, expected] = GENERATE(
        case_t{{"--nope"}, "echo_server: unknown flag '--nope'"},
        case_t{{"--port", "http"},
               "echo_server: --port: expected an integer from 0 to 65535, got 'http'"},
        case_t{{"--port", "65536"}, "echo_server: --port: expected an integer from 0 to 65535"},
        case_t{{"--port"}, "echo_server: --port needs a value"},
        case_t{{"--backend", "kqueue"},
               "echo_server: --backend: expected one of auto|io_uring|epoll|select"},
        case_t{{"--threads", "0"}, "echo_server: --threads: expected an integer from 1 to 256"},
        case_t{{"--threads", "257"}, "echo_server: --threads: expected an integer from 1 to 256"},
        case_t{{"stray"}, "echo_server: unexpected argument 'stray'"});
    server s(args);
    int status = s.wait_exit(10s);
    auto [out, err] = s.output();
    INFO("args: " << Catch::Detail::stringify(args) << "\n"
                  << describe(status) << "\nstderr: " << err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(err.starts_with(expected));
    CHECK(count(err.substr(0, err.find("usage:")), "\n") == 1);  // one line, then the usage
    CHECK(err.find("\nusage: echo_server [--host") != std::string::npos);
    CHECK(out.empty());
}

TEST_CASE("echo_server: echoes every byte on every backend and exits 0 on a signal",
          "[echo_server]") {
    CORONET_FOR_EACH_BACKEND(kind);
    const unsigned threads = GENERATE(1u, 2u);
    const int sig = threads == 1 ? SIGTERM : SIGINT;
    INFO("threads: " << threads << ", stopped by " << sigabbrev_np(sig));
    std::string name(coronet::to_string(kind));
    server s({"--port", "0", "--backend", name, "--threads", std::to_string(threads)});
    unsigned port = s.port();
    CHECK(s.start_line().ends_with("(backend " + name + ", " + std::to_string(threads) +
                                   (threads == 1 ? " thread)" : " threads)")));

    // Several connections at once (with two threads, both listeners get some).
    std::vector<client> clients;
    for (int i = 0; i < 8; ++i)
        clients.emplace_back(port);
    for (std::size_t size : {std::size_t{1}, std::size_t{6}, std::size_t{16 * 1024 + 1}}) {
        for (auto& c : clients) {
            std::string data = pattern(size);
            REQUIRE(c.round_trip(data) == data);
        }
    }
    const std::string mib = pattern(1 << 20);
    std::string back = clients[3].round_trip(mib);
    REQUIRE(back.size() == mib.size());
    REQUIRE(back == mib);
    REQUIRE(clients[5].round_trip("hello\n") == "hello\n");

    // Stop it with connections still open: the reactors close them and the process exits 0.
    s.signal(sig);
    int status = s.wait_exit(10s);
    INFO(describe(status) << "\nstderr: " << s.err());
    CHECK(status == 0);
    CHECK(s.err().find("uncaptured") == std::string::npos);
}

TEST_CASE("echo_server: keeps accepting after running out of descriptors", "[echo_server]") {
    // UBSan's vptr check reads memory through a pipe(), so with no descriptor left the server's
    // own `throw std::system_error` (EMFILE) is reported as "invalid vptr": a sanitizer limit.
    if (__ubsan_handle_dynamic_type_cache_miss) {
        WARN("UBSan needs free descriptors for its vptr check; skipped");
        return;
    }
    CORONET_FOR_EACH_BACKEND(kind);
    server s({"--port", "0", "--backend", std::string(coronet::to_string(kind))});
    unsigned port = s.port();
    // Room for two more descriptors only: the third connection meets EMFILE.
    rlimit limit{};
    limit.rlim_cur = limit.rlim_max = open_fd_count(s.pid()) + 2;
    REQUIRE(::prlimit(s.pid(), RLIMIT_NOFILE, &limit, nullptr) == 0);

    std::vector<client> clients;
    for (int i = 0; i < 6; ++i)
        clients.emplace_back(port);  // the kernel's backlog takes them all
    CHECK(clients[0].round_trip("a") == "a");
    CHECK(clients[1].round_trip("b") == "b");
    auto deadline = steady::now() + 10s;
    while (s.err().find("Too many open files") == std::string::npos && steady::now() < deadline)
        std::this_thread::sleep_for(10ms);
    INFO("stderr: " << s.err());
    REQUIRE(s.err().find("accept: Too many open files") != std::string::npos);

    // Stuck at the limit for a second: it backs off (no busy loop) and logs the burst once.
    // The bound is loose on purpose; a spinning accept loop burns the whole second.
    auto cpu_before = cpu_time(s.pid());
    std::this_thread::sleep_for(1s);
    CHECK(cpu_time(s.pid()) - cpu_before < 0.5s);
    CHECK(count(s.err(), "accept:") == 1);

    // Descriptors come back: the waiting connections are served, and new ones too.
    clients.erase(clients.begin(), clients.begin() + 2);
    CHECK(clients[0].round_trip("c") == "c");
    clients.clear();
    client late(port);
    CHECK(late.round_trip("still here") == "still here");

    s.signal(SIGTERM);
    int status = s.wait_exit(10s);
    INFO(describe(status));
    CHECK(status == 0);
}
