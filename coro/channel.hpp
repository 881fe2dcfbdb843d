#pragma once
// channel: Medusa's async_chat as awaitables — terminators in, a producer fifo out.
//
// Input: read_until(term) returns the bytes before the terminator (consuming
// it), read_exactly(n) returns n bytes, read_some(max) whatever is buffered or
// the next receive. Whatever arrived beyond a terminator stays buffered for
// the next read, whatever kind of read that is (pipelining). A returned view
// stays valid until the next read on the channel (copy what you keep: in
// AddressSanitizer builds a view used after the next read is a report, since
// its bytes may be back in the reactor's pool, lib/poison.hpp). Input is bounded: a line
// longer than max_line is std::system_error(errc::line_too_long), and no read
// buffers more than max_buffer bytes. End of stream is a value (nullopt); a
// reset peer counts as end of stream, its errno kept in
// close_reason(). The bytes after the last terminator at end of stream are
// not lost: read_some() returns them.
// Receive memory exists only while there are unread bytes: a channel waiting
// for data holds no buffer. Its receive takes one of the reactor's provided
// buffers when bytes arrive; reads answer straight from that block, which
// goes back to the reactor at the next read once it is consumed. Only bytes
// left over for a later receive are copied into the channel's own buffer
// (recycled per thread), which goes back as soon as it is empty too. That
// memory and the multishot queue are the channel's receive_room
// (lib/receive_room.hpp); the channel keeps the terminators, the limits, the
// deadline and the waiting read.
//
// Output: push() queues bytes or a producer and returns at once; the first
// push posts a flush, which gathers the pieces queued by then into one vectored
// send whenever the socket can take data (Medusa's globbing): plain bytes from
// the output block's own operation, producers, files and transports by a
// background sender coroutine. write() also waits while more than the
// high-water mark is queued (backpressure) and reports a failed send; flush()
// waits until everything is sent; close_when_done() closes after the fifo
// drains, and anything pushed after it is dropped. These waits complete
// without suspending or allocating when there is nothing to wait for, and
// with_timeout() can cut them short. A channel destroyed with output still
// queued lingers in the background (up to channel_options::linger) to send it
// and then closes: nothing pushed is lost because the handler returned.
//
// Transport: a channel runs over a plain socket (the fast path: gathered sends,
// sendfile, the multishot receive) or over any transport (lib/transport.hpp):
// TLS (coro/tls.hpp) or an in-memory pair for tests (lib/memory_transport.hpp).
// The reads, pushes and waits above behave the same on all of them.
// Medusa ancestor: asynchat.async_chat.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <coronet/coro/frame_pool.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/lib/event.hpp>
#include <coronet/lib/receive_room.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/transport.hpp>

namespace coronet {

// Limits and sizes of a channel; the defaults suit a line-oriented server.
// A channel keeps them in 32 bits each: a size above 4 GiB - 1 (UINT32_MAX
// bytes) or a duration above UINT32_MAX ms (about 49.7 days) is refused by
// the channel's constructor with std::invalid_argument naming the option; the
// channel's set_* calls saturate at those ceilings. A negative duration counts as 0.
struct channel_options {
    std::size_t max_line = 64 * 1024;           // read_until: longest line accepted
    std::size_t max_buffer = 16 * 1024 * 1024;  // read_exactly: largest count accepted
    std::size_t recv_size = 16 * 1024;          // bytes asked of each receive
    std::size_t high_water = 256 * 1024;        // write() waits while more is queued
    std::size_t low_water = 64 * 1024;          // ... until the queue is back below this
    std::chrono::milliseconds linger{10'000};   // a destroyed channel's time to send what is queued
    // A read that waits this long for its bytes gives up with errc::timed_out;
    // re-armed at every read, so an idle client goes and a busy one stays. 0: never.
    std::chrono::milliseconds idle_timeout{0};
    // io_uring: keep one multishot receive armed (a recv_queue of 56 B, a 64-byte block,
    // per channel) instead of one receive per read that waits.
    bool multishot_recv = true;
};

namespace detail {
class channel_state;
}

class channel {
public:
    channel() noexcept;
    explicit channel(socket s, channel_options options = {});
    // Over a transport: TLS, an in-memory pipe (no sendfile, no provided buffers).
    explicit channel(std::unique_ptr<transport> t, channel_options options = {});
    channel(channel&&) noexcept;
    channel& operator=(channel&&) noexcept;
    // Output still queued is sent in the background (up to channel_options::linger),
    // then the connection closes; with nothing queued it closes now.
    ~channel();

