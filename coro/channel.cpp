#include <coronet/coro/channel.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

#include <sys/socket.h>
#include <sys/uio.h>

#include <coronet/coro/scan.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/free_list.hpp>
#include <coronet/lib/log.hpp>

namespace coronet {
namespace detail {
namespace {

// asyncore's _DISCONNECTED (lib/error), and a descriptor closed under a call.
bool is_disconnect(const std::error_code& ec) {
    return coronet::is_disconnect(ec) || ec == std::errc::bad_file_descriptor;
}

constexpr std::size_t coalesce_limit = 16 * 1024;  // small pushes join the previous piece
constexpr std::size_t glob_size = 64 * 1024;       // producers are pulled up to this much at a time
constexpr std::size_t max_iov = 64;                // pieces gathered into one send (<= IOV_MAX)
constexpr std::size_t max_send = 1024 * 1024;      // bytes offered to one send
// A regular file with more than this left when the sender reaches it goes by
// sendfile, all of it (see send_loop); a smaller one is read into a reused piece.
constexpr std::size_t zero_copy_min = coalesce_limit;
// A file for sendfile with more than this left does not take the piece before
// it (its response head) into its first segment with MSG_MORE: the piece goes
// in its own send right before the file's sendfile, in one operation
// (socket::sendfile's head). A head joined to the body gave the peer's
// receive-window tuning an RTT sample as long as this side took to answer (the
// first full segment echoes the request's timestamp, and the peer's queue is
// empty then): over loopback the peer's window grew to its 32 MiB ceiling, so
// the whole file left inside our sendfile, the receiver's protocol work charged
// to this process (benchmarks/STEPS.md, issue 16 item 3). A smaller file fits a
// peer's first windows anyway, and saves a segment with MSG_MORE.
constexpr std::size_t separate_head_min = 1024 * 1024;

// Idle output blocks (with their empty deques) kept per thread for the next
// channel that queues something.
constexpr std::size_t blocks_kept = 256;

struct delete_block {
    void operator()(void* p) const noexcept { ::operator delete(p); }
};
thread_local free_list<void*, 256, delete_block> small_blocks;  // 128 KiB per thread at most

struct delete_output_block {
    void operator()(output_block* b) const noexcept { delete b; }
};
thread_local free_list<output_block*, blocks_kept, delete_output_block> output_blocks;

// A limit kept in 32 bits (channel_limits): larger values are refused.
std::uint32_t checked_size(std::size_t v, const char* name) {
    if (v > UINT32_MAX)
        throw std::invalid_argument(std::string("channel_options::") + name +
                                    ": more than 4294967295 (the limit: 32 bits)");
    return static_cast<std::uint32_t>(v);
}

std::uint32_t checked_ms(std::chrono::milliseconds d, const char* name) {
    if (d.count() > static_cast<std::int64_t>(UINT32_MAX))
        throw std::invalid_argument(std::string("channel_options::") + name +
                                    ": more than 4294967295 ms (the limit: 32 bits)");
    return static_cast<std::uint32_t>(std::max<std::int64_t>(d.count(), 0));
}

// The set_* calls saturate instead (they are noexcept).
std::uint32_t saturated(std::uint64_t v) noexcept {
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(v, UINT32_MAX));
}

// Strings of sent pieces, kept per thread for the next pushes and small file
// reads: a piece that starts reuses one instead of allocating. Enough are kept
// for a whole loop turn's sends: on io_uring every connection's pieces are in
// flight at once and come back together at the next turn, and when more were
// freed than kept, the allocator gave the pages back (madvise) to fault them in
// again one turn later (issue 16). At most 256 strings of at most 32 KiB
// capacity each, and 4 MiB in all, per thread.
constexpr std::size_t spare_strings_kept = 256;
constexpr std::size_t spare_capacity = 2 * coalesce_limit;
constexpr std::size_t spare_bytes_kept = 4u << 20;

// The spare strings and the capacity they hold in all (bounded by both).
struct spare_string_cache {
    free_list<std::string, spare_strings_kept> free;
    std::size_t bytes = 0;
};

thread_local spare_string_cache spare_strings;

std::string take_spare_string() noexcept {
    if (spare_strings.free.empty()) return {};
    std::string s = spare_strings.free.take();
    spare_strings.bytes -= s.capacity();
    return s;
}

void keep_spare_string(std::string& s) noexcept {
    if (s.capacity() > spare_capacity || spare_strings.free.full() ||
        spare_strings.bytes + s.capacity() > spare_bytes_kept)
        return;
    s.clear();
    const std::size_t capacity = s.capacity();
    if (spare_strings.free.keep(s)) spare_strings.bytes += capacity;  // its piece leaves next
}

}  // namespace

void* small_block_allocate(std::size_t bytes) {
    if (bytes > small_block) return ::operator new(bytes);
    if (!small_blocks.empty()) return small_blocks.take();
    return ::operator new(small_block);  // every cached block can serve any small request
}

void small_block_deallocate(void* p, std::size_t bytes) noexcept {
    if (bytes <= small_block && small_blocks.keep(p)) return;
    ::operator delete(p);
}

output_fifo::~output_fifo() {
    if (b_) {  // a channel destroyed while its output was in progress
        b_->items.clear();
        b_->head_sent = b_->in_flight = b_->queued = 0;
        b_->sender = nullptr;
        b_->flush.active = b_->flush.sending = false;  // (abandoned by ~channel_state)
        release();
    }
}

namespace {

// A block from the cache is as an idle one was left: nothing queued, no
// sender, no waiters, every count 0 (the fifo's destructor clears one that was not idle).
inline output_block* take_block(reactor& r) {
    if (output_blocks.empty()) return new output_block(r);
    output_block* b = output_blocks.take();
    if (&b->drained.context() != &r) {  // its events name the reactor it served last here
        std::construct_at(&b->drained, r);
        std::construct_at(&b->flushed, r);
        std::construct_at(&b->ended, r);
    }
    return b;
}

}  // namespace

output_block& output_fifo::fresh(reactor& r) { return *(b_ = take_block(r)); }

output_block& output_fifo::push_back(reactor& r, out_item&& it) {
    if (!b_) b_ = take_block(r);
    b_->items.push_back(std::move(it));
    return *b_;
}

void output_fifo::release() noexcept {
    if (!output_blocks.keep(b_)) delete b_;
    b_ = nullptr;
}

channel_limits::channel_limits(const channel_options& o)
    : max_line(checked_size(o.max_line, "max_line")),
      max_buffer(checked_size(o.max_buffer, "max_buffer")),
      recv_size(checked_size(o.recv_size, "recv_size")),
      high_water(checked_size(o.high_water, "high_water")),
      low_water(checked_size(o.low_water, "low_water")),
      linger_ms(checked_ms(o.linger, "linger")),
      idle_timeout_ms(checked_ms(o.idle_timeout, "idle_timeout")) {}

channel_state::channel_state(socket s, std::unique_ptr<transport> t, channel_options o)
    : sock_(std::move(s)),
      room_(t ? t->context() : sock_.context()),
      tx_(std::move(t)),
      opt_(o),
      multishot_recv_(o.multishot_recv) {
    rx_.set_on_done(&on_received);
}

channel_state::~channel_state() {
    // The sender dies first: a send still in the kernel is abandoned
    // (cancelled and waited for) before the fd and the buffers go, and a turn
    // already scheduled for it is withdrawn.
    if (output_block* b = out_.get()) {
        if (std::coroutine_handle<> sender = b->sender) {
            sender.destroy();
            b->sender = nullptr;  // (~output_fifo clears it too)
        }
        if (b->flush.active) {  // a posted flush is withdrawn, a send in flight abandoned
            r().abandon(b->flush);
            b->flush.active = b->flush.sending = false;
        }
    }
    abandon_read();  // a reader outliving its channel is never resumed
    room_.close();   // the kernel lets go of the multishot receive; its blocks go back
    if (tx_ && !closed_) shut_down();  // TLS: close_notify, as any close sends it
}

// --- input -----------------------------------------------------------------

// The answer goes into the awaiter, over its terminator or count (read_awaiter::data, size).
bool channel_state::try_read(channel::read_awaiter& a) {
    std::string_view unread = room_.bytes();
    const char* base = unread.data();
    std::size_t have = unread.size();
    switch (a.kind) {
    case read_kind::until: {
        std::string_view term(a.data, a.size);
        if (term.empty()) throw std::invalid_argument("read_until: empty terminator");
        std::size_t from = std::min<std::size_t>(a.scanned, have);
        std::size_t i = find_terminator(std::string_view(base + from, have - from), term);
        if (i != std::string_view::npos) {
            i += from;
            if (i > opt_.max_line)
                throw_read_error(make_error_code(errc::line_too_long), "read_until");
            a.data = base;
            a.size = i;
            a.got = true;
            room_.consume(i + term.size());
            return true;
        }
        // The terminator can only start in the last term.size()-1 bytes now.
        a.scanned = saturated(have >= term.size() ? have - (term.size() - 1) : 0);
        // (A room holds at most max_size bytes: a line that fills one is too long too.)
        if (have > opt_.max_line + term.size() - 1 || have >= receive_room::max_size)
            throw_read_error(make_error_code(errc::line_too_long), "read_until");
        if (eof_) {
            a.got = false;
            return true;
        }
        return false;
    }
    case read_kind::exactly: {
        std::size_t n = a.size;
        if (n > opt_.max_buffer)
            throw_read_error(make_error_code(errc::message_too_long), "read_exactly");
        if (have >= n) {
            a.data = base;
            a.got = true;
            room_.consume(n);
            return true;
        }
        if (eof_) {
            a.got = false;
            return true;
        }
        return false;
    }
    case read_kind::some:
        if (have > 0) {
            std::size_t k = std::min(have, a.size);
            a.data = base;
            a.size = k;
            a.got = true;
            room_.consume(k);
            return true;
        }
        if (eof_) {
            a.got = false;
            return true;
        }
        return false;
    }
    return false;
}

// --- the waiting read ----------------------------------------------------------
// A read the buffered bytes cannot answer waits on rx_, the channel's own
// receive, which calls back (on_received) when it finishes: the bytes go into
// the buffer, and either the read is answered and its coroutine resumed, or
// the next receive starts. No coroutine frame or timer is created per read: a
// read deadline is the one timer of the channel (extras_), armed while a read waits,
// which cancels rx_ when it fires (every received byte kept).

// Both live in the frame of every coroutine that reads or writes (GCC keeps
// each awaiter of a coroutine in its frame): a server's idle connection pays them.
static_assert(sizeof(channel::read_awaiter) <= 64, "read_awaiter grew");
static_assert(sizeof(channel::wait_awaiter) <= 24, "wait_awaiter grew");
// Every connection holds one: 248 B fills a 256-byte malloc chunk.
static_assert(sizeof(channel_state) <= 248, "channel_state grew");

bool channel_state::wait_read(channel::read_awaiter& a) {
    bool timed = has_deadline_ || opt_.idle_timeout_ms > 0;
    if (timed) extras();  // the first read with a deadline: may throw, before any state changes
    reading_ = &a;
    timed_out_ = false;
    if (a.slot) a.slot->link(a.link);  // a.link's operation is rx_ already
    if (timed) {
        auto now = reactor::clock::now();
        if (has_deadline_ && extras_->deadline <= now) {
            fail_read(make_error_code(errc::timed_out), read_step::read);
            end_read();
            return false;
        }
        // The idle timeout starts afresh with each read that waits.
        auto until = has_deadline_ ? extras_->deadline : reactor::clock::time_point::max();
        if (opt_.idle_timeout_ms > 0)
            until = std::min(until, now + std::chrono::milliseconds(opt_.idle_timeout_ms));
        extras_->timer.deadline = until;
        r().start(extras_->timer);
    }
    if (receive()) return true;
    end_read();
    return false;  // answered by receives that finished at once
}

// Receives until the read is answered or has failed (false), or until a
// receive has to wait (true: on_received goes on from there).
bool channel_state::receive() {
    reactor& r = this->r();
    for (;;) {
        if (closed_) {  // close() while we waited: our end of stream
            eof_ = true;
        } else if (timed_out_) {
            fail_read(make_error_code(errc::timed_out), read_step::read);
        } else if (reading_->slot &&
                   reading_->slot->requested()) {  // an enclosing with_timeout expired
            fail_read(std::make_error_code(std::errc::operation_canceled), read_step::read);
        } else {
            start_receive();
            if (!(tx_ ? tx_->start_recv(rx_) : r.start(rx_))) return true;
            received();
        }
        if (read_answered()) return false;
    }
}

// Fills rx_ for the next receive (the room picks the memory). The room always has space:
// a read waits only while fewer than receive_room::max_size bytes are unread (try_read).
void channel_state::start_receive() {
    const channel::read_awaiter& a = *reading_;
    room_.prepare(rx_, {.fd = sock_.native_handle(),
                        .size = opt_.recv_size,
                        .need = a.kind == read_kind::exactly ? a.size : 0,
                        .provided = !tx_,
                        .multishot = multishot_recv_});
}

// Takes in what rx_ finished with.
void channel_state::received() {
    int res = room_.take(rx_);
    if (res > 0) received_ += static_cast<std::size_t>(res);
    if (res > 0 || res == receive_room::again) return;
    if (res == 0) {
        eof_ = true;
        return;
    }
    std::error_code ec = error_of(res);
    if (tx_ && res == result_of(errc::transport_failed) && tx_->error()) ec = tx_->error();
    if (ec == errc::stream_truncated) {  // TLS without close_notify: an end, never data
        eof_ = true;
        set_reason(ec);
    } else if (res == -ECANCELED) {  // the deadline, or an enclosing scope: nothing was received
        if (timed_out_)
            fail_read(make_error_code(errc::timed_out), read_step::read);
        else
            fail_read(ec, read_step::recv);
    } else if (is_disconnect(ec)) {  // a reset peer is an end of stream
        eof_ = true;
        set_reason(ec);
    } else {
        fail_read(ec, read_step::recv);
    }
}

// True when the waiting read has its answer (or its error).
bool channel_state::read_answered() noexcept {
    channel::read_awaiter& a = *reading_;
    if (a.failed) return true;
    try {
        return try_read(a);
    } catch (const std::system_error& e) {  // a limit: the line or the count is too long
        fail_read(e.code(),
                  a.kind == read_kind::until ? read_step::read_until : read_step::read_exactly);
        return true;
    }
}

// A read's error names the channel (its peer): a server's log says whose
// line was too long or who went idle (spawn logs these routine ones at info).
void channel_state::throw_read_error(std::error_code ec, const char* what) const {
    throw std::system_error(ec, std::string(what) + " " + describe());
}

void channel_state::throw_read_error(std::error_code ec, read_step what) const {
    static constexpr const char* names[] = {"read", "recv", "read_until", "read_exactly"};
    throw_read_error(ec, names[static_cast<unsigned char>(what)]);
}

void channel_state::fail_read(std::error_code ec, read_step what) noexcept {
    reading_->fail(ec, what);
}

// The read is over: it leaves its scope, and its deadline is disarmed.
void channel_state::end_read() noexcept {
    channel::read_awaiter& a = *reading_;
    reading_ = nullptr;
    if (a.slot) {
        a.slot->unlink(a.link);
        if (a.error() == std::errc::operation_canceled) a.slot->mark_cut_short();
    }
    if (extras_) r().abandon(extras_->timer);  // a timer leaves the heap at once
}

void channel_state::abandon_read() noexcept {
    if (!reading_) return;
    channel::read_awaiter* a = reading_;
    r().abandon(rx_);  // cancels, and waits until the kernel lets go of the buffer
    end_read();
    a->link.set_op(nullptr);  // a->st() is null: the awaiter's destructor leaves us alone
}

void channel_state::on_received(operation& op) {
    // op is rx_, the first member of our channel_receive base
    channel_state* st = static_cast<channel_state*>(reinterpret_cast<channel_receive*>(&op));
    st->received();
    if (!st->read_answered() && st->receive()) return;  // waiting again
    channel::read_awaiter* a = st->reading_;
    st->end_read();
    a->waiter.resume();  // last: the reader may destroy the channel
}

void channel_state::on_deadline(operation& op) {
    channel_state* st = static_cast<channel_extras::timer_op&>(op).owner;
    if (op.result == -ECANCELED || !st->reading_) return;
    st->timed_out_ = true;
    st->r().cancel(st->rx_);  // rx_ finishes with -ECANCELED (or what it got)
}

// --- output ----------------------------------------------------------------

// Output is accepted until close_when_done(), close() or a failed send; after
// that a push is dropped (a failed send is reported by write()/flush()).
void channel_state::push_bytes(std::string_view data) {
    if (closing_ || closed_ || output_failed_ || data.empty()) return;
    if (output_block* b = out_.get(); b && b->items.size() > b->in_flight) {
        item& last = b->items.back();
        if (!last.source && last.bytes.size() + data.size() <= coalesce_limit) {
            last.bytes.append(data);
            b->queued += data.size();
            kick_sender(*b);
            return;
        }
    }
    std::string piece = take_spare_string();
    piece.assign(data);
    output_block& b = out_.push_back(r(), {std::move(piece), {}});
    b.queued += data.size();
    kick_sender(b);
}

void channel_state::push_string(std::string&& data) {
    if (data.size() <= coalesce_limit) return push_bytes(data);
    if (closing_ || closed_ || output_failed_) return;
    const std::size_t n = data.size();
    output_block& b = out_.push_back(r(), {std::move(data), {}});
    b.queued += n;
    kick_sender(b);
}

void channel_state::push_producer(producer p) {
    if (closing_ || closed_ || output_failed_ || !p) return;
    kick_sender(out_.push_back(r(), {{}, std::move(p)}));
}

// The first push since the output was idle posts a flush: pushes of the same
// turn join it, and nothing bigger than the block is made until it runs.
void channel_state::kick_sender(output_block& b) {
    if (closed_ || b.sender || b.flush.active) return;  // a flush is on its way
    b.flush.active = true;
    b.flush.sending = false;
    b.flush.owner = this;
    b.flush.set_on_done(&on_flush);
    r().post(b.flush);
}

void channel_state::on_flush(operation& op) {
    auto& f = static_cast<flush_op&>(op);
    channel_state* st = f.owner;
    output_block& b = st->ob();
    if (f.sending) {  // the send finished
        f.sending = false;
        b.in_flight = 0;
        if (op.result < 0) {
            st->send_failed(error_of(op.result));
            f.active = false;
            st->output_done();
            return;
        }
        st->drop_sent(b, static_cast<std::size_t>(op.result));
    }
    st->flush_now(b);
}

// Sends what is queued from the block's own operation, as long as it is plain
// bytes on a plain socket in at most flush_iov pieces (without a coroutine
// frame: on epoll the send mostly finishes at once, and nothing is left behind
// but the block, back in its cache). Anything else (a producer, a file, a
// transport, a longer gather) goes to send_loop(), from where the queue stands.
void channel_state::flush_now(output_block& b) {
    flush_op& f = b.flush;
    while (!closed_) {
        drop_spent(b);
        if (b.items.empty()) {
            b.flushed.notify_all();
            if (closing_) break;
            f.active = false;
            out_.release_if_idle();  // an echo's block goes back after each reply
            return;
        }
        std::size_t count = 0;
        std::size_t bytes = 0;
        std::size_t i = 0;
        bool plain = !tx_;
        for (; plain && i < b.items.size() && bytes < max_send; ++i) {
            item& it = b.items[i];
            std::size_t len = it.bytes.size() - (i == 0 ? b.head_sent : 0);
            if (it.source || (len > 0 && count == flush_iov)) {
                plain = false;
                break;
            }
            if (len == 0) continue;
            f.iov[count++] = {it.bytes.data() + (it.bytes.size() - len), len};
            bytes += len;
            b.in_flight = i + 1;
        }
        if (!plain) {  // the coroutine takes over until the queue is empty
            b.in_flight = 0;
            f.active = false;
            b.sender = send_loop().handle;
            b.sender.resume();
            return;
        }
        f.header.msg_iov = f.iov.data();
        f.header.msg_iovlen = count;
        f.header.msg_flags = 0;
        f.code = op_code::sendmsg;
        f.phase = op_phase::none;
        f.fd = sock_.native_handle();
        f.msg = &f.header;
        f.sending = true;
        bool now = false;
        try {
            now = r().start(f);
        } catch (...) {
            f.sending = false;
            b.in_flight = 0;
            f.active = false;
            sender_failed(std::current_exception());
            return;
        }
        if (!now) return;  // on_flush goes on when it finishes
        f.sending = false;
        b.in_flight = 0;
        if (f.result < 0) {
            send_failed(error_of(f.result));
            break;
        }
        drop_sent(b, static_cast<std::size_t>(f.result));
    }
    f.active = false;
    output_done();
}

// Pieces fully sent (or exhausted producers that gave nothing) leave the front.
inline void channel_state::drop_spent(output_block& b) noexcept {
    while (!b.items.empty() && !b.items.front().source &&
           b.items.front().bytes.size() == b.head_sent) {
        keep_spare_string(b.items.front().bytes);
        b.items.pop_front();
        b.head_sent = 0;
    }
}

// After a send of `sent` bytes from the front of the queue: what went out is
// dropped; a short send resumes mid-piece next time.
void channel_state::drop_sent(output_block& b, std::size_t sent) noexcept {
    b.queued -= sent;
    count_sent(sent, false);
    while (sent > 0) {
        item& head = b.items.front();
        std::size_t left = head.bytes.size() - b.head_sent;
        if (sent < left) {
            b.head_sent += sent;
            break;
        }
        sent -= left;
        b.head_sent = 0;
        if (head.source) {
            head.bytes.clear();  // the producer has more to give
        } else {
            keep_spare_string(head.bytes);
            b.items.pop_front();
        }
    }
    if (b.queued <= opt_.low_water) b.drained.notify_all();
}

// The sending stopped (all sent, failed or closed): a close_when_done() closes
// now, then the waiters learn it.
void channel_state::output_done() noexcept {
    if (closing_ && !closed_) {
        closed_ = true;
        shut_down();  // a pending read sees end of stream
    }
    output_ended();
}

// Everything that waits on the output side learns that it has ended.
void channel_state::output_ended() noexcept {
    output_block* b = out_.get();
    if (!b) return;  // nothing waits
    b->drained.notify_all();
    b->flushed.notify_all();
    b->ended.notify_all();
    out_.release_if_idle();
}

namespace {

// p's file_producer when the rest of it should go by sendfile: a regular file
// with more than zero_copy_min bytes left, or one whose sendfile has begun
// (its tail goes the same way: no read for the last bytes).
file_producer* zero_copy_file(producer& p) noexcept {
    file_producer* f = p ? p.as_file() : nullptr;
    if (!f || f->fd() < 0) return nullptr;
    auto left = f->remaining();
    if (!left || *left == 0) return nullptr;
    return *left > zero_copy_min || f->sending_zero_copy() ? f : nullptr;
}

}  // namespace

// Pulls out_[i]'s producer until it has glob_size unsent bytes or runs dry
// (Medusa's globbing). An exhausted producer leaves a plain piece, maybe
// empty, in its place: pieces are never erased from the middle, because the
// gather below points into the ones before it.
// False when the producer threw: the output side has failed (producer_failed)
// and the sender must stop.
bool channel_state::fill_producer(std::size_t i) {
    item& it = out_[i];
    std::size_t sent = i == 0 ? ob().head_sent : 0;
    // A large file is never read: send_loop sends it by sendfile once it is at
    // the head (a transport copies everything: there it is read like the rest).
    if (!tx_ && zero_copy_file(it.source)) return true;
    try {
        if (file_producer* f = it.source.as_file()) {
            // A small file (or a pipe) is read straight into a piece recycled from
            // earlier sends: no buffer is allocated and freed per response. On
            // io_uring a whole turn's sends are in flight together, and fresh
            // buffers freed together made the allocator give their pages back to
            // the kernel (madvise) and fault them in again every turn.
            if (it.bytes.empty() && f->remaining() != 0) it.bytes = take_spare_string();
            while (it.source && it.bytes.size() - sent < glob_size) {
                std::size_t n = f->append_to(it.bytes, glob_size - (it.bytes.size() - sent));
                if (n == 0) it.source = producer{};
                ob().queued += n;
            }
            return true;
        }
        while (it.source && it.bytes.size() - sent < glob_size) {
            std::string chunk = it.source.more();
            if (chunk.empty()) {
                it.source = producer{};
                break;
            }
            ob().queued += chunk.size();
            if (it.bytes.empty())
                it.bytes = std::move(chunk);
            else
                it.bytes.append(chunk);
        }
    } catch (const std::system_error& e) {
        producer_failed(e.code(), e.what());
        return false;
    } catch (const std::exception& e) {
        producer_failed(make_error_code(errc::producer_failed), e.what());
        return false;
    } catch (...) {
        producer_failed(make_error_code(errc::producer_failed), "not a std::exception");
        return false;
    }
    return true;
}

// "<channel PEER fd=N>" for the log: the peer's address (or the transport's
// name for it), as asyncore's repr.
std::string channel_state::describe() const {
    std::string peer;
    try {
        if (tx_)
            peer = tx_->peer_name();
        else if (sock_)
            peer = sock_.peer_address().to_string();
    } catch (const std::exception&) {
        peer = "?";  // the peer has gone: the fd still names the channel
    }
    std::string out = "<channel";
    if (!peer.empty()) (out += ' ') += peer;
    if (sock_) out += " fd=" + std::to_string(sock_.native_handle());
    return out + '>';
}

void sender_task::promise_type::unhandled_exception() noexcept {
    owner->sender_failed(std::current_exception());
}

void channel_state::sender_failed(std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::system_error& x) {
        producer_failed(x.code(), x.what());
    } catch (const std::exception& x) {
        producer_failed(make_error_code(errc::producer_failed), x.what());
    } catch (...) {
        producer_failed(make_error_code(errc::producer_failed), "sender: not a std::exception");
    }
}

