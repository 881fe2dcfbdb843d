#pragma once
// Test support: run a program as a child process and talk to it over loopback, the way a user
// would, with every wait bounded.
//
// `child` starts a binary (argv[0] a full path; `runfile` finds one in the Bazel runfiles, `tool`
// on PATH) with stdout and stderr on pipes and stdin from /dev/null, optionally with more
// environment and a lower RLIMIT_NOFILE set in the child before exec. It reads its output while
// it waits, signals it by PID, and kills and reaps it if a test leaves it running. `tcp_client`
// is a non-blocking loopback connection driven by poll() with timeouts. The /proc readers give a
// child's CPU time, resident memory and open descriptors. Only children started here are
// signalled.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace coronet::testing {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// Milliseconds left until deadline (0 when past), for poll().
inline int ms_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
    return left > 0 ? int(std::min<long long>(left, INT_MAX)) : 0;
}

// "exited 0", "killed by SIGABRT", "still running" (-1), ... for failure messages.
inline std::string describe(int status) {
    if (status == -1) return "still running";
    if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + sigabbrev_np(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// True when a wait status says the process exited with code.
inline bool exited_with(int status, int code) {
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

// How often what occurs in text.
inline std::size_t count(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

// A file of this workspace in the test's runfiles tree ("examples/http_server").
inline std::string runfile(const std::string& path) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/" + path;
    return path;
}

// The full path of a program on PATH (or in the usual places); fails the test with `how_to_get`
// when it is missing.
inline std::string tool(const std::string& name, std::string_view how_to_get) {
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    dirs += ":/usr/bin:/bin:/usr/local/bin";
    for (std::size_t at = 0; at <= dirs.size();) {
        std::size_t end = std::min(dirs.find(':', at), dirs.size());
        std::string candidate = dirs.substr(at, end - at) + "/" + name;
        if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        at = end + 1;
    }
    FAIL(name << " is not installed: " << how_to_get);
    return {};
}

// How a child starts.
struct child_options {
    std::vector<std::string> env{};  // "NAME=value" replaces an inherited NAME; "NAME" removes it
    bool discard_stderr = false;     // stderr to /dev/null instead of a pipe
    rlim_t max_files = 0;            // RLIMIT_NOFILE for the child (0: inherited)
};

// A child process with stdout and stderr on pipes; killed and reaped if a test leaves it.
class child {
public:
    explicit child(std::vector<std::string> argv, const child_options& options = {}) {
        int out[2], err[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
        // Everything the child needs is made before fork(): after it, only async-signal-safe
        // calls (a test may run threads).
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        std::vector<std::string> env = options.env, names;
        std::vector<char*> envp;
        for (auto& e : env) {
            names.push_back(e.substr(0, e.find('=')) + "=");
            if (e.find('=') != std::string::npos) envp.push_back(e.data());
        }
        for (char** e = environ; *e; ++e) {
            std::string_view var(*e);
            bool replaced = std::any_of(names.begin(), names.end(), [&](const std::string& name) {
                return var.starts_with(name);
            });
            if (!replaced) envp.push_back(*e);
        }
        envp.push_back(nullptr);
        rlimit files{options.max_files, options.max_files};
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            int in = ::open("/dev/null", O_RDONLY);
            if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out[1], 1) < 0) ::_exit(126);
            if (options.discard_stderr) {
                int null = ::open("/dev/null", O_WRONLY);
                if (null < 0 || ::dup2(null, 2) < 0) ::_exit(126);
            } else if (::dup2(err[1], 2) < 0) {
                ::_exit(126);
            }
            if (options.max_files && ::setrlimit(RLIMIT_NOFILE, &files) != 0) ::_exit(126);
            ::execve(args[0], args.data(), envp.data());
            static const char failed[] = "child: execve failed\n";
            (void)!::write(2, failed, sizeof failed - 1);
            ::_exit(127);
        }
        ::close(out[1]);
        ::close(err[1]);
        out_ = out[0];
        err_ = err[0];
    }
    ~child() {
        if (pid_ > 0) {  // a test failed half-way: do not leave our child behind
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
        ::close(err_);
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }
    void signal(int sig) const {
        REQUIRE(pid_ > 0);
        REQUIRE(::kill(pid_, sig) == 0);
    }

    // Waits up to `timeout` for the child to exit, reading its output meanwhile: its wait
    // status, or -1 while it still runs.
    int wait_exit(milliseconds timeout) {
        auto deadline = steady::now() + timeout;
        while (pid_ > 0) {
            if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            if (steady::now() >= deadline) return -1;
            pump(10);
        }
        pump(0);
        return status_;
    }

    // SIGTERM, up to `grace` to exit, then SIGKILL: the wait status.
    int stop(milliseconds grace = std::chrono::seconds(10)) {
        if (pid_ <= 0) return status_;
        ::kill(pid_, SIGTERM);
        if (int status = wait_exit(grace); status != -1) return status;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        pid_ = -1;
        pump(0);
        return status_;
    }

    // Reads both pipes until they end (the child and any it started have exited), at most
    // `timeout`: stdout and stderr.
    std::pair<std::string, std::string> output(milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = steady::now() + timeout;
        while ((out_open_ || err_open_) && steady::now() < deadline)
            pump(ms_until(deadline));
        return {out_text_, err_text_};
    }

    // The first line of stdout (without "\n"), waiting up to `timeout`.
    std::string first_line(milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = steady::now() + timeout;
        while (out_text_.find('\n') == std::string::npos && out_open_ && steady::now() < deadline)
            pump(ms_until(deadline));
        return out_text_.substr(0, out_text_.find('\n'));
    }

    // True once stderr holds text, waiting up to `timeout`.
    bool wait_for_err(std::string_view text, milliseconds timeout) {
        auto deadline = steady::now() + timeout;
        while (err_text_.find(text) == std::string::npos && steady::now() < deadline)
            pump(std::min(ms_until(deadline), 50));
        return err_text_.find(text) != std::string::npos;
    }

    // stdout and stderr so far (they wait for nothing).
    const std::string& out() {
        pump(0);
        return out_text_;
    }
    const std::string& err() {
        pump(0);
        return err_text_;
    }

private:
    // Reads what the pipes have, waiting up to timeout_ms for the first bytes.
    void pump(int timeout_ms) {
        for (;;) {
            pollfd p[2] = {{out_open_ ? out_ : -1, POLLIN, 0}, {err_open_ ? err_ : -1, POLLIN, 0}};
            if ((!out_open_ && !err_open_) || ::poll(p, 2, timeout_ms) <= 0) return;
            timeout_ms = 0;
            if (p[0].revents) out_open_ = read_some(out_, out_text_);
            if (p[1].revents) err_open_ = read_some(err_, err_text_);
        }
    }
    static bool read_some(int fd, std::string& into) {
        char buf[16384];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) into.append(buf, std::size_t(n));
        return n > 0 || (n < 0 && errno == EINTR);
    }

    pid_t pid_ = -1;
    int status_ = -1;
    int out_ = -1, err_ = -1;
    bool out_open_ = true, err_open_ = true;
    std::string out_text_, err_text_;
};

// What a program that ran to its end did.
struct result {
    int status;  // wait status; -1 if it had to be killed at the deadline
    std::string out, err;
};

// Runs a program to its end (killed after `timeout`): its status and output.
inline result run(std::vector<std::string> argv, milliseconds timeout = std::chrono::seconds(20),
                  const child_options& options = {}) {
    child c(std::move(argv), options);
    auto deadline = steady::now() + timeout;
    auto [out, err] = c.output(timeout);
    int status = c.wait_exit(milliseconds(ms_until(deadline)));
    if (status == -1) c.stop(milliseconds(0));
    return {status, c.out(), c.err()};
}

// The port in a start line, the digits right after `marker` ("listening on 127.0.0.1:").
inline unsigned port_after(const std::string& line, std::string_view marker) {
    INFO("start line: " << line);
    auto at = line.find(marker);
    REQUIRE(at != std::string::npos);
    return unsigned(std::stoul(line.substr(at + marker.size())));
}

// Lets this process open up to n descriptors (as far as its hard limit allows): tests that
// hold a thousand connections need more than the usual 1,024. Returns the new soft limit.
inline rlim_t raise_open_files(rlim_t n) {
    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
    if (limit.rlim_cur < n) {
        limit.rlim_cur = std::min(n, limit.rlim_max);
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
    }
    return limit.rlim_cur;
}

// --- /proc ---------------------------------------------------------------------------------

// CPU time (user + system) a process has used so far.
inline std::chrono::duration<double> cpu_time(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    REQUIRE(!stat.empty());
    // Fields after the ")" that ends the command name: state is 3rd, utime 14th, stime 15th.
    std::string rest = stat.substr(stat.rfind(')') + 2);
    std::vector<std::string> fields;
    for (std::size_t at = 0; at < rest.size();) {
        std::size_t end = rest.find(' ', at);
        fields.push_back(rest.substr(at, end - at));
        at = end == std::string::npos ? rest.size() : end + 1;
    }
    REQUIRE(fields.size() > 12);
    double ticks = std::stod(fields[11]) + std::stod(fields[12]);
    return std::chrono::duration<double>(ticks / double(::sysconf(_SC_CLK_TCK)));
}

// Resident memory of a process in KiB (VmRSS in /proc/PID/status).
inline std::size_t rss_kib(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(f, line);)
        if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
    FAIL("no VmRSS in /proc/" << pid << "/status");
    return 0;
}

