// tests/coro/channel_poison_test.cpp: a view a read returned, used after the next read, is an
// AddressSanitizer report (lib/poison.hpp), on every backend.
//
// A read's view stays valid until the next read on the channel. Past that the bytes may sit in a
// provided block already back in the reactor's pool (soon another connection's data), or be
// bytes the next read has consumed. Sanitizer builds poison both; here a child process keeps a
// view too long and must die with AddressSanitizer's "use-after-poison" report. Without
// AddressSanitizer there is nothing to show (the test says so and passes).
#include <coronet/coro/channel.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <coronet/coro/task.hpp>
#include <coronet/lib/poison.hpp>
#include <coronet/lib/socket.hpp>

#include "tests/support/backends.hpp"

using namespace coronet;

namespace {

enum class kept { block_back_in_pool, bytes_consumed };

// Reads a line, keeps its view, starts the next read; the view is now expired.
task<void> keep_a_view(channel& ch, kept how, std::string_view& view) {
    auto first = co_await ch.read_until("\n");
    view = *first;
    auto second = co_await ch.read_until("\n");  // block_back_in_pool: waits, holding no block
    (void)second;
}

// The child: one channel over a socket pair, a view kept too long, then a read through it.
// Returns only when AddressSanitizer did not stop it.
[[noreturn]] void child(backend_kind kind, kept how) {
    reactor r{{.backend = kind}};
    auto [mine, peer] = coronet::socket::pair(r);
    // (AddressSanitizer poisons in granules of 8 bytes: a line of fewer may stay readable.)
    std::string input = "the first line, kept too long\n";
    if (how == kept::bytes_consumed) input += "second\n";
    if (::write(peer.native_handle(), input.data(), input.size()) != ssize_t(input.size()))
        _exit(3);
    channel ch(std::move(mine));
    std::string_view view;
    auto reader = keep_a_view(ch, how, view);
    auto h = reader.handle();
    r.post(h);
    ::alarm(20);  // never hang the test: SIGALRM ends a child that got stuck
    r.run_for(std::chrono::milliseconds(50));  // the second read has begun (and maybe waits)
    if (view.empty()) _exit(4);
    std::signal(SIGABRT, SIG_DFL);  // AddressSanitizer's abort, not the test framework's report
    volatile char c = view[0];      // expired: AddressSanitizer must report this
    (void)c;
    _exit(0);
}

// Runs child() in a child process; its exit status and what it wrote on stderr.
std::pair<int, std::string> in_child(backend_kind kind, kept how) {
    int err[2];
    REQUIRE(::pipe(err) == 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);  // the parent's test report is the parent's alone
        ::dup2(err[1], 2);
        ::close(err[0]);
        child(kind, how);
    }
    ::close(err[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;)
        text.append(buf, std::size_t(n));
    ::close(err[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {status, text};
}

}  // namespace

TEST_CASE("channel: a view used after the next read is an AddressSanitizer report",
          "[channel][asan]") {
    CORONET_FOR_EACH_BACKEND(kind);
    if constexpr (!detail::poisoning) {
        WARN(
            "built without AddressSanitizer: nothing is poisoned (make test runs it under "
            "--config=asan)");
        return;
    } else {
        auto how = GENERATE(kept::block_back_in_pool, kept::bytes_consumed);
        INFO((how == kept::block_back_in_pool ? "a provided block back in the pool"
                                              : "bytes the next read consumed"));
        auto [status, text] = in_child(kind, how);
        INFO("child status " << status << ", stderr:\n" << text);
        CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
        CHECK(text.find("use-after-poison") != std::string::npos);
    }
}