// A producer threw: the output side fails as a send does, the error is logged
// once, every waiter wakes (and throws), and the connection closes. Nothing
// queued after the producer can be sent in order any more.
void channel_state::producer_failed(std::error_code error, const char* what) noexcept {
    const char* message = what && *what ? what : "producer failed";
    set_failure(error, message);
    if (log_enabled(log_level::error)) {
        try {
            log(log_level::error,
                "producer failed in " + describe() + ": " + message + "; closing the connection");
        } catch (...) {
        }
    }
    send_failed(error);
    close_now();
}

// A send failed: the sender stops, and what is queued is dropped (what the
// kernel still references is not in flight any more).
void channel_state::send_failed(std::error_code error) noexcept {
    if (output_block* b = out_.get()) b->in_flight = 0;
    set_failure(error, nullptr);
    discard();
}

// Records the output side's failure (a producer's message kept from an earlier
// one). Without memory for the extras the failure still stands, reported as
// not_enough_memory (throw_if_failed).
void channel_state::set_failure(std::error_code error, const char* producer_what) noexcept {
    output_failed_ = true;
    channel_extras* x = try_extras();
    if (!x) return;
    x->send_error = error;
    if (producer_what) {
        try {
            x->producer_error = producer_what;
        } catch (...) {
            x->producer_error = "producer failed";  // fits a std::string's own bytes
        }
    }
}

