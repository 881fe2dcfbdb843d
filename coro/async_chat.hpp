#pragma once
// async_chat: Medusa's callback form of a channel, for ports of asynchat code.
//
// Subclass it, override collect_incoming_data() and found_terminator(), and start it on an
// accepted socket (start<T>) or create it and connect() it (handle_connect() on success).
// A coroutine underneath drives it: it receives up to ac_in_buffer_size bytes at a time and
// splits them by the terminator exactly as CPython's asynchat.handle_read does (string, byte
// count or none; the terminator is re-read on every pass, so pipelined requests work). Output
// is the channel's producer fifo (push, push_with_producer, close_when_done). The object lives
// on the heap and its driver keeps it alive until it is closed, as asyncore's socket_map does.
// Where asynchat had no rule, or a risky one: no event follows close(); handle_close() runs at
// most once; the channel is closed after handle_error(); a string-terminated item is bounded
// by max_line; push() sends on a later loop turn, so close() right after push() drops the
// bytes (asynchat's push tried to send at once): use close_when_done().
// Medusa ancestor: asynchat.async_chat (and asyncore.dispatcher's handle_* events).

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <coronet/coro/channel.hpp>
#include <coronet/coro/connect.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/scan.hpp>  // find_prefix_at_end, asynchat's helper
#include <coronet/coro/task.hpp>
#include <coronet/lib/address.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

namespace coronet {

// The type of no_terminator (asynchat's None terminator).
struct no_terminator_t {
    explicit constexpr no_terminator_t(int) noexcept {}
    friend constexpr bool operator==(no_terminator_t, no_terminator_t) noexcept { return true; }
};
// set_terminator(no_terminator): collect everything, never call found_terminator().
inline constexpr no_terminator_t no_terminator{0};

namespace detail {
// One-byte elements: char, unsigned char, std::byte, ...
template <class T>
concept byte_element = sizeof(T) == 1 && !std::is_same_v<std::remove_cv_t<T>, bool> &&
                       (std::is_integral_v<T> || std::is_same_v<std::remove_cv_t<T>, std::byte>);
// Character types (and bool): integral, but never meant as a byte count.
template <class T>
concept character = std::is_same_v < std::remove_cv_t<T>,
bool > || std::is_same_v<std::remove_cv_t<T>, char> ||
    std::is_same_v<std::remove_cv_t<T>, signed char> ||
    std::is_same_v<std::remove_cv_t<T>, unsigned char> ||
    std::is_same_v<std::remove_cv_t<T>, wchar_t> || std::is_same_v<std::remove_cv_t<T>, char8_t> ||
    std::is_same_v<std::remove_cv_t<T>, char16_t> || std::is_same_v<std::remove_cv_t<T>, char32_t>;
// What set_terminator takes as a byte count: any other integer.
template <class T>
concept byte_count = std::integral<T> && !character<T>;
// Contiguous bytes that async_chat::push's plain overloads do not already take.
template <class R>
concept other_byte_range =
    std::ranges::contiguous_range<const R> && std::ranges::sized_range<const R> &&
    byte_element<std::ranges::range_value_t<const R>> && !std::is_array_v<R> &&
    !std::is_convertible_v<const R&, std::string_view> &&
    !std::is_convertible_v<const R&, std::span<const std::byte>>;
}  // namespace detail

class async_chat : public std::enable_shared_from_this<async_chat> {
public:
    // What get_terminator() returns: none, a string, or the bytes still to count.
    using terminator = std::variant<no_terminator_t, std::string, std::size_t>;

    virtual ~async_chat();
    async_chat(const async_chat&) = delete;
    async_chat& operator=(const async_chat&) = delete;

