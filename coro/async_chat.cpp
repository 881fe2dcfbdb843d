#include <coronet/coro/async_chat.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <system_error>
#include <typeinfo>

#include <coronet/coro/spawn.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/log.hpp>

namespace coronet {
namespace {

std::string type_name(const std::type_info& type) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(
        abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
    return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

// "std::runtime_error: what()", as asyncore's handle_error shows "(type:value ...)".
std::string describe(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return type_name(typeid(e)) + ": " + e.what();
    } catch (...) {
        return "an exception not derived from std::exception";
    }
}

}  // namespace

// The driver waits here when handle_close() left the connection open.
struct async_chat::close_wait {
    async_chat* self;
    bool await_ready() const noexcept { return self->closed_ || self->closing_; }
    void await_suspend(std::coroutine_handle<> h) noexcept { self->driver_waiting_ = h; }
    void await_resume() const noexcept {}
    ~close_wait() { self->driver_waiting_ = nullptr; }  // also when the frame is destroyed
};

async_chat::~async_chat() = default;

// --- starting ----------------------------------------------------------------

void async_chat::begin(reactor& r, socket s) {
    attach(std::move(s));
    launch(r);
}

void async_chat::begin(reactor& r, std::unique_ptr<transport> t) {
    attach(std::move(t));
    launch(r);
}

void async_chat::launch(reactor& r) {
    reactor_ = &r;
    connect_slot_.set_owner(&r);
    started_ = true;
    spawn(r, drive(shared_from_this(), std::nullopt), "async_chat");
}

void async_chat::connect(const address& to) {
    if (!reactor_)
        throw std::logic_error("async_chat::connect: make the object with async_chat::create");
    if (started_) throw std::logic_error("async_chat::connect: already started");
    started_ = true;
    peer_ = to.to_string();
    spawn(*reactor_, drive(shared_from_this(), to), "async_chat");
}

void async_chat::connect(std::string host, unsigned port, connect_host_options options) {
    if (!reactor_)
        throw std::logic_error("async_chat::connect: make the object with async_chat::create");
    if (started_) throw std::logic_error("async_chat::connect: already started");
    started_ = true;
    host_ = std::move(host);
    host_port_ = port;
    host_options_ = std::move(options);
    spawn(*reactor_, drive(shared_from_this(), std::nullopt), "async_chat");
}

// Wraps the connected socket in a channel and hands it what was queued before.
void async_chat::attach(socket s) {
    fd_ = s.native_handle();
    if (peer_.empty()) {
        try {
            peer_ = s.peer_address().to_string();
        } catch (...) {  // the peer is gone already; repr() just lacks its address
        }
    }
    adopt(channel(std::move(s),
                  channel_options{.recv_size = std::max<std::size_t>(ac_in_buffer_size, 1)}));
}

void async_chat::attach(std::unique_ptr<transport> t) {
    if (socket* s = t->underlying_socket()) fd_ = s->native_handle();
    if (peer_.empty()) peer_ = t->peer_name();
    adopt(channel(std::move(t),
                  channel_options{.recv_size = std::max<std::size_t>(ac_in_buffer_size, 1)}));
}

// Takes the connected channel and hands it what was queued before.
void async_chat::adopt(channel ch) {
    ch_ = std::move(ch);
    for (auto& item : pending_) {
        if (item.source)
            ch_.push(std::move(item.source));
        else
            ch_.push(std::move(item.bytes));
    }
    pending_.clear();
    pending_bytes_ = 0;
    if (closing_) static_cast<void>(ch_.close_when_done());  // sets the flag now; nobody awaits it
}

task<socket> async_chat::connect_socket(reactor& r, address to) {
    co_return co_await socket::connect(r, to);
}

// asyncore's loop, for one channel: connect, then receive and split until the end of stream,
// then handle_close(). The frame owns `self`: the object lives at least as long as this runs.
task<void> async_chat::drive(std::shared_ptr<async_chat> self, std::optional<address> to) {
    async_chat& c = *self;
    bool ok = !c.closed_;
    if (ok && (to || !c.host_.empty())) {
        std::exception_ptr error;
        try {
            auto connecting =
                to ? connect_socket(*c.reactor_, *to)
                   : coronet::connect(*c.reactor_, c.host_, c.host_port_, c.host_options_);
            connecting.set_cancel_slot(&c.connect_slot_);  // close() cancels it
            c.attach(co_await std::move(connecting));
        } catch (...) {
            error = std::current_exception();
        }
        if (c.closed_) {  // close() while connecting: no event, not even the failure
            ok = false;
        } else if (error) {
            c.report(error);
            ok = false;
        } else {
            try {
                c.handle_connect();
            } catch (...) {
                c.report(std::current_exception());
                ok = false;
            }
        }
    }
    while (ok && !c.closed_) {
        std::optional<std::string_view> data;
        std::exception_ptr error;
        bool again = false;
        try {
            data = co_await c.ch_.read_some(std::max<std::size_t>(c.ac_in_buffer_size, 1));
        } catch (const std::system_error& e) {
            // A receive that would block is no error (asynchat catches BlockingIOError). The
            // backends wait for readiness themselves, but io_uring has been seen to complete a
            // socket operation with -EAGAIN after a spurious wakeup (kernel 6.18): try again.
            again = e.code() == std::errc::resource_unavailable_try_again ||
                    e.code() == std::errc::operation_would_block;
            if (!again) error = std::current_exception();
        } catch (...) {
            error = std::current_exception();
        }
        if (c.closed_) break;  // close() while we waited: no more events
        if (again) continue;
        if (error) {
            c.report(error);
            break;
        }
        if (!data) {  // end of stream, or close_when_done() has finished: asyncore's handle_close
            try {
                c.handle_close();
            } catch (...) {
                c.report(std::current_exception());
                break;
            }
            // handle_close() may keep the connection open to go on sending: wait for its close.
            while (!c.closed_ && !c.ch_.closed()) {
                if (c.closing_) {
                    co_await c.ch_.close_when_done();
                    break;
                }
                co_await close_wait{&c};
            }
            break;
        }
        try {
            c.handle_read(*data);
        } catch (...) {
            c.window_ = {};  // it may point into the channel's buffer
            c.report(std::current_exception());
            break;
        }
    }
    c.close();
}

// --- input: asynchat.async_chat.handle_read, case for case ------------------

void async_chat::set_terminator(std::string_view term) { terminator_ = std::string(term); }

void async_chat::consume(std::size_t n) noexcept {
    window_.remove_prefix(std::min(n, window_.size()));
}

void async_chat::handle_read(std::string_view data) {
    // window_ is asynchat's ac_in_buffer. Bytes held back from the last receive (a possible
    // start of the terminator) are joined with the new ones; otherwise work on the channel's
    // buffer directly and copy only what is held back at the end. in_ is not touched while
    // handlers run, so the views they get stay valid (discard_buffers() only empties window_).
    if (!window_.empty()) {
        std::size_t skip = static_cast<std::size_t>(window_.data() - in_.data());
        std::size_t keep = window_.size();
        in_.erase(0, skip);
        in_.resize(keep);
        in_.append(data);
        window_ = in_;
        window_in_own_ = true;
    } else {
        window_ = data;
        window_in_own_ = false;
    }

    // Bytes of a string-terminated item: at most max_line_, or errc::line_too_long.
    auto check_line = [this](std::size_t more) {
        if (line_ > max_line_ || more > max_line_ - line_)
            throw std::system_error(make_error_code(errc::line_too_long), "async_chat");
        line_ += more;
    };

    // The terminator is read again on every pass: found_terminator() may change it, and the
    // new one applies at once to the bytes already here (pipelining). Like asynchat, each
    // state change follows the handler call it belongs to.
    while (!window_.empty() && !closed_) {
        const std::string_view buf = window_;
        const std::size_t lb = buf.size();
        if (const auto* count = std::get_if<std::size_t>(&terminator_); count && *count > 0) {
            // Integer terminator: count bytes down across receives.
            line_ = 0;
            const std::size_t n = *count;
            if (lb < n) {
                collect_incoming_data(buf);
                window_ = {};
                if (auto* left = std::get_if<std::size_t>(&terminator_))
                    *left = *left > lb ? *left - lb : 0;
            } else {
                collect_incoming_data(buf.substr(0, n));
                consume(n);
                terminator_ = std::size_t{0};
                found_terminator();
            }
        } else if (const auto* term = std::get_if<std::string>(&terminator_);
                   term && !term->empty()) {
            // 3 cases: the terminator is in the buffer (hand over what precedes it, unless that
            // is empty: asynchat's "source of subtle bugs"); the buffer ends with a prefix of it
            // (hand over what precedes the prefix and wait for more); neither (hand over all).
            const std::size_t term_len = term->size();
            const std::size_t index = find_terminator(buf, *term);
            if (index != std::string_view::npos) {
                check_line(index);
                if (index > 0) collect_incoming_data(buf.substr(0, index));
                consume(index + term_len);
                line_ = 0;
                found_terminator();
            } else if (const std::size_t prefix = find_prefix_at_end(buf, *term); prefix > 0) {
                if (prefix != lb) {
                    check_line(lb - prefix);
                    collect_incoming_data(buf.substr(0, lb - prefix));
                    consume(lb - prefix);
                }
                break;
            } else {
                check_line(lb);
                collect_incoming_data(buf);
                window_ = {};
            }
        } else {
            // No terminator (no_terminator, 0 or ""): collect it all.
            line_ = 0;
            collect_incoming_data(buf);
            window_ = {};
        }
    }
    if (!window_.empty() && !window_in_own_) {  // keep the held-back bytes past the next receive
        in_.assign(window_);
        window_ = in_;
        window_in_own_ = true;
    }
}

// --- output --------------------------------------------------------------------

void async_chat::push(std::string data) {
    if (closed_ || closing_ || data.empty()) return;  // after close_when_done: never sent
    if (ch_) return ch_.push(std::move(data));
    pending_bytes_ += data.size();
    pending_.push_back({std::move(data), {}});
}

void async_chat::push(std::string_view data) {
    if (closed_ || closing_ || data.empty()) return;
    if (ch_) return ch_.push(data);
    push(std::string(data));
}

void async_chat::push(std::span<const std::byte> data) {
    push(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

void async_chat::push_with_producer(producer p) {
    if (closed_ || closing_ || !p) return;
    if (ch_) return ch_.push(std::move(p));
    pending_.push_back({{}, std::move(p)});
}

void async_chat::close_when_done() {
    if (closed_ || closing_) return;
    closing_ = true;
    if (ch_) static_cast<void>(ch_.close_when_done());  // sets the flag now; the driver awaits it
    wake_driver();
}

void async_chat::close() noexcept {
    if (closed_) return;
    closed_ = true;
    pending_.clear();
    pending_bytes_ = 0;
    connect_slot_.request();  // a connect in progress finishes now, with ECANCELED
    if (ch_) ch_.close();
    wake_driver();
}

void async_chat::discard_buffers() noexcept {
    window_ = {};
    line_ = 0;
    pending_.clear();
    pending_bytes_ = 0;
    if (ch_) ch_.discard_buffers();
}

std::size_t async_chat::queued() const noexcept {
    if (closed()) return 0;  // nothing more will be sent
    return pending_bytes_ + (ch_ ? ch_.queued() : 0);
}

bool async_chat::closed() const noexcept { return closed_ || (ch_ && ch_.closed()); }

bool async_chat::connected() const noexcept { return ch_ && !closed(); }

void async_chat::wake_driver() noexcept {
    if (auto h = std::exchange(driver_waiting_, nullptr)) reactor_->post(h);
}

// --- events ----------------------------------------------------------------------

void async_chat::handle_connect() { log(log_level::debug, "unhandled connect event"); }

void async_chat::handle_close() {
    log(log_level::debug, "unhandled close event");
    close();
}

void async_chat::handle_error(std::exception_ptr error) {
    log(log_level::error,
        "uncaptured exception, closing channel " + repr() + " (" + describe(error) + ")");
    handle_close();
}

std::string async_chat::repr() const {
    std::string out = "<" + type_name(typeid(*this));
    out += closed() ? " closed" : ch_ ? " connected" : started_ ? " connecting" : " idle";
    if (!peer_.empty()) out += " " + peer_;
    if (fd_ >= 0) out += " fd=" + std::to_string(fd_);
    return out + ">";
}

// An exception from a handler (or a failed connect or receive): handle_error(), then closed.
void async_chat::report(std::exception_ptr error) noexcept {
    try {
        handle_error(error);
    } catch (...) {
        try {
            log(log_level::error, "uncaptured exception in handle_error, closing channel " +
                                      repr() + " (" + describe(std::current_exception()) + ")");
        } catch (...) {
        }
    }
    close();
}

}  // namespace coronet