// Without memory for the extras the reason is not kept (close_reason() reads empty).
void channel_state::set_reason(std::error_code ec) noexcept {
    if (channel_extras* x = try_extras()) x->reason = ec;
}

channel_extras& channel_state::extras() {
    if (!extras_) adopt_extras(std::make_unique<channel_extras>());
    return *extras_;
}

channel_extras* channel_state::try_extras() noexcept {
    if (!extras_) {
        std::unique_ptr<channel_extras> x(new (std::nothrow) channel_extras);
        if (x) adopt_extras(std::move(x));
    }
    return extras_.get();
}

void channel_state::adopt_extras(std::unique_ptr<channel_extras> x) noexcept {
    x->timer.owner = this;
    x->timer.set_on_done(&on_deadline);
    x->timer.code = op_code::timeout;
    extras_ = std::move(x);
}

void channel_state::count_sent(std::size_t n, bool from_file) noexcept {
    if (n == 0) return;
    ++counters_.sends;
    counters_.bytes += n;
    if (from_file) counters_.file_bytes += n;
}

// The head's file_producer when it should be sent zero-copy: a regular file
// with more than zero_copy_min bytes left and nothing of it read into memory.
file_producer* channel_state::zero_copy_head() noexcept {
    if (tx_ || out_.empty() || !out_.front().bytes.empty()) return nullptr;  // a transport copies
    return zero_copy_file(out_.front().source);
}

