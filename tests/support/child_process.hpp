#pragma once
// Test support: run a program as a child process the way a user would, with every wait bounded.
//
// `child` starts a binary (argv[0] a full path; `runfile` finds one in the Bazel runfiles, `tool`
// on PATH) with stdout and stderr on pipes and stdin from /dev/null, optionally with more
// environment and a lower RLIMIT_NOFILE set in the child before exec. It reads its output while
// it waits, signals it by PID, and kills and reaps it if a test leaves it running. Only children
// started here are signalled. A setup step that fails (pipe, fork, a missing tool) throws
// std::system_error or std::runtime_error naming it, which fails the test case that asked.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/types.h>

namespace coronet::testing {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// Milliseconds left until deadline (0 when past), for poll().
int ms_until(steady::time_point deadline);

// "exited 0", "killed by SIGABRT", "still running" (-1), ... for failure messages.
std::string describe(int status);

// True when a wait status says the process exited with code.
bool exited_with(int status, int code);

// How often what occurs in text.
std::size_t count(std::string_view text, std::string_view what);

// A file of this workspace in the test's runfiles tree ("examples/http_server").
std::string runfile(const std::string& path);

// The full path of a program on PATH (or in the usual places); throws, naming `how_to_get`,
// when it is missing.
std::string tool(const std::string& name, std::string_view how_to_get);

// How a child starts.
struct child_options {
    std::vector<std::string> env{};  // "NAME=value" replaces an inherited NAME; "NAME" removes it
    bool discard_stderr = false;     // stderr to /dev/null instead of a pipe
    rlim_t max_files = 0;            // RLIMIT_NOFILE for the child (0: inherited)
};

// A child process with stdout and stderr on pipes; killed and reaped if a test leaves it.
class child {
public:
    explicit child(std::vector<std::string> argv, const child_options& options = {});
    ~child();
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }
    // Sends sig to the child; throws if it has been reaped or kill() fails.
    void signal(int sig) const;

    // Waits up to `timeout` for the child to exit, reading its output meanwhile: its wait
    // status, or -1 while it still runs.
    int wait_exit(milliseconds timeout);
    // SIGTERM, up to `grace` to exit, then SIGKILL: the wait status.
    int stop(milliseconds grace = std::chrono::seconds(10));

    // Reads both pipes until they end (the child and any it started have exited), at most
    // `timeout`: stdout and stderr.
    std::pair<std::string, std::string> output(milliseconds timeout = std::chrono::seconds(10));
    // The first line of stdout (without "\n"), waiting up to `timeout`.
    std::string first_line(milliseconds timeout = std::chrono::seconds(10));
    // True once stderr holds text, waiting up to `timeout`.
    bool wait_for_err(std::string_view text, milliseconds timeout);

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
    void pump(int timeout_ms);

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
result run(std::vector<std::string> argv, milliseconds timeout = std::chrono::seconds(20),
           const child_options& options = {});

// The port in a start line, the digits right after `marker` ("listening on 127.0.0.1:");
// throws, quoting the line, when the marker is not in it.
unsigned port_after(const std::string& line, std::string_view marker);

// A temporary directory (under TEST_TMPDIR), removed with everything in it at the end.
class temp_dir {
public:
    explicit temp_dir(std::string_view prefix = "coronet_test");
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    // Writes a file (making its directories) under the directory.
    void write(const std::string& name, const std::string& text) const;

private:
    std::filesystem::path path_;
};

}  // namespace coronet::testing
