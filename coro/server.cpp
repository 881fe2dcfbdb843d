#include <coronet/coro/server.hpp>

#include <algorithm>
#include <cassert>
#include <exception>
#include <string>
#include <type_traits>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <coronet/coro/lingering_close.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/timer.hpp>

namespace coronet {

using namespace std::chrono_literals;

// --- connection ------------------------------------------------------------------------

connection::connection(server& s, socket sock, const channel_options& options)
    : connection(s, channel(std::move(sock), options)) {}

connection::connection(server& s, channel over) : connection(s, std::move(over), unlisted_t{}) {
    enlist();
}

connection::connection(server& s, channel over, unlisted_t) noexcept
    : registered_channel(std::move(over)), server_(&s) {}

connection::connection(connection&& o) noexcept
    : registered_channel(std::move(o.ch)), server_(o.server_) {
    assert(o.entry().id == 0);  // a listed entry's address is in the registry: it never moves
}

// Lists the connection in its server's registry (its id, from 1, says it is listed).
void connection::enlist() noexcept {
    server_->registry_.add(entry(), server_->options_.totals);
    entry().draining = server_->stopping_;
}

connection::~connection() {
    if (entry().id != 0 && !entry().orphaned)
        server_->registry_.remove(entry(), server_->options_.totals);
}

bool connection::stopping() const noexcept { return server_->stopping_; }

event::awaiter connection::stopped() noexcept { return server_->stop_.wait(); }

// --- server ----------------------------------------------------------------------------

server::server(reactor& r, server_options options, handler h)
    : reactor_(r),
      options_(std::move(options)),
      handler_(std::move(h)),
      accepting_(r),
      connections_(r),
      stop_(r) {
    // Out-of-range channel options fail here, once, not in every accepted connection's channel.
    (void)detail::channel_limits(options_.channel);
    if (options_.tls) tls_ = tls_context::server(*options_.tls);
    for (const address& at : options_.listen) {
        listeners_.push_back(socket::listen(r, at, {.reuse_port = options_.reuse_port}));
        addresses_.push_back(at.family() == AF_UNIX ? at : listeners_.back().local_address());
    }
}

// Not shut down first (the reactor is being destroyed, say): the connections are closed and
// cancelled, and forget the server, so that their frames can still be destroyed safely.
server::~server() {
    registry_.for_each([this](connection_entry& e) {
        e.orphaned = true;
        if (options_.totals) options_.totals->open.fetch_sub(1, std::memory_order_relaxed);
        e.ch().close();
    });
}

void server::start() {
    for (auto& l : listeners_)
        accepting_.spawn(accept_loop(std::move(l)), options_.name + " accept");
    listeners_.clear();
    if (options_.idle_timeout.count() > 0)
        accepting_.spawn(sweep_idle(), options_.name + " idle sweep");
}

// A burst of refusals or of accept errors ends after this long without one: at its limit a
// server lets a connection through whenever another closes, and that must not start a new
// burst (and a new log line) each time.
constexpr auto burst_quiet = 10s;

void server::reject() {
    ++rejected_;
    auto now = reactor::clock::now();
    bool new_burst = now - rejected_at_ >= burst_quiet;
    rejected_at_ = now;
    if (!new_burst) return;
    log(log_level::warning, options_.name + ": " + std::to_string(registry_.size()) +
                                " connections, the limit: closing new ones until some close");
}

// Accepts until cancelled. A failed accept (EMFILE, ENFILE: out of descriptors) leaves the
// listener readable, so back off instead of spinning, and say so once per burst: a server at
// its descriptor limit lets a connection through whenever one closes, which must not log
// each time. A peer that left before we took it is no error.
task<void> server::accept_loop(socket listener) {
    for (;;) {
        std::error_code error;
        try {
            socket s = co_await listener.accept();
            if (registry_.size() + handshakes_ >= options_.max_connections) {
                reject();  // s closes here
                continue;
            }
            // Each logs its own errors. A plain connection's record is made here and moved
            // into serve()'s frame, so that the frame kept for the connection's life holds
            // neither a spent socket (40 B) nor a spent channel and a server pointer beside
            // the connection. Started with no handle: the connection's frame is all that is
            // allocated around it.
            if (tls_)
                connections_.start(serve_tls(std::move(s)));
            else
                connections_.start(serve<child_task, connection>(connection(
                    *this, channel(std::move(s), options_.channel), connection::unlisted_t{})));
            continue;
        } catch (const std::system_error& e) {
            error = e.code();  // a catch block cannot co_await: handle it below
        }
        if (error == std::errc::operation_canceled) co_return;  // shutting down
        if (error == std::errc::connection_aborted) continue;
        auto now = reactor::clock::now();
        if (error != accept_error_ || now - accept_error_at_ >= burst_quiet) {
            log(log_level::warning,
                options_.name + ": accept: " + error.message() + " (backing off until it clears)");
            accept_error_ = error;
        }
        accept_error_at_ = now;
        bool slept = co_await sleep_for(reactor_, 50ms);
        if (!slept) co_return;  // cancelled
    }
}

// One connection: the handler, then a lingering close. An exception escaping the handler is
// logged as spawn() would, and the connection still closes gently.
namespace {

// An exception escaped a handler (or a handshake): logged as spawn() logs one, with the same
// levels, naming the server's connection (a plain function, so that its strings take no room in
// every connection's coroutine frame).
void log_escape(const std::exception_ptr& error, const std::string& name) {
    detail::log_uncaptured(error, name + " connection");
}

const std::string orphan_name = "server";

// A task<void> that is its own awaiter, for a named variable: `co_await step` keeps nothing in
// the awaiting frame beyond the variable, and one variable serves several co_awaits in turn.
struct awaited_task {
    task<void> t;
    bool await_ready() const noexcept { return t.done(); }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        return task<void>::awaiter{t.handle()}.await_suspend(h);
    }
    void await_resume() { task<void>::awaiter{t.handle()}.await_resume(); }
};

}  // namespace