// The file behind the front piece when the two go in one sendfile, the piece as
// its head (separate_head_min): a plain piece with bytes left, then a file for
// sendfile with more than separate_head_min left. Null otherwise.
file_producer* channel_state::file_behind_head() noexcept {
    if (tx_ || out_.size() < 2 || out_.front().source) return nullptr;
    if (out_.front().bytes.size() == ob().head_sent || !out_[1].bytes.empty()) return nullptr;
    file_producer* f = zero_copy_file(out_[1].source);
    return f && *f->remaining() > separate_head_min ? f : nullptr;
}

// Runs while there is output: with the queue empty it ends (an idle channel keeps
// no sender frame), and the next push starts it again.
sender_task channel_state::send_loop() {
    struct running {  // however the frame ends (finished or destroyed), the block forgets it
        channel_state* st;
        ~running() {
            st->ob().sender = nullptr;
            st->out_.release_if_idle();  // an echo's block goes back after each reply
        }
    } guard{this};
    output_block& blk = ob();  // stays while the sender runs
    std::array<iovec, max_iov> iov;
    bool socket_full = false;  // the last sendfile sent less than it was offered
    while (!closed_) {
        if (!blk.items.empty() && blk.items.front().source && !fill_producer(0)) break;
        drop_spent(blk);
        if (blk.items.empty()) {
            blk.flushed.notify_all();
            if (closing_) break;
            co_return;
        }
        // A regular file at the head with more than zero_copy_min left goes
        // straight from the page cache to the socket (sendfile), to its end; the
        // pieces before it have left in their own send (with MSG_MORE), or, for a
        // file over separate_head_min, the one piece before it goes with its first
        // sendfile as the head. The pieces stay in the fifo while the kernel reads
        // them and the file (blk.in_flight), so discard_buffers() cannot close the file
        // under the call. A sendfile that stopped short found the socket full: the
        // next one waits for room first, instead of failing with EAGAIN and then
        // waiting.
        std::span<const std::byte> head;  // the front piece's unsent bytes, sent first
        file_producer* f = zero_copy_head();
        if (!f && (f = file_behind_head()))
            head = std::as_bytes(std::span(blk.items.front().bytes)).subspan(blk.head_sent);
        if (f) {
            blk.in_flight = head.empty() ? 1 : 2;
            std::size_t sent = 0;
            try {
                if (socket_full) {
                    socket_full = false;
                    int ready = co_await sock_.wait_writable();
                    (void)ready;  // an error shows in the sendfile below
                }
                const std::size_t want = *f->remaining();
                sent = co_await sock_.sendfile(f->fd(), f->offset(), want, head);
                const std::size_t of_file = sent - std::min(sent, head.size());
                socket_full = of_file > 0 && of_file < want;
            } catch (const std::system_error& e) {
                send_failed(e.code());
                break;
            }
            blk.in_flight = 0;
            if (!head.empty()) {  // what left of the head, then maybe none of the file yet
                const std::size_t of_head = std::min(sent, head.size());
                blk.queued -= of_head;
                count_sent(of_head, false);
                blk.head_sent += of_head;
                sent -= of_head;
                if (blk.queued <= opt_.low_water) blk.drained.notify_all();
                if (blk.head_sent < blk.items.front().bytes.size())
                    continue;  // the rest of it first
                keep_spare_string(blk.items.front().bytes);
                blk.items.pop_front();
                blk.head_sent = 0;
                if (sent == 0) continue;  // the next sendfile tells a full socket from the end
            }
            count_sent(sent, true);
            f->consumed(sent);  // 0: the file ended early (truncated); it is closed
            continue;
        }
        // Gather pieces from the front. A producer is pulled when the gather
        // reaches it, so a response head and its small file leave in one send; a
        // producer with more to give ends the gather, since its later chunks must
        // leave before the pieces queued after it (a file for sendfile gives
        // nothing here, and leaves by itself once the pieces before it have gone).
        std::size_t count = 0;
        std::size_t bytes = 0;
        bool more = false;  // a file for sendfile follows: MSG_MORE, one segment with it
        for (std::size_t i = 0; i < blk.items.size() && count < max_iov && bytes < max_send; ++i) {
            item& it = blk.items[i];
            if (i > 0 && it.source && !fill_producer(i)) {
                count = 0;
                break;
            }
            std::size_t skip = i == 0 ? blk.head_sent : 0;
            std::size_t len = it.bytes.size() - skip;
            if (len == 0) {
                if (it.source) {  // a file for sendfile: nothing after it goes first
                    more = true;
                    break;
                }
                continue;
            }
            iov[count++] = {it.bytes.data() + skip, len};
            bytes += len;
            blk.in_flight = i + 1;
            if (it.source) break;
        }
        if (closed_) break;  // a producer failed while gathering
        std::size_t sent = 0;
        try {
            auto pieces = std::span<const iovec>(iov.data(), count);
            send_options how{.more = more};  // named: no braced temporary in a co_await (GCC 12)
            if (tx_)
                sent = co_await transport_send_awaiter(*tx_, pieces);
            else
                sent = co_await sock_.sendv(pieces, how);
        } catch (const std::system_error& e) {
            send_failed(e.code());
            break;
        }
        blk.in_flight = 0;
        drop_sent(blk, sent);
    }
    output_done();
}