    // --- input ---
    struct [[nodiscard]] read_awaiter;

    // The bytes before the next `term` (non-empty); nullopt at end of stream.
    read_awaiter read_until(std::string_view term);
    // Exactly n bytes; nullopt when the stream ends first (the partial bytes stay readable).
    read_awaiter read_exactly(std::size_t n);
    // Up to max buffered bytes, else the next receive; nullopt at end of stream.
    read_awaiter read_some(std::size_t max = SIZE_MAX);

    // The same reads, for a server loop where a peer's misbehaviour is routine:
    // what a peer can cause (a timeout, a line or count past the limits, a
    // failed receive) comes back in read_result::error instead of being thrown.
    // Misuse still throws (two reads at once, an empty terminator).
    //     auto r = co_await ch.try_read_until("\r\n");
    //     if (r.error) { log it; break; }   // routine: timed_out, line_too_long...
    //     if (!r.bytes) break;              // end of stream
    struct read_result;
    struct [[nodiscard]] try_read_awaiter;
    try_read_awaiter try_read_until(std::string_view term);
    try_read_awaiter try_read_exactly(std::size_t n);
    try_read_awaiter try_read_some(std::size_t max = SIZE_MAX);
    // Bytes received and not yet read.
    std::size_t buffered() const noexcept;
    // Bytes of receive memory held now (0 for a channel waiting with nothing unread).
    std::size_t buffer_capacity() const noexcept;
    // True once the peer's end of stream (or a reset) has been seen.
    bool at_eof() const noexcept;
    // Bytes received so far (the connection registry's bytes in).
    std::uint64_t received() const noexcept;
    // True while a read waits for bytes (the connection registry's reading or idle).
    bool read_waiting() const noexcept;
    // Why input ended: empty for a clean end of stream, ECONNRESET etc. for a reset.
    std::error_code close_reason() const noexcept;

    // Reads that have to wait give up at t with std::system_error(errc::timed_out),
    // every received byte kept; reads the buffer answers are not affected. The
    // deadline is absolute and sticky: it stays until cleared or set again, so
    // once t has passed every read that has to wait fails at once. For a limit
    // that starts afresh with each read, use set_idle_timeout(). The deadline is kept
    // in the channel's record of rarely used parts, made by the first call (a read
    // with a deadline needs it anyway, for its timer); should there be no memory for
    // it, the deadline counts as passed.
    void set_read_deadline(reactor::clock::time_point t) noexcept;
    // Reads wait as long as it takes again (the default); the idle timeout stays.
    void clear_read_deadline() noexcept;
    // Each read that has to wait gives up with errc::timed_out after d without
    // being answered (re-armed by every read: channel_options::idle_timeout);
    // 0 turns it off. With a read deadline too, the earlier of the two applies.
    void set_idle_timeout(std::chrono::milliseconds d) noexcept;

    void set_max_line(std::size_t n) noexcept;
    void set_max_buffer(std::size_t n) noexcept;
    void set_high_water(std::size_t high, std::size_t low) noexcept;

