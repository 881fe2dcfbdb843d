#include <coronet/lib/reactor.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <unistd.h>

#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>

#include "tests/support/backends.hpp"

using coronet::address;
using coronet::backend_kind;
using coronet::reactor;
using coronet::task;
using namespace std::chrono_literals;

namespace {

// Sets (or unsets, with nullopt) CORONET_BACKEND for one test, and puts it back.
class backend_env {
public:
    explicit backend_env(std::optional<std::string> value) {
        if (const char* old = std::getenv("CORONET_BACKEND")) saved_ = old;
        if (value)
            ::setenv("CORONET_BACKEND", value->c_str(), 1);
        else
            ::unsetenv("CORONET_BACKEND");
    }
    ~backend_env() {
        if (saved_)
            ::setenv("CORONET_BACKEND", saved_->c_str(), 1);
        else
            ::unsetenv("CORONET_BACKEND");
    }
    backend_env(const backend_env&) = delete;
    backend_env& operator=(const backend_env&) = delete;

private:
    std::optional<std::string> saved_;
};

// Sends what is written to stderr (fd 2) into a temporary file until text() is called.
class stderr_capture {
public:
    stderr_capture() : file_(std::tmpfile()), saved_(::dup(2)) {
        std::fflush(stderr);
        ::dup2(::fileno(file_), 2);
    }
    ~stderr_capture() {
        restore();
        std::fclose(file_);
    }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;

    // Stops capturing and returns everything written meanwhile.
    std::string text() {
        restore();
        std::string out;
        std::rewind(file_);
        char buf[512];
        while (std::size_t n = std::fread(buf, 1, sizeof buf, file_))
            out.append(buf, n);
        return out;
    }

private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    std::FILE* file_;
    int saved_;
};

// Sets the process log level for one test, and puts it back.
class log_level_guard {
public:
    explicit log_level_guard(coronet::log_level level) : saved_(coronet::current_log_level()) {
        coronet::set_log_level(level);
    }
    ~log_level_guard() { coronet::set_log_level(saved_); }

private:
    coronet::log_level saved_;
};

task<int> forty_two() { co_return 42; }

task<std::string> text_after_sleep(reactor& r) {
    co_await coronet::sleep_for(r, 1ms);
    co_return "slept";
}

task<std::unique_ptr<int>> move_only_after_sleep(reactor& r) {
    co_await coronet::sleep_for(r, 1ms);
    co_return std::make_unique<int>(7);
}

task<void> set_after_sleep(reactor& r, bool* flag) {
    co_await coronet::sleep_for(r, 1ms);
    *flag = true;
}

task<int> throws_after_sleep(reactor& r) {
    co_await coronet::sleep_for(r, 1ms);
    throw std::runtime_error("thrown after a sleep");
}

task<void> sleep_long(reactor& r) { (void)co_await coronet::sleep_for(r, 1h); }

task<void> announce_then_sleep(reactor& r, std::atomic<bool>* running) {
    running->store(true);
    (void)co_await coronet::sleep_for(r, 1h);
}

// True when thread tid of this process is asleep ('S' in /proc/self/task/TID/stat).
bool thread_sleeping(pid_t tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto paren = stat.rfind(')');  // the state follows the command name's closing parenthesis
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'S';
}

task<void> stop_soon(reactor& r) {
    co_await coronet::sleep_for(r, 5ms);
    r.stop();
}

task<std::pair<coronet::socket, coronet::socket>> connect_and_accept(reactor& r,
                                                                     coronet::socket* listener) {
    coronet::socket client = co_await coronet::socket::connect(r, listener->local_address());
    coronet::socket server = co_await listener->accept();
    co_return std::pair<coronet::socket, coronet::socket>(std::move(client), std::move(server));
}

}  // namespace

TEST_CASE("reactor: the requested backend is the one in use", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    REQUIRE(r.backend_name() == coronet::to_string(kind));
    REQUIRE(r.kind() == kind);
}

TEST_CASE("reactor: automatic choice prefers io_uring and then epoll", "[reactor]") {
    backend_env env(std::nullopt);
    reactor r;
    if (coronet::backend_available(backend_kind::io_uring)) {
        REQUIRE(r.backend_name() == "io_uring");
    } else {
        WARN("io_uring unavailable here");
        REQUIRE(r.backend_name() == "epoll");
    }
}

TEST_CASE("reactor: CORONET_BACKEND overrides the automatic choice", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    backend_env env(std::string(coronet::to_string(kind)));
    reactor r;
    REQUIRE(r.backend_name() == coronet::to_string(kind));
}