bool channel_state::satisfied(wait_kind kind) const noexcept {
    if (output_failed_ || closed_) return true;
    switch (kind) {
    case wait_kind::below_high_water: return out_.queued() <= opt_.high_water;
    case wait_kind::flushed: return out_.empty();
    case wait_kind::closed: return false;
    }
    return true;
}

task<void> channel_state::wait_slow(wait_kind kind) {
    while (!satisfied(kind)) {
        // The block stays while we wait on its event (it is not idle then).
        output_block& b = out_.make(r());
        event& e = kind == wait_kind::below_high_water ? b.drained
                   : kind == wait_kind::flushed        ? b.flushed
                                                       : b.ended;
        bool notified = co_await e.wait();
        out_.release_if_idle();
        if (!notified)  // cancelled (with_timeout)
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "channel wait");
    }
}

void channel_state::throw_if_failed(wait_kind kind) const {
    if (!output_failed_) return;
    const channel_extras* x = extras_.get();
    const std::error_code error =
        x ? x->send_error : std::make_error_code(std::errc::not_enough_memory);
    if (x && !x->producer_error.empty()) throw std::system_error(error, x->producer_error);
    if (error && kind != wait_kind::closed) throw std::system_error(error, "send");
}

void channel_state::start_closing() {
    closing_ = true;                            // now, even if the wait is never awaited
    if (output_failed_) close_now();            // the sender has stopped: nothing left to drain
    if (!closed_) kick_sender(out_.make(r()));  // with nothing queued, the sender closes
}