    // --- output ---
    // Queues bytes (copied, or moved from a std::string) or a producer; returns at once.
    void push(std::string data);
    void push(std::string_view data);
    void push(const char* data) { push(std::string_view(data)); }
    void push(std::span<const std::byte> data);
    void push(producer p);
    // No null pointers: push(0), push(NULL) and push(nullptr) do not compile
    // (0 and NULL are ambiguous between this and const char*).
    void push(std::nullptr_t) = delete;
    // async_chat's name for push(producer).
    void push_with_producer(producer p) { push(std::move(p)); }
    struct [[nodiscard]] wait_awaiter;
    // Queues data, then waits while the queue is above the high-water mark;
    // throws std::system_error if the connection failed.
    wait_awaiter write(std::string data);
    wait_awaiter write(std::string_view data);
    wait_awaiter write(const char* data);
    wait_awaiter write(producer p);
    wait_awaiter write(std::nullptr_t) = delete;  // as push(nullptr)
    // Waits until everything queued has been sent; throws if sending failed.
    wait_awaiter flush();
    // Sends what is queued, then closes; later pushes are dropped. Takes effect
    // when called; awaiting it waits for the close.
    // A producer whose more() throws fails the output side: the error is logged
    // once, the connection closes, and write(), flush() and close_when_done()
    // (waiting or later) throw std::system_error with its code (a system_error's
    // own, else errc::producer_failed).
    wait_awaiter close_when_done();
    // Drops unsent output (not what is already in the kernel).
    void discard_buffers() noexcept;
    // Closes now: unsent output is dropped and a pending read sees end of stream.
    void close() noexcept;
    // Ends our output now (flush first): the peer sees end of stream (TLS: our
    // close_notify); reading goes on.
    void shutdown_send() noexcept;
    // Bytes queued and not yet handed to the kernel.
    std::size_t queued() const noexcept;
    // What the output side has handed to the kernel so far.
    struct send_counters {
        std::uint64_t sends = 0;       // send system calls (sendmsg or sendfile) that sent bytes
        std::uint64_t bytes = 0;       // bytes they sent
        std::uint64_t file_bytes = 0;  // of those, sent from files without a copy (sendfile)
    };
    send_counters sent() const noexcept;
    // True after close() or once close_when_done() has closed the connection.
    bool closed() const noexcept;