    // Makes a T from args on the heap and starts it on the connected socket s.
    template <class T, class... A>
        requires std::derived_from<T, async_chat>
    static std::shared_ptr<T> start(reactor& r, socket s, A&&... args);
    // The same over a transport: TLS, or an in-memory pipe (tests).
    template <class T, class... A>
        requires std::derived_from<T, async_chat>
    static std::shared_ptr<T> start(reactor& r, std::unique_ptr<transport> t, A&&... args);
    // Makes a T from args on the heap, not yet connected: call connect() next.
    template <class T, class... A>
        requires std::derived_from<T, async_chat>
    static std::shared_ptr<T> create(reactor& r, A&&... args);
    // Connects (objects from create() only): handle_connect() on success, else handle_error().
    void connect(const address& to);
    // The same to a host name: resolved on the loop, its addresses raced (coro/connect.hpp).
    void connect(std::string host, unsigned port, connect_host_options options = {});

    // --- events, called on the reactor's thread; an exception escaping one goes to handle_error
    // ---

    // Bytes of the current item (asynchat's collect_incoming_data); valid during the call only.
    virtual void collect_incoming_data(std::string_view data) = 0;
    // The terminator was reached (it is not passed to collect_incoming_data).
    virtual void found_terminator() = 0;
    // An outbound connection is established (default: logs `unhandled connect event`, debug).
    virtual void handle_connect();
    // The peer closed, or close_when_done() finished; called at most once (default: logs
    // `unhandled close event`, debug, and close()s, discarding unsent output). If it leaves the
    // connection open, the object lives on (sending) until close() or close_when_done().
    virtual void handle_close();
    // A handler threw or the connection failed (default: logs `uncaptured exception, closing
    // channel <repr> (...)` and calls handle_close()). The channel is closed afterwards anyway.
    virtual void handle_error(std::exception_ptr error);
    // How logs name this channel: `<type state peer fd=N>`.
    virtual std::string repr() const;

    // --- input ---

    // A string terminator; "" means no terminator.
    void set_terminator(std::string_view term);
    // A byte count (asynchat's integer terminator); 0 means no terminator; negative counts throw
    // std::invalid_argument.
    template <detail::byte_count Int>
    void set_terminator(Int count);
    // A character is not a count (set_terminator('\n') would count 10 bytes): pass "\n".
    template <detail::character Char>
    void set_terminator(Char) = delete;
    // No terminator: everything goes to collect_incoming_data().
    void set_terminator(no_terminator_t) noexcept { terminator_ = no_terminator; }
    // asynchat's set_terminator(None) is set_terminator(no_terminator) here.
    void set_terminator(std::nullptr_t) = delete;
    // The current terminator; a count goes down as bytes arrive and is 0 once reached.
    const terminator& get_terminator() const noexcept { return terminator_; }

    // Longest item a string terminator may end (default 64 KiB): beyond it, handle_error()
    // gets std::system_error(errc::line_too_long) and the channel closes.
    void set_max_line(std::size_t n) noexcept { max_line_ = n; }
    std::size_t max_line() const noexcept { return max_line_; }

    // Bytes asked of each receive (asynchat's ac_in_buffer_size).
    std::size_t ac_in_buffer_size = 65536;
    // Kept for ports; the channel gathers queued pieces into vectored sends, so it has no effect.
    std::size_t ac_out_buffer_size = 65536;

    // --- output ---

    // Queues bytes (copied, or moved from a std::string); anything not byte-like does not compile.
    void push(std::string data);
    void push(std::string_view data);
    void push(const char* data) { push(std::string_view(data)); }
    void push(std::span<const std::byte> data);
    template <detail::other_byte_range Bytes>
    void push(
        const Bytes& data) {  // vector<unsigned char>, std::array<char, N>, span<const char>...
        push(std::as_bytes(std::span(std::ranges::data(data), std::ranges::size(data))));
    }
    void push(std::nullptr_t) = delete;
    // Queues a producer, drained when it reaches the front of the fifo.
    void push_with_producer(producer p);
    // Closes once everything queued so far is sent (then handle_close() runs, as in asynchat);
    // later pushes are dropped.
    void close_when_done();
    // Closes now: unsent output is dropped and no event is delivered after this.
    void close() noexcept;
    // Drops buffered input and unsent output ("emergencies only").
    void discard_buffers() noexcept;
    // Bytes queued and not yet handed to the kernel (including those waiting for connect()).
    std::size_t queued() const noexcept;