void channel_state::discard() noexcept {
    output_block* b = out_.get();
    if (!b) return;
    // Pieces referenced by a send in flight stay until it completes.
    while (b->items.size() > b->in_flight)
        b->items.pop_back();
    b->queued = 0;
    for (std::size_t i = 0; i < b->items.size(); ++i)
        b->queued += b->items[i].bytes.size();
    if (b->in_flight == 0) b->head_sent = 0;
    b->queued -= std::min(b->queued, b->head_sent);
    out_.release_if_idle();
}

// Both directions end: a TLS peer gets close_notify first (never waited for).
void channel_state::shut_down() noexcept {
    if (tx_) {
        tx_->shutdown_send();
        tx_->close();
    } else if (sock_) {
        ::shutdown(sock_.native_handle(), SHUT_RDWR);
    }
}

void channel_state::close_now() noexcept {
    if (closed_) return;
    closed_ = true;
    discard();
    shut_down();  // pending recv/send finish now
    output_ended();
}

}  // namespace detail

// --- channel -----------------------------------------------------------------

namespace {

task<void> drain(detail::channel_state* st) {
    channel::wait_awaiter closed{st, detail::wait_kind::closed};
    co_await closed;
}

}  // namespace

channel::channel() noexcept = default;
channel::channel(socket s, channel_options options)
    : state_(std::make_unique<detail::channel_state>(std::move(s), nullptr, options)) {}
