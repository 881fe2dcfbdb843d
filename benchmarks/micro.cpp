// micro: Google Benchmark cells for coronet's hot paths, one process, no load tool.
//
//   bazel run --config=opt //benchmarks:micro                  # all of them
//   bazel run --config=opt //benchmarks:micro -- --benchmark_filter=scan
//
// - scan_*: find_terminator (coro/scan.hpp) against glibc memmem for a 2-byte
//   "\r\n", a 4-byte "\r\n\r\n" and a 16-byte terminator placed at the end of a
//   4 KiB and a 64 KiB input that holds no '\r' before it (the whole input is
//   scanned), and over 64 pipelined HTTP request heads, each found in turn (the
//   short-line case a protocol server lives in). Bytes/s = input scanned.
// - task_create_resume: create a task<int> that finishes at once and await it
//   from a running task (frame from the per-thread pool, symmetric transfer).
// - channel_push_flush: a channel over a socketpair; 64 pushes of a 40-byte
//   response, then flush() (the producer fifo gathered into vectored sends),
//   the peer end drained with recv. items/s = pushes.
// - channel_read_until: 64 pipelined request heads sent in one write; the
//   channel's read_until("\r\n\r\n") returns them one by one (one receive,
//   then answers from the buffer). items/s = requests.
// The socket cells run on the reactor's default backend (CORONET_BACKEND picks
// another).
#include <benchmark/benchmark.h>
#include <string.h>  // memmem
#include <sys/socket.h>

#include <coronet/coronet.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view k_terms[] = {"\r\n", "\r\n\r\n", "--boundary-0123\n"};
constexpr std::string_view k_request =
    "GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: micro\r\nAccept: */*\r\n\r\n";
constexpr int k_pipeline = 64;

// size bytes of lowercase text (no '\r'), ending with term.
std::string haystack(std::size_t size, std::string_view term) {
    std::string s(size - term.size(), 'a');
    for (std::size_t i = 0; i < s.size(); ++i)
        s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
    s += term;
    return s;
}

std::size_t memmem_find(std::string_view h, std::string_view t) {
    const void* hit = ::memmem(h.data(), h.size(), t.data(), t.size());
    return hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - h.data())
               : std::string_view::npos;
}

template <std::size_t (*Find)(std::string_view, std::string_view)>
void scan_end(benchmark::State& state) {
    const std::string_view term = k_terms[state.range(0)];
    const std::string h = haystack(static_cast<std::size_t>(state.range(1)), term);
    for (auto _ : state) {
        std::size_t at = Find(h, term);
        benchmark::DoNotOptimize(at);
        if (at != h.size() - term.size()) state.SkipWithError("terminator not found at the end");
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(1));
    state.SetLabel("term " + std::to_string(term.size()) + " B");
}

std::size_t coronet_find(std::string_view h, std::string_view t) {
    return coronet::find_terminator(h, t);
}

void scan_find_terminator(benchmark::State& s) { scan_end<coronet_find>(s); }
void scan_memmem(benchmark::State& s) { scan_end<memmem_find>(s); }

// Every "\r\n" (range 0) or "\r\n\r\n" (range 1) of 64 pipelined request heads, in turn.
template <std::size_t (*Find)(std::string_view, std::string_view)>
void scan_pipelined(benchmark::State& state) {
    const std::string_view term = k_terms[state.range(0)];
    std::string h;
    for (int i = 0; i < k_pipeline; ++i)
        h += k_request;
    const std::size_t per_head = state.range(0) == 0 ? 5 : 1;
    for (auto _ : state) {
        std::size_t pos = 0, found = 0;
        for (;;) {
            std::size_t at = Find(std::string_view(h).substr(pos), term);
            if (at == std::string_view::npos) break;
            pos += at + term.size();
            ++found;
        }
        benchmark::DoNotOptimize(found);
        if (found != per_head * k_pipeline) state.SkipWithError("wrong number of terminators");
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * h.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_head * k_pipeline));
    state.SetLabel("term " + std::to_string(term.size()) + " B, 64 heads");
}