    // True while a connection is up and close() has not been called.
    bool connected() const noexcept;
    // True after close() (or once close_when_done() finished and closed the connection).
    bool closed() const noexcept;
    reactor& context() const noexcept { return *reactor_; }
    // The socket's descriptor (asyncore's fileno()); -1 until connected.
    int fileno() const noexcept { return fd_; }

protected:
    async_chat() = default;

private:
    struct close_wait;
    struct pending_item {
        std::string bytes;
        producer source;
    };

    void begin(reactor& r, socket s);
    void begin(reactor& r, std::unique_ptr<transport> t);
    void launch(reactor& r);
    void attach(socket s);
    void attach(std::unique_ptr<transport> t);
    void adopt(channel ch);
    void handle_read(std::string_view data);
    void consume(std::size_t n) noexcept;
    void set_count(std::size_t n) noexcept { terminator_ = n; }
    void report(std::exception_ptr error) noexcept;
    void wake_driver() noexcept;
    static task<void> drive(std::shared_ptr<async_chat> self, std::optional<address> to);
    static task<socket> connect_socket(reactor& r, address to);

    reactor* reactor_ = nullptr;
    terminator terminator_ = no_terminator;
    std::size_t max_line_ = 64 * 1024;
    std::size_t line_ = 0;        // bytes of the current string-terminated item handed over
    std::string in_;              // held-back input (asynchat's ac_in_buffer)
    std::string_view window_;     // input not yet handed over: in in_ or the channel's buffer
    bool window_in_own_ = false;  // window_ points into in_
    std::vector<pending_item> pending_;  // output queued before the channel exists
    std::size_t pending_bytes_ = 0;
    bool started_ = false;                    // start() or connect() was called
    bool closing_ = false;                    // close_when_done() was called
    bool closed_ = false;                     // close() was called
    cancel_slot connect_slot_;                // cancels a pending connect on close()
    std::coroutine_handle<> driver_waiting_;  // the driver, waiting for close()/close_when_done()
    std::string peer_;
    int fd_ = -1;
    channel ch_;
    std::string host_;  // connect(host, port): the name, its port, and how
    unsigned host_port_ = 0;
    connect_host_options host_options_{};
};

template <detail::byte_count Int>
void async_chat::set_terminator(Int count) {
    if constexpr (std::is_signed_v<Int>) {
        if (count < 0)
            throw std::invalid_argument(
                "set_terminator: the number of received bytes must be positive");
    }
    set_count(static_cast<std::size_t>(count));
}

template <class T, class... A>
    requires std::derived_from<T, async_chat> std::shared_ptr<T> async_chat::start(reactor& r,
                                                                                   socket s,
                                                                                   A&&... args) {
        auto p = std::make_shared<T>(std::forward<A>(args)...);
        static_cast<async_chat&>(*p).begin(r, std::move(s));
        return p;
    }

template <class T, class... A>
    requires std::derived_from<T, async_chat> std::shared_ptr<T> async_chat::start(
        reactor& r, std::unique_ptr<transport> t, A&&... args) {
        auto p = std::make_shared<T>(std::forward<A>(args)...);
        static_cast<async_chat&>(*p).begin(r, std::move(t));
        return p;
    }

template <class T, class... A>
    requires std::derived_from<T, async_chat> std::shared_ptr<T> async_chat::create(reactor& r,
                                                                                    A&&... args) {
        auto p = std::make_shared<T>(std::forward<A>(args)...);
        auto& base = static_cast<async_chat&>(*p);
        base.reactor_ = &r;
        base.connect_slot_.set_owner(&r);
        return p;
    }

}  // namespace coronet