channel::channel(std::unique_ptr<transport> t, channel_options options)
    : state_(std::make_unique<detail::channel_state>(socket{}, std::move(t), options)) {}
channel::channel(channel&&) noexcept = default;
channel& channel::operator=(channel&& o) noexcept {
    if (this != &o) {
        channel old(std::move(*this));  // lingers like any destroyed channel
        state_ = std::move(o.state_);
    }
    return *this;
}
namespace {

// A destroyed channel with output still queued: send it (up to the linger
// time), then close. The task owns the state, so nothing pushed is lost
// because the handler returned before the sender ran.
task<void> linger(std::unique_ptr<detail::channel_state> st) {
    try {
        co_await with_timeout(st->r(), drain(st.get()),
                              std::chrono::milliseconds(st->opt_.linger_ms));
    } catch (const std::system_error&) {
        // a reset peer or the linger time: the connection goes as it would have
    }
}

}  // namespace

channel::~channel() {
    if (!state_) return;
    auto& st = *state_;
    if (st.closed_ || st.output_failed_ || (st.out_.empty() && !st.closing_)) return;
    reactor& r = st.r();
    st.start_closing();
    spawn(r, linger(std::move(state_)), "channel linger");
}

std::size_t channel::buffered() const noexcept { return state_->room_.size(); }
std::size_t channel::buffer_capacity() const noexcept { return state_->room_.capacity(); }
bool channel::at_eof() const noexcept { return state_->eof_; }
std::uint64_t channel::received() const noexcept { return state_->received_; }
bool channel::read_waiting() const noexcept { return state_->reading_ != nullptr; }
std::error_code channel::close_reason() const noexcept { return state_->reason(); }
void channel::set_read_deadline(reactor::clock::time_point t) noexcept {
    detail::channel_state& st = *state_;
    st.has_deadline_ = true;
    if (st.extras_) [[likely]]  // (a channel that sets deadlines has them after its first)
        st.extras_->deadline = t;
    else if (detail::channel_extras* x = st.try_extras())
        x->deadline = t;
}
void channel::clear_read_deadline() noexcept { state_->has_deadline_ = false; }
void channel::set_idle_timeout(std::chrono::milliseconds d) noexcept {
    state_->opt_.idle_timeout_ms =
        d.count() > 0 ? detail::saturated(static_cast<std::uint64_t>(d.count())) : 0;
}
void channel::set_max_line(std::size_t n) noexcept { state_->opt_.max_line = detail::saturated(n); }
void channel::set_max_buffer(std::size_t n) noexcept {
    state_->opt_.max_buffer = detail::saturated(n);
}
void channel::set_high_water(std::size_t high, std::size_t low) noexcept {
    state_->opt_.high_water = detail::saturated(high);
    state_->opt_.low_water = detail::saturated(std::min(low, high));
}

