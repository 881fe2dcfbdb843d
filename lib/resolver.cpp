#include <coronet/lib/resolver.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <mutex>
#include <optional>
#include <system_error>

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <coronet/lib/error.hpp>

namespace coronet {
namespace {

static_assert(std::is_same_v<ares_socket_t, int>, "c-ares sockets are fds here");

void library_init() {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

// A c-ares status as an operation result.
int result_of_status(int status) noexcept {
    switch (status) {
    case ARES_SUCCESS: return 0;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME: return result_of(errc::host_not_found);
    case ARES_ETIMEOUT: return result_of(errc::dns_timed_out);
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED: return result_of(errc::dns_refused);
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return -ECANCELED;
    case ARES_ENOMEM: return -ENOMEM;
    case ARES_EBADNAME:
    case ARES_EBADFLAGS:
    case ARES_EBADHINTS:
    case ARES_EBADSTR: return -EINVAL;
    default: return result_of(errc::dns_failed);
    }
}

// host as an IPv4 or IPv6 literal with a numeric port, or nullopt.
std::optional<address> numeric(const std::string& host, const std::string& service) {
    in6_addr any{};
    if (inet_pton(AF_INET, host.c_str(), &any) != 1 && inet_pton(AF_INET6, host.c_str(), &any) != 1)
        return std::nullopt;
    unsigned port = 0;
    auto [end, ec] = std::from_chars(service.data(), service.data() + service.size(), port);
    if (service.empty() || ec != std::errc() || end != service.data() + service.size() ||
        port > 65535)
        return std::nullopt;
    return address::from_host_port(host, port);
}

ares_channel channel_of(ares_channeldata* c) noexcept { return c; }

}  // namespace

resolve_awaiter::resolve_awaiter(reactor& r, std::string host, std::string service,
                                 resolve_options options)
    : reactor_(r),
      host_(std::move(host)),
      service_(std::move(service)),
      options_(std::move(options)) {
    timer_.owner = this;
    timer_.op.code = op_code::timeout;
    timer_.op.set_on_done(&on_op_done);
    link_.set_op(&timer_.op);
}

resolve_awaiter::~resolve_awaiter() {
    abandon_all();
    if (slot_) slot_->unlink(link_);
    if (posted_ && !resumed_) reactor_.unpost(waiter_);  // the frame dies before its resumption
    if (channel_) ares_destroy(channel_of(std::exchange(channel_, nullptr)));  // closes its sockets
    for (fd_watch* w : watches_)
        delete w;
}

void resolve_awaiter::abandon_all() noexcept {
    reactor_.abandon(timer_.op);
    for (fd_watch* w : watches_) {
        reactor_.abandon(w->rd.op);
        reactor_.abandon(w->wr.op);
    }
}

bool resolve_awaiter::begin() {
    if (slot_ && slot_->requested()) {  // the scope was cancelled already
        result_ = -ECANCELED;
        return false;
    }
    // A literal needs no lookup. (c-ares 1.18 sends an IPv4 literal with
    // AF_UNSPEC to the DNS server anyway, and waits for its timeout.)
    if (auto literal = numeric(host_, service_);
        literal && (options_.family == AF_UNSPEC || options_.family == literal->family())) {
        addresses_.push_back(*literal);
        return false;
    }
    library_init();
    ares_options o{};
    o.sock_state_cb = &on_sock_state;
    o.sock_state_cb_data = this;
    o.timeout = static_cast<int>(options_.attempt_timeout.count());
    o.tries = std::max(1, options_.tries);
    ares_channel ch = nullptr;
    int status =
        ares_init_options(&ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (status != ARES_SUCCESS) {
        result_ = result_of_status(status);
        return false;
    }
    channel_ = ch;
    if (!options_.servers.empty() &&
        ares_set_servers_ports_csv(ch, options_.servers.c_str()) != ARES_SUCCESS) {
        result_ = -EINVAL;  // not IP[:PORT],...
        bad_servers_ = true;
        return false;
    }
    ares_addrinfo_hints hints{};
    hints.ai_family = options_.family;
    hints.ai_socktype = SOCK_STREAM;  // one entry per address (not one per socket type)
    ares_getaddrinfo(ch, host_.c_str(), service_.empty() ? nullptr : service_.c_str(), &hints,
                     &on_result, this);
    step(ARES_SOCKET_BAD, ARES_SOCKET_BAD, false);  // answered at once (/etc/hosts, a literal)?
    if (finished_) return false;
    if (slot_) slot_->link(link_);  // a cancel of the scope reaches the timer
    suspended_ = true;
    return true;
}

// One round: let c-ares act on a ready socket (or its timeouts), then watch
// what it now waits for. A watch that finds its fd ready at once is acted on
// in the same loop, not by recursion.
void resolve_awaiter::step(int read_fd, int write_fd, bool process) {
    for (;;) {
        if (process && !done_) ares_process_fd(channel_of(channel_), read_fd, write_fd);
        if (done_) return finish();
        read_fd = write_fd = ARES_SOCKET_BAD;
        if (!arm(read_fd, write_fd)) break;
        if (done_) return finish();  // a watch failed
        process = true;
    }
    arm_timer();
}

// Starts a poll on every socket c-ares waits on and no poll watches yet;
// true (with the fd) when one finished at once.
bool resolve_awaiter::arm(int& read_fd, int& write_fd) {
    for (fd_watch* w : watches_) {
        if (w->closed) continue;
        for (detail::resolver_op* d : {&w->rd, &w->wr}) {
            bool wanted = d->write ? w->want_write : w->want_read;
            if (!wanted || d->op.state != op_state::idle) continue;
            d->op.code = op_code::poll;
            d->op.fd = d->fd;
            d->op.poll_mask = d->write ? POLLOUT : POLLIN;
            d->op.set_on_done(&on_op_done);
            d->op.result = 0;
            if (!reactor_.start(d->op)) continue;
            if (d->op.result < 0) {  // the backend cannot watch it (select: fd >= FD_SETSIZE)
                done_ = true;
                result_ = d->op.result;
                return true;
            }
            (d->write ? write_fd : read_fd) = d->fd;
            return true;
        }
    }
    return false;
}

// Keeps the timer at c-ares' next timeout (at most a second away: the timer
// also carries a cancel from the enclosing scope).
void resolve_awaiter::arm_timer() {
    timeval most{1, 0}, tv{};
    timeval* next = ares_timeout(channel_of(channel_), &most, &tv);
    auto deadline = reactor::clock::now() + std::chrono::seconds(next->tv_sec) +
                    std::chrono::microseconds(next->tv_usec);
    if (timer_.op.state == op_state::pending) {
        if (timer_.op.deadline <= deadline) return;
        reactor_.abandon(timer_.op);  // c-ares needs us sooner
    }
    timer_.op.deadline = deadline;
    timer_.op.result = 0;
    reactor_.start(timer_.op);  // a timeout never finishes at once
}

void resolve_awaiter::finish() {
    if (finished_) return;
    finished_ = true;
    abandon_all();
    // The channel goes now, closing its sockets (not from inside a c-ares call:
    // every caller of finish() is outside one).
    if (channel_) ares_destroy(channel_of(std::exchange(channel_, nullptr)));
    if (suspended_) {
        posted_ = true;
        reactor_.post(waiter_);  // last: the waiter may destroy this awaiter
    }
}

void resolve_awaiter::on_op_done(operation& op) {
    auto& d = reinterpret_cast<detail::resolver_op&>(op);  // op is its first member
    resolve_awaiter* self = d.owner;
    if (self->finished_) return;
    bool cancelled = op.result == -ECANCELED || (self->slot_ && self->slot_->requested());
    if (cancelled) {
        ares_cancel(channel_of(self->channel_));  // on_result(ARES_ECANCELLED)
        self->done_ = true;
        self->result_ = -ECANCELED;
        return self->finish();
    }
    if (op.result < 0) {  // the watch failed
        self->done_ = true;
        self->result_ = op.result;
        return self->finish();
    }
    if (d.fd < 0) return self->step(ARES_SOCKET_BAD, ARES_SOCKET_BAD, true);  // timeouts
    self->step(d.write ? ARES_SOCKET_BAD : d.fd, d.write ? d.fd : ARES_SOCKET_BAD, true);
}

void resolve_awaiter::on_sock_state(void* data, int fd, int readable, int writable) {
    auto* self = static_cast<resolve_awaiter*>(data);
    fd_watch* w = nullptr;
    for (fd_watch* c : self->watches_)
        if (!c->closed && c->rd.fd == fd) w = c;
    if (!w) {
        if (!readable && !writable) return;
        w = new fd_watch;
        for (detail::resolver_op* d : {&w->rd, &w->wr}) {
            d->owner = self;
            d->fd = fd;
        }
        w->wr.write = true;
        self->watches_.push_back(w);
    }
    w->want_read = readable != 0;
    w->want_write = writable != 0;
    if (!readable) self->reactor_.abandon(w->rd.op);
    if (!writable) self->reactor_.abandon(w->wr.op);
    if (!readable && !writable) {  // c-ares closes it next
        w->closed = true;
        self->reactor_.backend_forget(fd);
    }
}

void resolve_awaiter::on_result(void* data, int status, int, ares_addrinfo* result) {
    auto* self = static_cast<resolve_awaiter*>(data);
    self->done_ = true;
    self->result_ = result_of_status(status);
    if (result) {
        for (ares_addrinfo_node* n = result->nodes; n; n = n->ai_next) {
            address a(n->ai_addr, n->ai_addrlen);
            bool seen = std::any_of(
                self->addresses_.begin(), self->addresses_.end(), [&](const address& b) {
                    return b.size() == a.size() &&
                           std::equal(reinterpret_cast<const char*>(a.data()),
                                      reinterpret_cast<const char*>(a.data()) + a.size(),
                                      reinterpret_cast<const char*>(b.data()));
                });
            if (!seen) self->addresses_.push_back(a);
        }
        ares_freeaddrinfo(result);
    }
    if (self->result_ == 0 && self->addresses_.empty())
        self->result_ = result_of(errc::host_not_found);
}

std::vector<address> resolve_awaiter::await_resume() {
    resumed_ = true;
    if (slot_) {
        slot_->unlink(link_);
        if (result_ == -ECANCELED) slot_->mark_cut_short();
    }
    if (bad_servers_)
        throw std::system_error(error_of(result_),
                                "resolve '" + host_ + "': DNS servers '" + options_.servers +
                                    "' are not IP[:PORT],... (\"127.0.0.1:5353\")");
    if (result_ < 0) throw std::system_error(error_of(result_), "resolve '" + host_ + "'");
    return std::move(addresses_);
}

}  // namespace coronet
