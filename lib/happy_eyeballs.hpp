#pragma once
// happy_eyeballs(): connect to the first of several addresses that answers (RFC 8305).
//
// The addresses of one name are tried IPv6 first, the families interleaved;
// the next attempt starts attempt_delay (250 ms) after the last one, or as
// soon as one fails, while the earlier ones keep going; the first to connect
// wins and the others are cancelled and closed. So a name whose first address
// drops SYNs, or has no listener, still connects at once through the next.
// Awaiter-style like the socket's (operations and a reactor timer, no task):
// coro/connect.hpp resolves a name and puts a deadline around it. A
// with_timeout() around it cancels every attempt. Medusa ancestor:
// asyncore.dispatcher.connect(), times several.

#include <chrono>
#include <coroutine>
#include <memory>
#include <string>
#include <vector>

#include <coronet/lib/address.hpp>
#include <coronet/lib/operation.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/socket.hpp>

namespace coronet {

// How happy_eyeballs() races its attempts.
struct happy_eyeballs_options {
    std::chrono::milliseconds attempt_delay{250};  // RFC 8305's Connection Attempt Delay
    connect_options connect{};                     // for the socket that wins
};

// The addresses in the order RFC 8305 tries them: IPv6 first, then the families alternating,
// each family keeping its own order.
std::vector<address> interleave_families(const std::vector<address>& addresses);

class happy_eyeballs_awaiter;

namespace detail {
// An operation the race starts (a connect or the timer), and who to tell.
struct eyeball_op {
    operation op;
    happy_eyeballs_awaiter* owner = nullptr;
    int index = -1;  // the attempt (-1: the timer)
};
}  // namespace detail

// co_await: the socket of the first address that connected; throws
// std::system_error with the last attempt's error when none did.
class [[nodiscard]] happy_eyeballs_awaiter {
public:
    happy_eyeballs_awaiter(reactor& r, std::vector<address> addresses,
                           happy_eyeballs_options options);
    ~happy_eyeballs_awaiter();
    happy_eyeballs_awaiter(const happy_eyeballs_awaiter&) = delete;
    happy_eyeballs_awaiter& operator=(const happy_eyeballs_awaiter&) = delete;

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        waiter_ = h;
        if constexpr (requires { h.promise().cancel_slot(); }) slot_ = h.promise().cancel_slot();
        return begin();
    }
    socket await_resume();

    // (reactor callback)
    static void on_op_done(operation& op);

private:
    struct attempt {
        detail::eyeball_op op;
        address to;
        int fd = -1;
    };
    bool begin();
    void advance();
    void failed(attempt& a, int result) noexcept;
    void finish(int result);
    void close_fd(attempt& a) noexcept;

    reactor& reactor_;
    happy_eyeballs_options options_;
    std::unique_ptr<attempt[]> attempts_;  // never moved: the kernel holds their addresses
    int count_ = 0, next_ = 0, in_flight_ = 0;
    int winner_ = -1;
    int result_ = 0;  // the failure (-errno or a coronet::errc) when none connected
    detail::eyeball_op timer_;
    bool finished_ = false, suspended_ = false, posted_ = false, resumed_ = false;
    std::coroutine_handle<> waiter_;
    cancel_slot* slot_ = nullptr;
    cancel_link link_;
};

// Connects to the first of addresses to answer, RFC 8305 style.
inline happy_eyeballs_awaiter happy_eyeballs(reactor& r, std::vector<address> addresses,
                                             happy_eyeballs_options options = {}) {
    return {r, std::move(addresses), options};
}

}  // namespace coronet