void channel::push(std::string data) { state_->push_string(std::move(data)); }
void channel::push(std::string_view data) { state_->push_bytes(data); }
void channel::push(std::span<const std::byte> data) {
    state_->push_bytes(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}
void channel::push(producer p) { state_->push_producer(std::move(p)); }

channel::wait_awaiter channel::write(std::string data) {
    push(std::move(data));
    return {state_.get(), detail::wait_kind::below_high_water};
}

channel::wait_awaiter channel::write(std::string_view data) {
    push(data);
    return {state_.get(), detail::wait_kind::below_high_water};
}

channel::wait_awaiter channel::write(const char* data) { return write(std::string_view(data)); }

channel::wait_awaiter channel::write(producer p) {
    push(std::move(p));
    return {state_.get(), detail::wait_kind::below_high_water};
}

channel::wait_awaiter channel::flush() { return {state_.get(), detail::wait_kind::flushed}; }

channel::wait_awaiter channel::close_when_done() {
    state_->start_closing();
    return {state_.get(), detail::wait_kind::closed};
}

void channel::discard_buffers() noexcept { state_->discard(); }
void channel::close() noexcept { state_->close_now(); }
void channel::shutdown_send() noexcept {
    if (state_->tx_)
        state_->tx_->shutdown_send();
    else
        state_->sock_.shutdown_send();
}
std::size_t channel::queued() const noexcept { return state_->closed_ ? 0 : state_->out_.queued(); }
channel::send_counters channel::sent() const noexcept { return state_->counters_; }
bool channel::closed() const noexcept { return state_->closed_; }
socket& channel::sock() noexcept {
    if (state_->tx_)
        if (socket* s = state_->tx_->underlying_socket()) return *s;
    return state_->sock_;
}
transport* channel::via() const noexcept { return state_->tx_.get(); }
reactor& channel::context() const noexcept { return state_->r(); }

}  // namespace coronet