TEST_CASE("reactor: CORONET_BACKEND accepts uring as a short name", "[reactor]") {
    if (!coronet::backend_available(backend_kind::io_uring)) {
        WARN("io_uring unavailable here, skipped");
        return;
    }
    backend_env env(std::string("uring"));
    reactor r;
    REQUIRE(r.backend_name() == "io_uring");
}

TEST_CASE("reactor: an explicit backend option wins over CORONET_BACKEND", "[reactor]") {
    backend_env env(std::string("select"));
    reactor r{{.backend = backend_kind::epoll}};
    REQUIRE(r.backend_name() == "epoll");
}

TEST_CASE("reactor: a bad CORONET_BACKEND value is a clear error", "[reactor]") {
    backend_env env(std::string("kqueue"));
    try {
        reactor r;
        FAIL("reactor built with CORONET_BACKEND=kqueue, backend " << r.backend_name());
    } catch (const std::system_error& e) {
        REQUIRE(e.code() == coronet::errc::backend_unavailable);
        REQUIRE_THAT(e.what(), Catch::Contains("CORONET_BACKEND=kqueue"));
        REQUIRE_THAT(e.what(), Catch::Contains("io_uring, epoll or select"));
    }
}

TEST_CASE("reactor: a failed io_uring setup falls back to epoll with a log line", "[reactor]") {
    backend_env env(std::nullopt);
    log_level_guard level(coronet::log_level::warning);
    stderr_capture capture;
    std::optional<reactor> r;
    r.emplace(coronet::reactor_options{.simulate_uring_failure = true});
    std::string log = capture.text();
    INFO("stderr: " << log);
    REQUIRE(r->backend_name() == "epoll");
    REQUIRE(r->kind() == backend_kind::epoll);
    REQUIRE_THAT(log, Catch::Contains("io_uring unavailable"));
    REQUIRE_THAT(log, Catch::Contains("falling back to epoll"));
}

TEST_CASE("reactor: CORONET_SIMULATE_URING_FAILURE=1 makes automatic selection fall back",
          "[reactor]") {
    backend_env env(std::nullopt);
    log_level_guard level(coronet::log_level::warning);
    ::setenv("CORONET_SIMULATE_URING_FAILURE", "1", 1);
    std::optional<reactor> r;
    std::string log;
    {
        stderr_capture capture;
        r.emplace();
        log = capture.text();
    }
    INFO("stderr: " << log);
    CHECK(r->kind() == backend_kind::epoll);
    CHECK_THAT(log, Catch::Contains("io_uring unavailable (io_uring_setup (simulated failure)"));
    CHECK_THAT(log, Catch::Contains("falling back to epoll"));
    // A backend asked for by name is not affected, and "0" turns the injection off.
    if (coronet::backend_available(backend_kind::io_uring)) {
        r.emplace(coronet::reactor_options{.backend = backend_kind::io_uring});
        CHECK(r->kind() == backend_kind::io_uring);
        ::setenv("CORONET_SIMULATE_URING_FAILURE", "0", 1);
        r.emplace();
        CHECK(r->kind() == backend_kind::io_uring);
    }
    ::unsetenv("CORONET_SIMULATE_URING_FAILURE");
}

TEST_CASE("reactor: forcing io_uring when its setup fails throws system_error", "[reactor]") {
    try {
        reactor r{{.backend = backend_kind::io_uring, .simulate_uring_failure = true}};
        FAIL("reactor built with backend " << r.backend_name());
    } catch (const std::system_error& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("io_uring"));
    }
}

