#include "tests/support/child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace coronet::testing {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

bool read_into(int fd, std::string& into) {
    char buf[16384];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) into.append(buf, std::size_t(n));
    return n > 0 || (n < 0 && errno == EINTR);
}

}  // namespace

int ms_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
    return left > 0 ? int(std::min<long long>(left, INT_MAX)) : 0;
}

std::string describe(int status) {
    if (status == -1) return "still running";
    if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + sigabbrev_np(WTERMSIG(status));
    return "status " + std::to_string(status);
}

bool exited_with(int status, int code) {
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

std::size_t count(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

std::string runfile(const std::string& path) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    if (srcdir && workspace) return std::string(srcdir) + "/" + workspace + "/" + path;
    return path;
}

std::string tool(const std::string& name, std::string_view how_to_get) {
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    dirs += ":/usr/bin:/bin:/usr/local/bin";
    for (std::size_t at = 0; at <= dirs.size();) {
        std::size_t end = std::min(dirs.find(':', at), dirs.size());
        std::string candidate = dirs.substr(at, end - at) + "/" + name;
        if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        at = end + 1;
    }
    throw std::runtime_error(name + " is not installed: " + std::string(how_to_get));
}

// --- child ---------------------------------------------------------------------------------

child::child(std::vector<std::string> argv, const child_options& options) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("child: pipe2");
    if (::pipe2(err, O_CLOEXEC) != 0) {
        int saved = errno;
        ::close(out[0]);
        ::close(out[1]);
        errno = saved;
        throw_errno("child: pipe2");
    }
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
        bool replaced = std::any_of(names.begin(), names.end(),
                                    [&](const std::string& name) { return var.starts_with(name); });
        if (!replaced) envp.push_back(*e);
    }
    envp.push_back(nullptr);
    rlimit files{options.max_files, options.max_files};
    pid_ = ::fork();
    if (pid_ < 0) {
        int saved = errno;
        for (int fd : {out[0], out[1], err[0], err[1]})
            ::close(fd);
        errno = saved;
        throw_errno("child: fork " + argv.at(0));
    }
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

child::~child() {
    if (pid_ > 0) {  // a test failed half-way: do not leave our child behind
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
    ::close(err_);
}

void child::signal(int sig) const {
    if (pid_ <= 0) throw std::logic_error("child::signal: the child has already been reaped");
    if (::kill(pid_, sig) != 0) throw_errno("child::signal: kill " + std::to_string(pid_));
}

int child::wait_exit(milliseconds timeout) {
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

int child::stop(milliseconds grace) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    if (int status = wait_exit(grace); status != -1) return status;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    pump(0);
    return status_;
}

std::pair<std::string, std::string> child::output(milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    while ((out_open_ || err_open_) && steady::now() < deadline)
        pump(ms_until(deadline));
    return {out_text_, err_text_};
}

std::string child::first_line(milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    while (out_text_.find('\n') == std::string::npos && out_open_ && steady::now() < deadline)
        pump(ms_until(deadline));
    return out_text_.substr(0, out_text_.find('\n'));
}

bool child::wait_for_err(std::string_view text, milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    while (err_text_.find(text) == std::string::npos && steady::now() < deadline)
        pump(std::min(ms_until(deadline), 50));
    return err_text_.find(text) != std::string::npos;
}

void child::pump(int timeout_ms) {
    for (;;) {
        pollfd p[2] = {{out_open_ ? out_ : -1, POLLIN, 0}, {err_open_ ? err_ : -1, POLLIN, 0}};
        if ((!out_open_ && !err_open_) || ::poll(p, 2, timeout_ms) <= 0) return;
        timeout_ms = 0;
        if (p[0].revents) out_open_ = read_into(out_, out_text_);
        if (p[1].revents) err_open_ = read_into(err_, err_text_);
    }
}

result run(std::vector<std::string> argv, milliseconds timeout, const child_options& options) {
    child c(std::move(argv), options);
    auto deadline = steady::now() + timeout;
    auto [out, err] = c.output(timeout);
    int status = c.wait_exit(milliseconds(ms_until(deadline)));
    if (status == -1) c.stop(milliseconds(0));
    return {status, c.out(), c.err()};
}

unsigned port_after(const std::string& line, std::string_view marker) {
    auto at = line.find(marker);
    if (at == std::string::npos)
        throw std::runtime_error("no \"" + std::string(marker) + "\" in the start line \"" + line +
                                 "\"");
    return unsigned(std::stoul(line.substr(at + marker.size())));
}

// --- temp_dir ------------------------------------------------------------------------------

temp_dir::temp_dir(std::string_view prefix) {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base ? base : "/tmp") + "/" + std::string(prefix) + ".XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw_errno("temp_dir: mkdtemp " + pattern);
    path_ = std::filesystem::canonical(pattern);
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void temp_dir::write(const std::string& name, const std::string& text) const {
    std::filesystem::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name, std::ios::binary) << text;
}

}  // namespace coronet::testing