// The TLS handshake of a new connection, in a frame of its own that is gone once it ends
// (its locals would otherwise stay in every connection's frame for the connection's life).
// An empty channel: it failed, and was logged.
task<channel> server::handshake(socket s) {
    ++handshakes_;  // a connection in its handshake counts against the limit
    std::exception_ptr failed;
    channel over;
    tls_handshake_options options{.timeout = options_.handshake_timeout};  // named: GCC 12
    try {
        over = channel(co_await tls_accept(std::move(s), *tls_, options), options_.channel);
    } catch (...) {
        failed = std::current_exception();
    }
    --handshakes_;
    if (failed) log_escape(failed, options_.name);
    co_return over;
}

// serve() is static and takes the connection by value, so that its frame (kept for the
// connection's life) holds the connection alone: no `this` (the connection names its server),
// no spent channel parameter. Nothing here may bind the server to a local that lives across a
// co_await (it would take a frame slot): each use goes through c.owner().
template <class Coroutine, class Connection>
Coroutine server::serve(Connection c) {
    if constexpr (!std::is_reference_v<Connection>) c.enlist();
    // The handler's task, then the lingering close's, in one variable awaited as it is: the
    // frame kept for the connection's life holds one handle for both, where a co_await of each
    // call would keep each task, a copy of its handle and the close's arguments.
    awaited_task step;
    try {
        step.t = c.owner().handler_(c);
        co_await step;
    } catch (...) {  // logged here (no co_await in it): no exception_ptr in every frame
        log_escape(std::current_exception(),
                   c.entry().orphaned ? orphan_name : c.owner().options_.name);
    }
    step.t = {};  // the handler's frame goes first, as it did when its task was a temporary
    // Nothing after the handler touches a server that is gone (entry().orphaned): it closed the
    // channel, so the lingering close returns at once whatever its linger.
    step.t = lingering_close(c.ch, c.entry().orphaned ? 0ms : c.owner().options_.linger,
                             c.entry().at_once ? peer_input::ended : peer_input::unknown);
    co_await step;
}

// A TLS connection: the handshake, then serve(). Its own frame, so that a plain connection's
// frame holds neither the socket nor the handshake's task.
child_task server::serve_tls(socket s) {
    connection c(*this, co_await handshake(std::move(s)), connection::unlisted_t{});
    if (!c.ch) co_return;
    c.enlist();
    co_await serve<task<void>, connection&>(c);
}

// Closes the connections that moved no byte for idle_timeout. A sweep a few times per
// timeout over the registry: the reads and writes themselves do nothing for it.
task<void> server::sweep_idle() {
    auto every = std::clamp<reactor::clock::duration>(options_.idle_timeout / 4, 10ms, 1s);
    // The entries keep milliseconds modulo 2^32 (idle_stamp), exact for 49 days: a longer
    // timeout counts as 24 days, the sweep's idle times staying well within that.
    auto limit = static_cast<std::uint32_t>(
        std::min<std::chrono::milliseconds::rep>(options_.idle_timeout.count(), 1LL << 31));
    for (;;) {
        bool slept = co_await sleep_for(reactor_, every);
        if (!slept) co_return;
        std::uint32_t now = idle_stamp(reactor::clock::now());
        registry_.for_each([&](connection_entry& e) {
            auto bytes = static_cast<std::uint32_t>(e.ch().received() + e.ch().sent().bytes);
            if (bytes != e.seen_bytes) {
                e.seen_bytes = bytes;
                e.seen_active = now;
            } else if (static_cast<std::uint32_t>(now - e.seen_active) >= limit &&
                       !e.ch().closed()) {
                log(log_level::debug, options_.name + ": connection " + std::to_string(e.id) +
                                          " idle too long, closing it");
                e.ch().close();  // its pending read sees end of stream
            }
        });
    }
}

task<void> server::shutdown() {
    if (stopping_) {
        co_await connections_.wait();
        co_return;
    }
    stopping_ = true;
    co_await accepting_.close();  // the listeners close with their accept loops
    for (const address& at : addresses_)
        if (at.family() == AF_UNIX) ::unlink(at.to_string().substr(5).c_str());  // "unix:" ...
    // Tell the handlers: the flag, the event, and reads that end once what has arrived is read.
    registry_.for_each([](connection_entry& e) {
        e.draining = true;
        if (!e.ch().closed()) ::shutdown(e.ch().sock().native_handle(), SHUT_RD);
    });
    stop_.notify_all();
    if (connections_.empty()) co_return;
    bool in_time = false;
    try {
        co_await with_timeout(reactor_, connections_.wait(), options_.drain_timeout);
        in_time = true;
    } catch (const std::system_error&) {
    }
    if (in_time) co_return;
    log(log_level::warning, options_.name + ": closing " + std::to_string(registry_.size()) +
                                " connections still open after the drain timeout");
    registry_.for_each([](connection_entry& e) { e.ch().close(); });
    co_await connections_.close();
}

}  // namespace coronet