TEST_CASE("reactor: run(task) returns the task's value", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    SECTION("finished without suspending") { REQUIRE(r.run(forty_two()) == 42); }
    SECTION("finished after a sleep") { REQUIRE(r.run(text_after_sleep(r)) == "slept"); }
    SECTION("a move-only value") {
        std::unique_ptr<int> p = r.run(move_only_after_sleep(r));
        REQUIRE(p);
        REQUIRE(*p == 7);
    }
    SECTION("a void task") {
        bool flag = false;
        r.run(set_after_sleep(r, &flag));
        REQUIRE(flag);
    }
    SECTION("an exception is rethrown") {
        REQUIRE_THROWS_WITH(r.run(throws_after_sleep(r)), "thrown after a sleep");
    }
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("reactor: run(task) interrupted by stop() says the task did not finish", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::spawn(r, stop_soon(r));
    REQUIRE_THROWS_AS(r.run(sleep_long(r)), std::runtime_error);
    // The interrupted task's frame and its timer are gone with run()'s driver.
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("reactor: run_for returns when its time is up even with work pending", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::spawn(r, sleep_long(r));
    auto start = reactor::clock::now();
    r.run_for(50ms);
    auto elapsed = reactor::clock::now() - start;
    REQUIRE(elapsed >= 50ms);  // timers never fire early
    REQUIRE(elapsed < 30s);    // and not after the hour-long sleep
    REQUIRE(r.task_count() == 1);
    REQUIRE(r.pending_count() == 1);  // the sleep, not run_for's own deadline
}

TEST_CASE("reactor: run_for and run return at once when there is nothing to wait for",
          "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    auto start = reactor::clock::now();
    r.run_for(1h);
    r.run();
    REQUIRE(reactor::clock::now() - start < 30s);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("reactor: run() returns when the last spawned task finishes", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    bool a = false, b = false;
    coronet::spawn(r, set_after_sleep(r, &a));
    coronet::spawn(r, set_after_sleep(r, &b));
    REQUIRE(r.task_count() == 2);
    r.run();
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(r.task_count() == 0);
    REQUIRE(r.pending_count() == 0);
}

TEST_CASE("reactor: stop() from another thread ends run()", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    std::atomic<bool> running{false};
    coronet::spawn(r, announce_then_sleep(r, &running));
    pid_t loop_tid = ::gettid();  // r.run() below runs on this thread
    std::thread stopper([&] {
        while (!running.load())
            std::this_thread::sleep_for(1ms);
        // The loop's thread blocks in the backend's wait: a poll (5 s at most) on the
        // thread's state in /proc, where no event can tell a thread that has gone to sleep.
        for (int i = 0; i < 5000 && !thread_sleeping(loop_tid); ++i)
            std::this_thread::sleep_for(1ms);
        r.stop();
    });
    auto start = reactor::clock::now();
    r.run();  // would take an hour without the stop
    auto elapsed = reactor::clock::now() - start;
    stopper.join();
    REQUIRE(r.stopped());
    REQUIRE(elapsed < 60s);
    REQUIRE(r.task_count() == 1);  // still suspended; the reactor's destructor frees it
    r.restart();
    REQUIRE_FALSE(r.stopped());
}

TEST_CASE("reactor: channel_count rises and falls with sockets", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    REQUIRE(r.channel_count() == 0);
    {
        coronet::socket listener = coronet::socket::listen(r, address::parse("127.0.0.1:0"));
        REQUIRE(r.channel_count() == 1);
        auto [client, server] = r.run(connect_and_accept(r, &listener));
        REQUIRE(r.channel_count() == 3);
        client.close();
        REQUIRE(r.channel_count() == 2);
        client.close();  // idempotent
        REQUIRE(r.channel_count() == 2);
        coronet::socket moved = std::move(server);  // a move hands over the registration
        REQUIRE(r.channel_count() == 2);
        {
            auto [a, b] = coronet::socket::pair(r);
            REQUIRE(r.channel_count() == 4);
        }
        REQUIRE(r.channel_count() == 2);
    }
    REQUIRE(r.channel_count() == 0);
}

TEST_CASE("reactor: a stop() that arrives before run() is not lost", "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    reactor r{{.backend = kind}};
    coronet::spawn(r, sleep_long(r));
    r.stop();  // e.g. SIGTERM delivered while the server was still starting
    auto start = reactor::clock::now();
    r.run();  // returns at once: the stop is kept until restart()
    REQUIRE(reactor::clock::now() - start < 30s);
    REQUIRE(r.stopped());
    REQUIRE(r.task_count() == 1);
}

namespace {

struct counted_op : coronet::operation {
    int calls = 0;
    int result_seen = -1;
};

}  // namespace

TEST_CASE("reactor: a posted operation is called back on a later turn; abandon withdraws it",
          "[reactor]") {
    CORONET_FOR_EACH_BACKEND(kind);
    coronet::reactor r{{.backend = kind}};
    counted_op a, b;
    auto on_done = [](coronet::operation& op) {
        auto& c = static_cast<counted_op&>(op);
        ++c.calls;
        c.result_seen = op.result;
    };
    a.set_on_done(on_done);
    b.set_on_done(on_done);
    a.result = -5;  // post() sets 0
    r.post(a);
    r.post(b);
    CHECK(a.calls == 0);  // not from inside post()
    r.abandon(b);         // withdrawn before its turn: never called
    r.run_once();
    CHECK(a.calls == 1);
    CHECK(a.result_seen == 0);
    CHECK(b.calls == 0);
    r.run();  // nothing pending any more: returns at once
    CHECK(a.calls == 1);
    CHECK(b.calls == 0);
}