// Descriptors a process has open.
inline std::size_t open_fd_count(pid_t pid) {
    auto dir = std::filesystem::path("/proc") / std::to_string(pid) / "fd";
    return std::size_t(std::distance(std::filesystem::directory_iterator(dir), {}));
}

// --- files ---------------------------------------------------------------------------------

// A temporary directory (under TEST_TMPDIR), removed with everything in it at the end.
class temp_dir {
public:
    explicit temp_dir(std::string_view prefix = "coronet_test") {
        const char* base = std::getenv("TEST_TMPDIR");
        std::string pattern =
            std::string(base ? base : "/tmp") + "/" + std::string(prefix) + ".XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = std::filesystem::canonical(pattern);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    // Writes a file (making its directories) under the directory.
    void write(const std::string& name, const std::string& text) const {
        std::filesystem::create_directories((path_ / name).parent_path());
        std::ofstream(path_ / name, std::ios::binary) << text;
    }

private:
    std::filesystem::path path_;
};

// --- sockets -------------------------------------------------------------------------------

inline sockaddr_in loopback(unsigned port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// A blocking listener on 127.0.0.1 and a free port (stored in port); the caller closes it.
inline int listen_tcp(unsigned& port, int backlog = 16) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::listen(fd, backlog) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    return fd;
}

// True once 127.0.0.1:port accepts a connection, trying for up to `timeout`.
inline bool wait_until_accepting(unsigned port, milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(port);
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok) return true;
        if (steady::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

// How a tcp_client connects.
struct client_options {
    int receive_buffer = 0;  // SO_RCVBUF in bytes before connecting (0: the default)
    milliseconds connect_timeout = std::chrono::seconds(10);
};

// A non-blocking connection to 127.0.0.1:port, driven by poll() with timeouts. What arrives
// collects in buffered(); eof() is set by the end of stream or a reset.
class tcp_client {
public:
    explicit tcp_client(unsigned port, const client_options& options = {})
        : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
        INFO("socket: " << std::strerror(errno));
        REQUIRE(fd_ >= 0);
        if (options.receive_buffer > 0)
            REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer,
                                 sizeof options.receive_buffer) == 0);
        sockaddr_in a = loopback(port);
        int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        int error = rc == 0 ? 0 : errno;
        if (error == EINPROGRESS) {
            pollfd p{fd_, POLLOUT, 0};
            int ready = ::poll(&p, 1, int(options.connect_timeout.count()));
            socklen_t len = sizeof error;
            if (ready <= 0)
                error = ETIMEDOUT;
            else
                ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
        }
        INFO("connect to 127.0.0.1:" << port << ": " << std::strerror(error));
        REQUIRE(error == 0);
    }
    tcp_client(tcp_client&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)),
          in_(std::move(o.in_)),
          eof_(o.eof_),
          received_(o.received_) {}
    tcp_client& operator=(tcp_client&& o) noexcept {
        std::swap(fd_, o.fd_);
        std::swap(in_, o.in_);
        std::swap(eof_, o.eof_);
        std::swap(received_, o.received_);
        return *this;
    }
    ~tcp_client() { close(); }

    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    // Sends up to all of data within `timeout`: the bytes sent (fewer if the peer closed or
    // stopped reading).
    std::size_t try_send(std::string_view data, milliseconds timeout = std::chrono::seconds(20)) {
        std::size_t sent = 0;
        auto deadline = steady::now() + timeout;
        while (sent < data.size()) {
            ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += std::size_t(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN) break;
            pollfd p{fd_, POLLOUT, 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) break;
        }
        return sent;
    }
    // Sends all of data within `timeout`, or fails the test.
    void send(std::string_view data, milliseconds timeout = std::chrono::seconds(20)) {
        REQUIRE(try_send(data, timeout) == data.size());
    }

    // One read into buffered(), waiting up to `timeout`: false when nothing came (a timeout, or
    // the end of the stream).
    bool read_some(milliseconds timeout) {
        if (eof_) return false;
        auto deadline = steady::now() + timeout;
        for (;;) {
            char buf[65536];
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) {
                in_.append(buf, std::size_t(n));
                received_ += std::size_t(n);
                return true;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n == 0 || errno != EAGAIN) {
                eof_ = true;  // closed (or reset)
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) return false;
        }
    }

    // Reads until buffered() holds `size` bytes, the stream ends or `timeout` passes.
    bool fill(std::size_t size, milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = steady::now() + timeout;
        while (in_.size() < size && read_some(milliseconds(ms_until(deadline)))) {
        }
        return in_.size() >= size;
    }

    // True when the peer closes (or resets) within `timeout` and sends nothing more first.
    bool closed_by_peer(milliseconds timeout) {
        std::size_t before = in_.size();
        fill(SIZE_MAX, timeout);
        return eof_ && in_.size() == before;
    }

    // Reads and drops everything until the stream ends, within `timeout`: true if it ended.
    bool reaches_end(milliseconds timeout = std::chrono::seconds(20)) {
        auto deadline = steady::now() + timeout;
        in_.clear();
        while (!eof_ && steady::now() < deadline) {
            read_some(milliseconds(ms_until(deadline)));
            in_.clear();
        }
        return eof_;
    }

    // The next line without its "\n" (or "\r\n"), waiting up to `timeout`; nullopt at the end
    // of the stream or when none came in time.
    std::optional<std::string> line(milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = steady::now() + timeout;
        for (;;) {
            if (auto nl = in_.find('\n'); nl != std::string::npos) {
                std::string l = in_.substr(0, nl);
                in_.erase(0, nl + 1);
                if (l.ends_with('\r')) l.pop_back();
                return l;
            }
            if (!read_some(milliseconds(ms_until(deadline)))) return std::nullopt;
        }
    }

    // Sends data while reading what comes back (so a large echo never deadlocks on full
    // buffers): what came back, data.size() bytes or fewer if the peer closed or `timeout` passed.
    std::string round_trip(std::string_view data, milliseconds timeout = std::chrono::seconds(20)) {
        std::size_t sent = 0, start = in_.size();
        auto deadline = steady::now() + timeout;
        while (in_.size() - start < data.size() && !eof_ && steady::now() < deadline) {
            pollfd p{fd_, short(POLLIN | (sent < data.size() ? POLLOUT : 0)), 0};
            if (::poll(&p, 1, ms_until(deadline)) <= 0) break;
            if (sent < data.size() && (p.revents & POLLOUT)) {
                ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
                if (n > 0) sent += std::size_t(n);
            }
            if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_some(milliseconds(0));
        }
        std::string back = in_.substr(start);
        in_.resize(start);
        return back;
    }

    std::string& buffered() { return in_; }
    bool eof() const { return eof_; }
    std::size_t received() const { return received_; }  // bytes read in all

private:
    int fd_;
    std::string in_;
    bool eof_ = false;
    std::size_t received_ = 0;
};

}  // namespace coronet::testing