void scan_pipelined_find_terminator(benchmark::State& s) { scan_pipelined<coronet_find>(s); }
void scan_pipelined_memmem(benchmark::State& s) { scan_pipelined<memmem_find>(s); }

// ---- tasks ------------------------------------------------------------------

coronet::task<int> leaf(int x) { co_return x + 1; }

coronet::task<> create_resume_loop(benchmark::State* state) {
    int v = 0;
    for (auto _ : *state) {
        int r = co_await leaf(v);
        v = r;
        benchmark::DoNotOptimize(v);
    }
}

void task_create_resume(benchmark::State& state) {
    coronet::reactor r;
    r.run(create_resume_loop(&state));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.SetLabel(std::string(r.backend_name()));
}

// ---- channel ----------------------------------------------------------------

// Reads whatever the peer end holds now, without blocking.
std::size_t drain(int fd) {
    char buf[64 * 1024];
    std::size_t total = 0;
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            total += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return total;
    }
}

coronet::task<> push_flush_loop(benchmark::State* state, coronet::channel ch,
                                coronet::socket peer) {
    constexpr std::string_view response = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
    for (auto _ : *state) {
        for (int i = 0; i < k_pipeline; ++i)
            ch.push(response);
        co_await ch.flush();
        std::size_t n = drain(peer.native_handle());
        if (n != response.size() * k_pipeline) {
            // A flush hands everything to the kernel; a socketpair delivers it at once.
            state->SkipWithError("the peer did not receive every pushed byte");
            break;
        }
    }
}

void channel_push_flush(benchmark::State& state) {
    coronet::reactor r;
    auto [a, b] = coronet::socket::pair(r);
    r.run(push_flush_loop(&state, coronet::channel(std::move(a)), std::move(b)));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_pipeline);
    state.SetLabel(std::string(r.backend_name()) + ", 64 x 40 B per flush");
}

coronet::task<> read_until_loop(benchmark::State* state, coronet::channel ch,
                                coronet::socket peer) {
    std::string burst;
    for (int i = 0; i < k_pipeline; ++i)
        burst += k_request;
    for (auto _ : *state) {
        if (::send(peer.native_handle(), burst.data(), burst.size(), 0) !=
            static_cast<ssize_t>(burst.size())) {
            state->SkipWithError("send to the socketpair failed");
            break;
        }
        for (int i = 0; i < k_pipeline; ++i) {
            auto head = co_await ch.read_until("\r\n\r\n");
            if (!head || head->size() != k_request.size() - 4) {
                state->SkipWithError("read_until returned the wrong head");
                co_return;
            }
            benchmark::DoNotOptimize(head->data());
        }
    }
}

void channel_read_until(benchmark::State& state) {
    coronet::reactor r;
    auto [a, b] = coronet::socket::pair(r);
    r.run(read_until_loop(&state, coronet::channel(std::move(a)), std::move(b)));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_pipeline);
    state.SetLabel(std::string(r.backend_name()) + ", 64 heads per receive");
}

// Terminator index (k_terms) x input size.
void scan_args(benchmark::internal::Benchmark* b) {
    for (int t = 0; t < 3; ++t)
        for (int size : {4 * 1024, 64 * 1024})
            b->Args({t, size});
}

}  // namespace

BENCHMARK(scan_find_terminator)->Apply(scan_args);
BENCHMARK(scan_memmem)->Apply(scan_args);
BENCHMARK(scan_pipelined_find_terminator)->Arg(0)->Arg(1);
BENCHMARK(scan_pipelined_memmem)->Arg(0)->Arg(1);
BENCHMARK(task_create_resume);
BENCHMARK(channel_push_flush);
BENCHMARK(channel_read_until);

BENCHMARK_MAIN();