    // The socket underneath (for a TLS channel, the one carrying the records);
    // an empty socket for an in-memory channel.
    socket& sock() noexcept;
    // The transport, or nullptr for a plain socket.
    transport* via() const noexcept;
    reactor& context() const noexcept;
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    std::unique_ptr<detail::channel_state> state_;
};

namespace detail {

enum class read_kind : unsigned char { until, exactly, some };
// What a read was doing when it failed: its error's message names it.
enum class read_step : unsigned char { read, recv, read_until, read_exactly };
enum class wait_kind : unsigned char { below_high_water, flushed, closed };

// The background sender's coroutine, for output that is more than plain bytes
// (producers, files, a transport, long gathers): started by a posted flush that
// finds such output, it frees its own frame when it ends (nothing left to
// send), so an idle channel keeps none. Plain bytes need no frame (flush_op).
struct sender_task {
    struct promise_type {
        // send_loop() is a member: the promise keeps its channel, to report a throw.
        explicit promise_type(channel_state& st) noexcept : owner(&st) {}
        static void* operator new(std::size_t n) { return frame_allocate(n); }
        static void operator delete(void* p, std::size_t n) noexcept { frame_deallocate(p, n); }
        sender_task get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        // send_loop() catches what a producer throws (producer_failed); anything
        // else fails the output side the same way (channel_state::sender_failed).
        void unhandled_exception() noexcept;
        channel_state* owner;
    };
    std::coroutine_handle<promise_type> handle;
};

// A piece of output: bytes, or a producer drained into them as the sender reaches it.
struct out_item {
    std::string bytes;
    producer source;
};

// Memory for blocks of at most small_block bytes (a std::deque's nodes and its
// first map), kept per thread for reuse: a deque that cycles through its nodes
// (pushing at the back, popping at the front) then allocates nothing.
inline constexpr std::size_t small_block = 512;
void* small_block_allocate(std::size_t bytes);
void small_block_deallocate(void* p, std::size_t bytes) noexcept;

template <class T>
struct recycling_allocator {
    using value_type = T;
    recycling_allocator() noexcept = default;
    template <class U>
    recycling_allocator(const recycling_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(small_block_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { small_block_deallocate(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const recycling_allocator<U>&) const noexcept {
        return true;
    }
};

// The queued pieces, in order: the first in the block itself, the rest in a
// deque made when a second piece queues behind it (and kept with the block
// after), so a reply of one piece (an echo, a batch of pipelined responses
// coalesced) needs no deque memory. A piece does not move while queued, except
// the one behind the front, which moves into the front's place when that
// leaves: only pieces no send in flight refers to leave.
class out_queue {
public:
    using deque = std::deque<out_item, recycling_allocator<out_item>>;

    bool empty() const noexcept { return n_ == 0; }
    std::size_t size() const noexcept { return n_; }
    out_item& front() noexcept { return first_; }
    out_item& back() noexcept { return n_ > 1 ? rest_->back() : first_; }
    out_item& operator[](std::size_t i) noexcept { return i == 0 ? first_ : (*rest_)[i - 1]; }
    void push_back(out_item&& it) {
        if (n_ > 0) {
            if (!rest_) rest_ = std::make_unique<deque>();
            rest_->push_back(std::move(it));
        } else {
            first_ = std::move(it);
        }
        ++n_;
    }
    void pop_front() noexcept {
        if (--n_ == 0) {
            first_ = out_item{};
        } else {
            first_ = std::move(rest_->front());
            rest_->pop_front();
        }
    }
    void pop_back() noexcept {
        if (--n_ == 0)
            first_ = out_item{};
        else
            rest_->pop_back();
    }
    void clear() noexcept {
        first_ = out_item{};
        if (rest_) rest_->clear();
        n_ = 0;
    }

private:
    out_item first_;
    std::size_t n_ = 0;
    std::unique_ptr<deque> rest_;  // items 1..n_-1
};

// The output block's own send: what sends the queued pieces without a coroutine
// while they are plain bytes on a plain socket (the echo, a pipelined response
// batch). A flush is posted through it (kick_sender) and it is then the
// sendmsg, gathering at most flush_iov pieces; its completion calls the channel
// back (channel_state::on_flush). The msghdr and the iovecs stay valid while
// the kernel may read them, since the block stays while the send is in flight.
inline constexpr std::size_t flush_iov = 4;
struct flush_op : operation {
    channel_state* owner = nullptr;
    bool active = false;   // posted, or its send is in flight
    bool sending = false;  // the send is in flight (else the flush was posted)
    msghdr header{};
    std::array<iovec, flush_iov> iov{};
};

// The output side while output is in progress: the queued pieces, the sender
// and whoever waits on them. It exists only while something is queued, a
// flush or the sender runs or a write, flush or close_when_done waits, and comes from (and
// goes back to) a per-thread cache, so an idle channel holds 8 B for its output
// (besides its counters) and steady traffic allocates nothing.
struct output_block {
    explicit output_block(reactor& r) noexcept : drained(r), flushed(r), ended(r) {}
    using queue = out_queue;
    // Pieces referred to by a send in flight never move (the gather points into them).
    queue items;
    std::size_t head_sent = 0;       // bytes of items.front() already sent
    std::size_t in_flight = 0;       // items referenced by the send in progress
    std::size_t queued = 0;          // bytes in items not yet sent
    std::coroutine_handle<> sender;  // running sender coroutine, else null
    flush_op flush;                  // posted flush or send in flight (flush.active)
    event drained;                   // queued fell to low_water (or the output side ended)
    event flushed;                   // items emptied (or the output side ended)
    event ended;                     // closed, or the send failed

    bool idle() const noexcept {
        return items.empty() && !sender && !flush.active && !drained.has_waiters() &&
               !flushed.has_waiters() && !ended.has_waiters();
    }
};

// The output fifo: a pointer to the output block, made by the first push (or
// wait) and let go of once the block is idle again.
class output_fifo {
public:
    using queue = output_block::queue;

    output_fifo() = default;
    ~output_fifo();
    output_fifo(const output_fifo&) = delete;
    output_fifo& operator=(const output_fifo&) = delete;

    bool empty() const noexcept { return !b_ || b_->items.empty(); }
    std::size_t size() const noexcept { return b_ ? b_->items.size() : 0; }
    std::size_t queued() const noexcept { return b_ ? b_->queued : 0; }
    out_item& front() noexcept { return b_->items.front(); }
    out_item& back() noexcept { return b_->items.back(); }
    out_item& operator[](std::size_t i) noexcept { return b_->items[i]; }
    // The block (null while the output is idle), and the block made if there is none.
    output_block* get() const noexcept { return b_; }
    output_block& make(reactor& r) { return b_ ? *b_ : fresh(r); }
    // Queues a piece (making the block if there is none); the block.
    output_block& push_back(reactor& r, out_item&& it);
    void pop_front() noexcept { b_->items.pop_front(); }
    void pop_back() noexcept { b_->items.pop_back(); }
    // The block goes back to the cache if nothing is queued, sending or waiting.
    void release_if_idle() noexcept {
        if (b_ && b_->idle()) release();
    }

private:
    output_block& fresh(reactor& r);
    void release() noexcept;
    output_block* b_ = nullptr;
};

// What few channels need, in one record made the first time one does (an
// idle channel keeps a pointer for all of it): the read deadline's timer, why
// input ended with an error, why output failed.
struct channel_extras {
    struct timer_op : operation {
        channel_state* owner = nullptr;
    };
    timer_op timer;              // the waiting read's deadline, armed while it waits
    std::error_code reason;      // close_reason()
    std::error_code send_error;  // why the output side failed
    std::string producer_error;  // what a producer's more() threw ("" for a failed send)
    // set_read_deadline()'s time (while has_deadline_): kept here with the timer it needs,
    // not in every channel. Extras made by a read after a set_read_deadline() that found no
    // memory for them keep the default, long past: the deadline counts as passed.
    reactor::clock::time_point deadline{};
};

// A channel's copy of its options in 32-bit fields (channel_options: 64 B).
struct channel_limits {
    explicit channel_limits(const channel_options& o);  // std::invalid_argument if out of range
    std::uint32_t max_line;
    std::uint32_t max_buffer;
    std::uint32_t recv_size;
    std::uint32_t high_water;
    std::uint32_t low_water;
    std::uint32_t linger_ms;
    std::uint32_t idle_timeout_ms;  // 0: none
};

// The channel's receive, as channel_state's base: the reactor's callback finds
// the channel from the operation alone (a standard-layout struct shares its
// first member's address), so the receive keeps no owner pointer.
struct channel_receive {
    operation rx_;
};
static_assert(std::is_standard_layout_v<channel_receive>);

class channel_state : private channel_receive {
public:
    channel_state(socket s, std::unique_ptr<transport> t, channel_options o);
    ~channel_state();

    reactor& r() const noexcept { return room_.context(); }
    // The channel's receive (rx_), and the channel from it: a read_awaiter keeps only the
    // former (its cancel_link's operation), where it kept both. No dereference: st may be null.
    static operation* receive_of(channel_state* st) noexcept {
        return reinterpret_cast<operation*>(static_cast<channel_receive*>(st));
    }
    static channel_state* of(operation* rx) noexcept {
        return static_cast<channel_state*>(reinterpret_cast<channel_receive*>(rx));
    }

    // A read begins (its awaiter knows nothing about the buffer yet: scanned 0), and receive
    // memory holding nothing unread goes back (the last read's view has expired).
    void begin_read() noexcept { room_.release_if_empty(); }
    // The fast path: answers a's read from buffered bytes when it can (true), throwing on limits.
    bool try_read(channel::read_awaiter& a);
    // A read try_read() could not answer waits (read_awaiter::await_suspend):
    // true when the reader suspends until the read is answered; false when it
    // was answered (or failed) at once.
    bool wait_read(channel::read_awaiter& a);
    // The waiting read's coroutine is being destroyed: its receive is abandoned.
    void abandon_read() noexcept;
    // Throws a read's error, as the read_step it failed in names it.
    [[noreturn]] void throw_read_error(std::error_code ec, read_step what) const;
    // Throws a read's error as std::system_error, naming the channel and its peer.
    [[noreturn]] void throw_read_error(std::error_code ec, const char* what) const;
    // The sender ended with an exception (not a producer's): the output side fails.
    void sender_failed(std::exception_ptr e) noexcept;

    void push_bytes(std::string_view data);
    void push_string(std::string&& data);
    void push_producer(producer p);
    // The output waits: satisfied() answers at once, wait_slow() suspends until it is.
    bool satisfied(wait_kind kind) const noexcept;
    task<void> wait_slow(wait_kind kind);
    void throw_if_failed(wait_kind kind) const;
    void start_closing();
    void discard() noexcept;
    void close_now() noexcept;

    // Kept small, every idle connection has one: 248 B on x86-64 (a 256-byte
    // malloc chunk; the output side's working state is in out_'s block, the rare
    // parts and the read deadline in extras_, the options and the room's
    // positions in 32-bit fields, read_until's scan position in its awaiter).
    socket sock_;  // plain: the connection; else empty
    // input: the unread bytes and their memory (a provided block, the
    // multishot queue, our own buffer); its reactor is the channel's (r())
    receive_room room_;
    std::unique_ptr<transport> tx_;  // nullptr: the plain socket
    channel_limits opt_;
    // Flags, in the 4 bytes after the limits: whole bytes for the ones every
    // read touches (a bit is written by read-modify-write), bits of one byte
    // for the rest.
    bool multishot_recv_ : 1;         // channel_options::multishot_recv
    bool has_deadline_ : 1 = false;   // set_read_deadline()
    bool closing_ : 1 = false;        // output: close_when_done() was called
    bool output_failed_ : 1 = false;  // a send or a producer failed (why: extras_)
    bool eof_ = false;                // input ended
    bool timed_out_ = false;          // the waiting read's deadline passed
    bool closed_ = false;             // close() or close_when_done() closed the connection
    std::uint64_t received_ = 0;      // bytes received so far (channel::received())
    // The waiting read: no coroutine frame of its own. rx_ (the base) is its
    // receive (the reactor calls back when it finishes) and extras_->timer its
    // deadline, made at the first read that waits with one (most channels never
    // have a deadline).
    using channel_receive::rx_;
    channel::read_awaiter* reading_ = nullptr;

    // output
    using item = out_item;
    output_fifo out_;  // the block: pieces, sender, waiters (null while idle)
    channel::send_counters counters_;
    std::unique_ptr<channel_extras> extras_;  // null until a deadline, a reason or a failure

    std::error_code reason() const noexcept {
        return extras_ ? extras_->reason : std::error_code();
    }
    // The extras, made if there are none: throws std::bad_alloc; or null without memory.
    channel_extras& extras();
    channel_extras* try_extras() noexcept;
    // The output block while the sender runs (it exists then).
    output_block& ob() noexcept { return *out_.get(); }

private:
    void kick_sender(output_block& b);
    void output_done() noexcept;
    void output_ended() noexcept;
    static void on_flush(operation& op);
    void flush_now(output_block& b);
    void drop_spent(output_block& b) noexcept;
    void drop_sent(output_block& b, std::size_t sent) noexcept;
    sender_task send_loop();
    bool fill_producer(std::size_t i);
    void producer_failed(std::error_code error, const char* what) noexcept;
    std::string describe() const;
    file_producer* zero_copy_head() noexcept;
    file_producer* file_behind_head() noexcept;
    void send_failed(std::error_code error) noexcept;
    void set_failure(std::error_code error, const char* producer_what) noexcept;
    void set_reason(std::error_code ec) noexcept;
    void adopt_extras(std::unique_ptr<channel_extras> x) noexcept;
    void shut_down() noexcept;
    void count_sent(std::size_t n, bool from_file) noexcept;
    std::size_t buffered() const noexcept { return room_.size(); }
    bool receive();
    void start_receive();
    void received();
    bool read_answered() noexcept;
    void fail_read(std::error_code ec, read_step what) noexcept;
    void end_read() noexcept;
    static void on_received(operation& op);
    static void on_deadline(operation& op);
    friend class coronet::channel;
};

}  // namespace detail

// What read_until / read_exactly / read_some return: completes without
// suspending (and without allocating) when the buffered bytes already answer.
// A read that waits has no coroutine frame of its own: the channel's receive
// calls back into the channel, which resumes the reader once the read is
// answered. Like an I/O awaiter, it belongs to the cancellable scope of the
// coroutine awaiting it (with_timeout reaches its receive).
struct [[nodiscard]] channel::read_awaiter {
    // Lives in the frame of every coroutine that reads (GCC keeps all of a
    // coroutine's awaiters in its frame at once), so it is kept small: 64 bytes.
    read_awaiter(detail::channel_state* state, detail::read_kind k, std::string_view term,
                 std::size_t n) noexcept
        : data(term.data()), size(k == detail::read_kind::until ? term.size() : n), kind(k) {
        link.set_op(detail::channel_state::receive_of(state));
    }

    // The channel (null once its waiting read was abandoned): found from link's operation,
    // the channel's receive, which the read's cancellable scope cancels.
    detail::channel_state* st() const noexcept {
        return detail::channel_state::of(link.known_op());
    }
    // Until the read is answered: read_until's terminator (data, size), or the
    // count of read_exactly and read_some (size). Then the bytes (when got),
    // or the error (when failed: its category and value, see fail()).
    const char* data;
    std::size_t size;
    std::coroutine_handle<> waiter{};
    cancel_slot* slot = nullptr;
    cancel_link link{};  // its operation: the channel's receive, set from the start
    detail::read_kind kind;
    bool got = false;             // answered with bytes (false: end of stream)
    bool failed = false;          // ended by error()
    detail::read_step what = {};  // error's context
    // read_until: unread bytes known not to start the terminator (saturated: a smaller count
    // only means more to scan). The read's own, in what was padding.
    std::uint32_t scanned = 0;

    // Ends the read with ec (not 0), as step failed: the terminator or count is
    // not needed any more, so the error takes its room.
    void fail(std::error_code ec, detail::read_step step) noexcept {
        if (!ec) return;
        data = reinterpret_cast<const char*>(&ec.category());
        size = static_cast<std::size_t>(ec.value());
        failed = true;
        what = step;
    }
    std::error_code error() const noexcept {
        if (!failed) return {};
        return {static_cast<int>(size), *reinterpret_cast<const std::error_category*>(data)};
    }

    // A coroutine destroyed while its read waits: the receive is abandoned.
    ~read_awaiter() {
        detail::channel_state* s = st();
        if (s && s->reading_ == this) s->abandon_read();
    }

    bool await_ready() {
        detail::channel_state* s = st();
        // One read at a time: a second one would free the buffer the first
        // one's receive may still be filling.
        if (s->reading_)
            throw std::logic_error("channel: a read is already waiting on this channel");
        s->begin_read();  // a new read: nothing is known about the buffer yet
        return s->try_read(*this);
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        waiter = h;
        if constexpr (requires { h.promise().cancel_slot(); }) slot = h.promise().cancel_slot();
        return st()->wait_read(*this);
    }
    std::optional<std::string_view> bytes() const noexcept {
        if (!got) return std::nullopt;
        return std::string_view(data, size);
    }
    std::optional<std::string_view> await_resume() {
        if (failed) st()->throw_read_error(error(), what);
        return bytes();
    }
};

// What the try_read_* reads give: the bytes (nullopt at end of stream or on an
// error; valid until the next read) or the error that ended the read.
struct channel::read_result {
    std::optional<std::string_view> bytes;
    std::error_code error;
};

// A read_awaiter whose errors are values: see channel::try_read_until.
struct [[nodiscard]] channel::try_read_awaiter : channel::read_awaiter {
    using read_awaiter::read_awaiter;
    bool await_ready() {
        try {
            return read_awaiter::await_ready();
        } catch (const std::system_error& e) {        // a limit, found in the buffered bytes
            fail(e.code(), detail::read_step::read);  // (what only names a thrown error)
            return true;
        }
    }
    read_result await_resume() noexcept {
        if (failed) return {std::nullopt, error()};
        return {bytes(), {}};
    }
};

// Inline: a read the buffer answers costs no call beyond try_read().
inline channel::read_awaiter channel::read_until(std::string_view term) {
    return {state_.get(), detail::read_kind::until, term, 0};
}
inline channel::read_awaiter channel::read_exactly(std::size_t n) {
    return {state_.get(), detail::read_kind::exactly, {}, n};
}
inline channel::read_awaiter channel::read_some(std::size_t max) {
    return {state_.get(), detail::read_kind::some, {}, max == 0 ? 1 : max};
}
inline channel::try_read_awaiter channel::try_read_until(std::string_view term) {
    return {state_.get(), detail::read_kind::until, term, 0};
}
inline channel::try_read_awaiter channel::try_read_exactly(std::size_t n) {
    return {state_.get(), detail::read_kind::exactly, {}, n};
}
inline channel::try_read_awaiter channel::try_read_some(std::size_t max) {
    return {state_.get(), detail::read_kind::some, {}, max == 0 ? 1 : max};
}

// What write / flush / close_when_done return: completes without suspending
// (and without allocating) when there is nothing to wait for.
struct [[nodiscard]] channel::wait_awaiter {
    detail::channel_state* st;
    detail::wait_kind kind;
    task<void> slow{};  // the wait that suspends (its awaiter is made when needed: no room kept)

    bool await_ready() const noexcept { return st->satisfied(kind); }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        slow = st->wait_slow(kind);
        return task<void>::awaiter{slow.handle()}.await_suspend(h);
    }
    void await_resume() {
        if (slow.valid()) task<void>::awaiter{slow.handle()}.await_resume();
        st->throw_if_failed(kind);
    }
};

}  // namespace coronet
