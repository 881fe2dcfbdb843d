#include <coronet/coro/tls.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <stdexcept>
#include <utility>

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <coronet/coro/timeout.hpp>
#include <coronet/lib/awaiter.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/poison.hpp>

namespace coronet {
namespace {

constexpr std::size_t record_buffer = 17 * 1024;  // one full record and its header
// Bytes asked of one receive of records: a provided block (16 KiB by default) holds no
// more, and the room's own buffer of this size comes from its per-thread cache.
constexpr std::size_t receive_size = 16 * 1024;
constexpr std::size_t max_plain_per_send =
    256 * 1024;                             // plaintext encrypted per send (bounded memory)
constexpr std::size_t sessions_kept = 256;  // client: hosts whose last session is kept

// OpenSSL's memory (CRYPTO_set_mem_functions, installed before OpenSSL's first allocation):
// each thread keeps blocks OpenSSL freed, by size class, for its next allocations. A
// handshake allocates and frees a few hundred blocks of the same sizes every time; taking
// them back from a thread-local list costs a few instructions and no lock or atomic, where
// glibc's malloc in a process with threads locks its arena whenever its own small per-thread
// cache (seven blocks a size) is empty or full. A block carries its class in a 16-byte header
// (keeping malloc's alignment); sizes above 32 KiB are not kept, and a thread keeps at most
// so many blocks a class and so many bytes in all. A block freed on another thread than the
// one that allocated it goes to that thread's lists, as any block does.
namespace openssl_memory {

constexpr std::size_t header = 16;
constexpr std::size_t small_step = 16, small_max = 1024;         // classes 1..64
constexpr std::size_t large_step = 1024, large_max = 32 * 1024;  // classes 65..95
constexpr unsigned classes = 96;                                 // 0: not kept
constexpr unsigned small_depth = 128;                            // blocks kept a small class
constexpr std::size_t large_bytes_max = 1024 * 1024;             // bytes kept in large classes

unsigned class_of(std::size_t n) noexcept {
    if (n <= small_max)
        return n == 0 ? 1u : static_cast<unsigned>((n + small_step - 1) / small_step);
    if (n <= large_max)
        return 64u + static_cast<unsigned>((n - small_max + large_step - 1) / large_step);
    return 0;
}

std::size_t capacity_of(unsigned c) noexcept {
    return c <= 64 ? c * small_step : small_max + (c - 64) * large_step;
}

struct free_block {
    free_block* next;
};

// Zero-initialised and trivially destructible: usable until the thread's very end. Once the
// thread's flusher has run (dead), frees go straight back to malloc.
struct thread_cache {
    free_block* head[classes];
    unsigned count[classes];
    std::size_t large_bytes;
    bool registered, dead;
};
thread_local thread_cache cache;

struct flusher {
    ~flusher() {
        cache.dead = true;
        for (unsigned c = 1; c < classes; ++c) {
            while (free_block* b = cache.head[c]) {
                cache.head[c] = b->next;
                std::free(reinterpret_cast<char*>(b) - header);
            }
            cache.count[c] = 0;
        }
        cache.large_bytes = 0;
    }
};

unsigned& class_field(void* p) noexcept {
    return *reinterpret_cast<unsigned*>(static_cast<char*>(p) - header);
}

void* allocate(std::size_t n, const char*, int) {
    unsigned c = class_of(n);
    if (c != 0) {
        if (free_block* b = cache.head[c]) {
            cache.head[c] = b->next;
            --cache.count[c];
            if (c > 64) cache.large_bytes -= capacity_of(c);
            return b;
        }
        n = capacity_of(c);
    }
    char* base = static_cast<char*>(std::malloc(header + n));
    if (!base) return nullptr;
    *reinterpret_cast<unsigned*>(base) = c;
    return base + header;
}

void release(void* p, const char*, int) {
    if (!p) return;
    unsigned c = class_field(p);
    if (c != 0 && !cache.dead) {
        bool keep = c <= 64 ? cache.count[c] < small_depth
                            : cache.large_bytes + capacity_of(c) <= large_bytes_max;
        if (keep) {
            if (!cache.registered) {  // the thread's flusher, made on its first kept block
                cache.registered = true;
                static thread_local flusher f;
                (void)f;
            }
            auto* b = static_cast<free_block*>(p);
            b->next = cache.head[c];
            cache.head[c] = b;
            ++cache.count[c];
            if (c > 64) cache.large_bytes += capacity_of(c);
            return;
        }
    }
    std::free(static_cast<char*>(p) - header);
}

void* reallocate(void* p, std::size_t n, const char* file, int line) {
    if (!p) return allocate(n, file, line);
    if (n == 0) {
        release(p, file, line);
        return nullptr;
    }
    unsigned c = class_field(p);
    if (c == 0) {  // not a kept size: malloc's own realloc, the header moving with the bytes
        char* base = static_cast<char*>(std::realloc(static_cast<char*>(p) - header, header + n));
        return base ? base + header : nullptr;
    }
    if (n <= capacity_of(c)) return p;
    void* q = allocate(n, file, line);
    if (!q) return nullptr;
    std::memcpy(q, p, capacity_of(c));
    release(p, file, line);
    return q;
}

// Under AddressSanitizer OpenSSL keeps malloc: recycled blocks would hide a use after free
// from it (as frames come from the heap there: coro/frame_pool.cpp).
#ifdef CORONET_ASAN
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

std::atomic<bool> declined{false};  // tls_keep_openssl_malloc() was called

// Once, before the first context: OpenSSL refuses (and keeps malloc) when it has allocated
// already, in this process, for someone else.
void install() noexcept {
    static const bool installed = !sanitized && !declined.load(std::memory_order_acquire) &&
                                  CRYPTO_set_mem_functions(allocate, reallocate, release) == 1;
    (void)installed;
}

}  // namespace openssl_memory

}  // namespace

void tls_keep_openssl_malloc() noexcept {
    openssl_memory::declined.store(true, std::memory_order_release);
}

bool tls_openssl_memory_cached() noexcept {
    CRYPTO_malloc_fn m = nullptr;
    CRYPTO_get_mem_functions(&m, nullptr, nullptr);
    return m == &openssl_memory::allocate;
}

namespace {

class tls_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "tls"; }
    std::string message(int code) const override {
        char buf[256];
        ERR_error_string_n(static_cast<unsigned long>(code), buf, sizeof buf);
        const char* reason = ERR_reason_error_string(static_cast<unsigned long>(code));
        return reason ? reason : buf;
    }
};

// Before an SSL call whose SSL_get_error() must see only its own errors: clears OpenSSL's
// error queue when it holds anything. Peeking is a few dozen instructions; clearing walks all
// sixteen slots (about 800), and the queue is nearly always empty (take_error() empties it).
void clear_errors() noexcept {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

// The first error on OpenSSL's queue as an error_code (the queue is cleared).
std::error_code take_error() noexcept {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return make_error_code(errc::transport_failed);
    if (ERR_SYSTEM_ERROR(e)) return {ERR_GET_REASON(e), std::system_category()};
    return {static_cast<int>(e & 0x7fffffff), tls_category()};
}

std::string what_of(const std::string& context, std::string_view detail) {
    return context + (detail.empty() ? "" : ": " + std::string(detail));
}

[[noreturn]] void throw_tls(const std::string& what) {
    std::error_code ec = take_error();
    throw std::system_error(ec, what);
}

int version_of(tls_version v) { return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

// ALPN's wire format: each name prefixed by its length.
std::string alpn_wire(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
        if (n.empty() || n.size() > 255)
            throw std::invalid_argument("tls: bad ALPN protocol name '" + n + "'");
        out += static_cast<char>(n.size());
        out += n;
    }
    return out;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

const std::error_category& tls_category() noexcept {
    static const tls_error_category instance;
    return instance;
}

// --- tls_context ------------------------------------------------------------------

struct tls_context::state {
    SSL_CTX* ctx = nullptr;
    bool server = false;
    std::string alpn;                                     // wire format
    std::vector<std::pair<std::string, SSL_CTX*>> names;  // SNI: host name -> context
    // Client: each host's last session (resumption), at most sessions_kept, oldest dropped first.
    std::list<std::pair<std::string, SSL_SESSION*>> sessions;
    std::map<std::string, decltype(sessions)::iterator> session_index;
    bool resumption = false;

    ~state() {
        for (auto& [name, c] : names)
            SSL_CTX_free(c);
        for (auto& [host, s] : sessions)
            SSL_SESSION_free(s);
        SSL_CTX_free(ctx);
    }
    void keep_session(const std::string& host, SSL_SESSION* s) {
        if (auto it = session_index.find(host); it != session_index.end()) {
            SSL_SESSION_free(it->second->second);
            sessions.erase(it->second);
            session_index.erase(it);
        }
        sessions.emplace_front(host, s);
        session_index[host] = sessions.begin();
        if (sessions.size() > sessions_kept) {
            SSL_SESSION_free(sessions.back().second);
            session_index.erase(sessions.back().first);
            sessions.pop_back();
        }
    }
    SSL_SESSION* session_for(const std::string& host) const {
        auto it = session_index.find(host);
        return it == session_index.end() ? nullptr : it->second->second;
    }
};

namespace {

int state_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}
int host_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

tls_context::state* state_of(SSL* ssl) {
    return static_cast<tls_context::state*>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), state_index()));
}

void load_certificate(SSL_CTX* ctx, const tls_certificate& c) {
    clear_errors();
    if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1)
        throw_tls("tls: loading the certificate chain " + c.cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        throw_tls("tls: loading the private key " + c.key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
        throw_tls("tls: the key " + c.key_file + " does not match " + c.cert_file);
}

SSL_CTX* new_server_ctx(const tls_server_options& o, tls_context::state* st) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) throw_tls("tls: SSL_CTX_new");
    SSL_CTX_set_ex_data(ctx, state_index(), st);
    SSL_CTX_set_min_proto_version(ctx, version_of(o.min_version));
    SSL_CTX_set_max_proto_version(ctx, version_of(o.max_version));
    // Idle connections hold no record buffers; a write may come from a moved buffer. The
    // chain served is the PEM file's (SSL_CTX_use_certificate_chain_file), as nginx has it:
    // no chain built from the context's store (empty on a server) at every handshake.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);  // TLS 1.2 renegotiation: a DoS lever
    if (!o.session_tickets) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    } else {
        static const unsigned char id[] = "coronet";
        SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
    }
    return ctx;
}

int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
    tls_context::state* st = state_of(ssl);
    if (!st || st->alpn.empty()) return SSL_TLSEXT_ERR_NOACK;
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(
            &chosen, outlen, reinterpret_cast<const unsigned char*>(st->alpn.data()),
            static_cast<unsigned>(st->alpn.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;  // no protocol in common (RFC 7301 §3.2)
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

int select_certificate(SSL* ssl, int*, void*) {
    tls_context::state* st = state_of(ssl);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!st || !name) return SSL_TLSEXT_ERR_OK;
    for (auto& [host, ctx] : st->names) {
        if (strcasecmp(host.c_str(), name) == 0) {
            SSL_set_SSL_CTX(ssl, ctx);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

int new_session(SSL* ssl, SSL_SESSION* session) {
    tls_context::state* st = state_of(ssl);
    auto* host = static_cast<std::string*>(SSL_get_ex_data(ssl, host_index()));
    if (!st || !st->resumption || !host || host->empty()) return 0;
    st->keep_session(*host, session);
    return 1;  // we keep the reference
}

}  // namespace

tls_context tls_context::server(const tls_server_options& o) {
    openssl_memory::install();
    auto st = std::make_shared<state>();
    st->server = true;
    st->alpn = alpn_wire(o.alpn);
    st->ctx = new_server_ctx(o, st.get());
    load_certificate(st->ctx, o.certificate);
    SSL_CTX_set_alpn_select_cb(st->ctx, select_alpn, nullptr);
    SSL_CTX_set_tlsext_servername_callback(st->ctx, select_certificate);
    // Kept for add_server_name(): the same settings for every name's context.
    return tls_context(std::move(st));
}

void tls_context::add_server_name(const std::string& host_name,
                                  const tls_certificate& certificate) {
    if (!state_->server)
        throw std::logic_error("tls_context::add_server_name: not a server context");
    tls_server_options o;
    o.min_version = SSL_CTX_get_min_proto_version(state_->ctx) == TLS1_3_VERSION
                        ? tls_version::tls1_3
                        : tls_version::tls1_2;
    o.max_version = SSL_CTX_get_max_proto_version(state_->ctx) == TLS1_2_VERSION
                        ? tls_version::tls1_2
                        : tls_version::tls1_3;
    o.session_tickets = (SSL_CTX_get_options(state_->ctx) & SSL_OP_NO_TICKET) == 0;
    SSL_CTX* ctx = new_server_ctx(o, state_.get());
    try {
        load_certificate(ctx, certificate);
    } catch (...) {
        SSL_CTX_free(ctx);
        throw;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    state_->names.emplace_back(host_name, ctx);
}

tls_context tls_context::client(const tls_client_options& o) {
    openssl_memory::install();
    auto st = std::make_shared<state>();
    st->alpn = alpn_wire(o.alpn);
    st->resumption = o.session_resumption;
    st->ctx = SSL_CTX_new(TLS_client_method());
    if (!st->ctx) throw_tls("tls: SSL_CTX_new");
    SSL_CTX* ctx = st->ctx;
    SSL_CTX_set_ex_data(ctx, state_index(), st.get());
    SSL_CTX_set_min_proto_version(ctx, version_of(o.min_version));
    SSL_CTX_set_max_proto_version(ctx, version_of(o.max_version));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (o.insecure_no_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        clear_errors();
        if (!o.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1)
                throw_tls("tls: loading the CA file " + o.ca_file);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            throw_tls("tls: loading the system's trusted certificates");
        }
    }
    if (o.session_resumption) {
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session);
    }
    return tls_context(std::move(st));
}

bool tls_context::is_server() const noexcept { return state_->server; }
SSL_CTX* tls_context::native_handle() const noexcept { return state_->ctx; }

// --- tls_stream ---------------------------------------------------------------------

namespace {

reactor& context_of(const std::unique_ptr<transport>& lower) {
    if (!lower) throw std::invalid_argument("tls_stream: no transport");
    return lower->context();
}

}  // namespace

// The stream's one BIO, both ends of OpenSSL's record layer. Reading: records come
// straight from room_ (no copy into a memory BIO first); what OpenSSL takes is consumed
// there, and an empty room is "retry" (SSL_ERROR_WANT_READ), never end of stream, as a
// memory BIO with BIO_set_mem_eof_return(-1) would say: the stream tracks the end itself.
// Writing: each record OpenSSL writes is appended to the send buffer at once (out_, or
// later_ while a send of out_ is in flight), so a memory BIO's zero-filled growth and the
// copy out of it are gone; everything one call made leaves in one send, as before.
struct tls_stream::bio_glue {
    static int read(BIO* b, char* out, int len) {
        BIO_clear_retry_flags(b);
        receive_room& room = static_cast<tls_stream*>(BIO_get_data(b))->room_;
        std::string_view have = room.bytes();
        if (have.empty() || len <= 0) {
            BIO_set_retry_read(b);
            return -1;
        }
        std::size_t n = std::min(have.size(), static_cast<std::size_t>(len));
        std::memcpy(out, have.data(), n);
        room.consume(n);
        return static_cast<int>(n);
    }

    static int write(BIO* b, const char* data, int len) {
        BIO_clear_retry_flags(b);
        if (len <= 0) return 0;
        try {
            static_cast<tls_stream*>(BIO_get_data(b))
                ->add_output(data, static_cast<std::size_t>(len));
        } catch (
            ...) {  // out of memory: the write fails (SSL_ERROR_SYSCALL), nothing crosses OpenSSL
            return -1;
        }
        return len;
    }

    static long ctrl(BIO* b, int cmd, long, void*) {
        switch (cmd) {
        case BIO_CTRL_PENDING:
            return static_cast<long>(static_cast<tls_stream*>(BIO_get_data(b))->room_.size());
        case BIO_CTRL_FLUSH: return 1;
        default: return 0;
        }
    }

    static int create(BIO* b) {
        BIO_set_init(b, 1);
        return 1;
    }

    // Made once, kept for the life of the process (as OpenSSL's own methods are).
    static const BIO_METHOD* method() {
        static BIO_METHOD* m = [] {
            BIO_METHOD* made =
                BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coronet tls_stream");
            if (made &&
                (BIO_meth_set_read(made, read) != 1 || BIO_meth_set_write(made, write) != 1 ||
                 BIO_meth_set_ctrl(made, ctrl) != 1 || BIO_meth_set_create(made, create) != 1)) {
                BIO_meth_free(made);
                made = nullptr;
            }
            return made;
        }();
        return m;
    }
};

tls_stream::tls_stream(socket s, tls_context ctx, std::string host_name)
    : tls_stream(s.context(), std::move(s), nullptr, std::move(ctx), std::move(host_name)) {}

tls_stream::tls_stream(std::unique_ptr<transport> lower, tls_context ctx, std::string host_name)
    : tls_stream(context_of(lower), socket(), std::move(lower), std::move(ctx),
                 std::move(host_name)) {}

tls_stream::tls_stream(reactor& r, socket&& s, std::unique_ptr<transport>&& lower,
                       tls_context&& ctx, std::string&& host_name)
    : r_(&r),
      sock_(std::move(s)),
      lower_(std::move(lower)),
      ctx_(std::move(ctx)),
      host_(std::move(host_name)),
      room_(r) {
    clear_errors();
    ssl_ = SSL_new(ctx_.native_handle());
    const BIO_METHOD* method = bio_glue::method();
    BIO* bio = method ? BIO_new(method) : nullptr;
    if (!ssl_ || !bio) {
        BIO_free(bio);
        SSL_free(ssl_);
        throw_tls("tls: SSL_new");
    }
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; ssl_ owns it now
    if (ctx_.is_server()) {
        SSL_set_accept_state(ssl_);
    } else {
        SSL_set_connect_state(ssl_);
        SSL_set_ex_data(ssl_, host_index(), &host_);
        if (!host_.empty()) {
            if (!is_ip_literal(host_)) SSL_set_tlsext_host_name(ssl_, host_.c_str());
            if (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) {
                X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
                if (is_ip_literal(host_))
                    X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str());
                else
                    SSL_set1_host(ssl_, host_.c_str());
            }
            if (auto* st = static_cast<tls_context::state*>(
                    SSL_CTX_get_ex_data(ctx_.native_handle(), state_index()));
                st && st->resumption)
                if (SSL_SESSION* session = st->session_for(host_)) SSL_set_session(ssl_, session);
        }
        const std::string& alpn = static_cast<tls_context::state*>(
                                      SSL_CTX_get_ex_data(ctx_.native_handle(), state_index()))
                                      ->alpn;
        if (!alpn.empty())
            SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(alpn.data()),
                                static_cast<unsigned>(alpn.size()));
    }
    net_rx_.owner = net_tx_.owner = this;
    net_rx_.set_on_done(&on_net_recv);
    net_tx_.set_on_done(&on_net_send);
}

tls_stream::~tls_stream() {
    reading_ = writing_ = nullptr;
    reactor& r = context();
    r.abandon(
        net_rx_);  // the kernel (or the lower transport) lets go of room_'s memory before it goes
    r.abandon(net_tx_);  // ... and of out_
    SSL_free(ssl_);
}

// Asked of the socket when first needed (error messages, logs): not a syscall per connection.
std::string tls_stream::peer_name() const {
    if (lower_) return lower_->peer_name();
    if (peer_.empty()) {
        try {
            peer_ = sock_.peer_address().to_string();
        } catch (...) {  // gone already (or closed: close() closes the descriptor)
            peer_ = sock_ ? "fd " + std::to_string(sock_.native_handle()) : "a closed connection";
        }
    }
    return peer_;
}

std::string tls_stream::alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return std::string(reinterpret_cast<const char*>(p), p ? n : 0);
}
std::string tls_stream::version() const { return SSL_get_version(ssl_); }
std::string tls_stream::cipher() const {
    const char* c = SSL_get_cipher_name(ssl_);
    return c ? c : "";
}
std::string tls_stream::server_name() const {
    const char* n = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    return n ? n : "";
}
bool tls_stream::session_reused() const noexcept { return SSL_session_reused(ssl_) == 1; }

// Records OpenSSL wrote (bio_glue::write): into out_, or into later_ while a send of out_
// is in flight (the kernel or a lower transport may still read out_, which must not move).
void tls_stream::add_output(const char* data, std::size_t n) {
    if (tx_busy_) {
        later_.append(data, n);
        return;
    }
    if (out_sent_ == out_.size()) {
        out_.clear();
        out_sent_ = 0;
    }
    out_.append(data, n);
}

// True while records wait to be sent (or are being sent).
bool tls_stream::output_pending() const noexcept {
    return out_sent_ < out_.size() || !later_.empty();
}

// With out_ all sent, what came while it was in flight is next.
void tls_stream::next_output() noexcept {
    if (out_sent_ < out_.size() || later_.empty()) return;
    out_.swap(later_);
    later_.clear();
    out_sent_ = 0;
}

// What a receive of records asks of the room: on a socket, a provided block that
// comes with the bytes (a connection waiting for records holds no buffer); on a
// lower transport, the room's own buffer, which it fills. One receive at a time,
// never io_uring's multishot receive: with one armed, the room would keep a
// provided block while a peer stops mid-record (a stalled handshake), where a
// single receive lets the room copy the few bytes out and give the block back.
receive_request tls_stream::net_request() const noexcept {
    return {.fd = sock_.native_handle(),
            .size = receive_size,
            .need = 0,
            .provided = !lower_,
            .multishot = false};
}

// Starts a receive filled by room_.prepare(): on the socket, or through the lower transport.
bool tls_stream::start_net_recv(operation& op) {
    return lower_ ? lower_->start_recv(op) : r_->start(op);
}

// Starts a send of bytes: send(2) on the socket, or a sendmsg of one iovec to the lower transport.
bool tls_stream::start_net_send(operation& op, msghdr& msg, iovec& iov,
                                std::span<const std::byte> bytes) {
    op.result = 0;
    if (!lower_ && !hold_back_) {
        op.code = op_code::send;
        op.fd = sock_.native_handle();
        op.buffer = {const_cast<std::byte*>(bytes.data()), bytes.size()};  // never written
        return r_->start(op);
    }
    iov = {const_cast<std::byte*>(bytes.data()), bytes.size()};
    msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    op.code = op_code::sendmsg;
    op.msg = &msg;
    if (lower_) return lower_->start_send(op);
    // The connection ends after these records: the kernel keeps a last partial segment back
    // (MSG_MORE) for close_notify, which shutdown_send() sends without it, to join. The
    // peer gets the reply and the end together, as one segment, before it can close (a
    // close_notify arriving after the peer has closed draws a reset, handled on this core).
    op.fd = sock_.native_handle();
    msg.msg_flags = MSG_MORE;
    return r_->start(op);
}

// co_await: the next records into room_: bytes, 0 at end of stream, -errno, or
// receive_room::again (every provided block was out: receive again).
class tls_stream::net_recv_awaiter : public op_awaiter {
public:
    explicit net_recv_awaiter(tls_stream& s) noexcept : op_awaiter(*s.r_), s_(s) {}
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        s_.room_.prepare(op_, s_.net_request());
        return !s_.start_net_recv(op_);
    }
    int await_resume() noexcept {
        finish();
        return s_.room_.take(op_);
    }

private:
    tls_stream& s_;
};

// co_await: bytes of `bytes` sent; throws std::system_error on errors.
class tls_stream::net_send_awaiter : public op_awaiter {
public:
    net_send_awaiter(tls_stream& s, std::span<const std::byte> bytes) noexcept
        : op_awaiter(*s.r_), s_(s), bytes_(bytes) {}
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!enter(h)) return false;
        return !s_.start_net_send(op_, msg_, iov_, bytes_);
    }
    std::size_t await_resume() {
        int n = finish();
        if (n == result_of(errc::transport_failed) && s_.lower_ && s_.lower_->error())
            throw std::system_error(s_.lower_->error(), "send");
        return static_cast<std::size_t>(throw_if_error(n, "send"));
    }

private:
    tls_stream& s_;
    std::span<const std::byte> bytes_;
    msghdr msg_{};
    iovec iov_{};
};

// True when the room holds a whole record (or bytes that are no record at all, which
// OpenSSL will refuse). Until then OpenSSL is not called: a peer that stops mid-record
// costs no record buffer inside OpenSSL, only the bytes it sent.
bool tls_stream::whole_record_pending() const noexcept {
    std::string_view have = room_.bytes();
    if (have.size() < 5) return false;
    auto type = static_cast<unsigned char>(have[0]);
    if (type < 20 || type > 24) return true;  // not a TLS record: let OpenSSL say so
    std::size_t len = 5 + (static_cast<std::size_t>(static_cast<unsigned char>(have[3])) << 8 |
                           static_cast<unsigned char>(have[4]));
    return len > record_buffer || have.size() >= len;
}

task<void> tls_stream::handshake() {
    // A server starts by waiting for a whole ClientHello record: OpenSSL sets up its
    // buffers (tens of KiB) at the first call, which a client that stalls never earns.
    // (Only then: once OpenSSL has read part of a record, its buffer holds the header.)
    bool need_input = ctx_.is_server();
    bool first = need_input;
    for (;;) {
        while (need_input) {
            int got = co_await net_recv_awaiter(*this);
            if (got == receive_room::again)
                continue;  // every block was out: into the room's own buffer
            if (got == 0)
                throw std::system_error(
                    make_error_code(errc::stream_truncated),
                    "tls handshake with " + peer_name() + ": the peer closed the connection");
            if (got == result_of(errc::transport_failed) && lower_ && lower_->error())
                throw std::system_error(lower_->error(), "recv");
            throw_if_error(got, "recv");
            need_input = first && !whole_record_pending();
        }
        first = false;
        need_input = true;
        clear_errors();
        int r = SSL_do_handshake(ssl_);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
        room_.release_if_empty();  // all read: the block goes back
        // A TLS 1.3 server's handshake ends with its session tickets, which the client never
        // waits for: they are not sent here but wait in out_ and leave with the first records
        // written after them (the response: one send and one segment for both), or before
        // the stream waits for input (start_recv), or with close_notify. Anything else a
        // finished handshake wrote (a client's Finished, a TLS 1.2 server's final flight) is
        // what the peer's handshake waits for, and goes now.
        if (r == 1 && ctx_.is_server() && SSL_version(ssl_) == TLS1_3_VERSION) co_return;
        // out_ holds our flight now. While it is sent nothing else calls OpenSSL on this
        // stream (it is the handshake's alone), so no record is appended to out_ under the
        // send.
        while (out_sent_ < out_.size()) {
            auto left = std::as_bytes(std::span(out_).subspan(out_sent_));
            std::size_t n = co_await net_send_awaiter(*this, left);
            out_sent_ += n;
        }
        if (r == 1) co_return;
        if (e != SSL_ERROR_WANT_READ) {
            std::string context = "tls handshake with " + (host_.empty() ? peer_name() : host_);
            long verify = SSL_get_verify_result(ssl_);
            if (verify != X509_V_OK)
                context = what_of(context, std::string("certificate verify failed (") +
                                               X509_verify_cert_error_string(verify) + ")");
            if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL) throw_tls(context);
            throw std::system_error(make_error_code(errc::transport_failed), context);
        }
    }
}

// --- receiving ---

int tls_stream::fail(const char* what) noexcept {
    error_ = take_error();
    if (log_enabled(log_level::debug))
        log(log_level::debug,
            std::string("tls ") + what + " with " + peer_name() + ": " + error_.message());
    return result_of(errc::transport_failed);
}

// Plaintext into `into`: bytes, 0 at close_notify, an error, or want_more.
int tls_stream::decrypt(std::span<std::byte> into) noexcept {
    // No record in the room and none inside OpenSSL: SSL_read could only say "want read"
    // (its end-of-stream and error answers come from records read earlier, or from us),
    // so it is not asked. A keep-alive read that waits for the next request, and a read
    // after end of stream, cost no OpenSSL call and no error-queue clearing.
    int e = SSL_ERROR_WANT_READ;
    if (!room_.bytes().empty() || SSL_has_pending(ssl_) ||
        (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) || error_) {
        clear_errors();
        int r = SSL_read(ssl_, into.data(),
                         static_cast<int>(std::min<std::size_t>(into.size(), INT32_MAX)));
        if (r > 0) return r;
        e = SSL_get_error(ssl_, r);
    }
    switch (e) {
    case SSL_ERROR_ZERO_RETURN: return 0;  // the peer's close_notify: a clean end
    case SSL_ERROR_WANT_READ:
        if (closed_) return 0;  // we closed: our own end of stream
        if (net_error_) return net_error_;
        if (net_eof_) return result_of(errc::stream_truncated);  // no close_notify
        return want_more;
    case SSL_ERROR_SYSCALL:
        if (net_eof_ || closed_) return closed_ ? 0 : result_of(errc::stream_truncated);
        [[fallthrough]];
    default: return fail("read");
    }
}

// Plaintext into `into` as decrypt() says; then, with every record read, the
// room's memory goes back (a waiting stream holds no receive buffer).
int tls_stream::decrypt_from_room(std::span<std::byte> into) noexcept {
    int n = decrypt(into);
    room_.release_if_empty();
    return n;
}

bool tls_stream::start_recv(operation& op) {
    int n = decrypt_from_room(op.buffer);
    // Records waiting to leave (what reading made OpenSSL write, a KeyUpdate or an alert; a
    // server's session tickets) go before the stream waits for input, or with a failure's
    // alert. Plaintext leaves them for the reply's send, and the end of the stream for
    // close_notify's (shutdown_send): none of the three waits on them.
    if (n < 0) pump_send();
    if (n != want_more) {
        op.result = n;
        return true;
    }
    context().hold(op, *this);
    reading_ = &op;
    cancel_rx_ = false;
    pump_recv();
    return false;
}

// Receives records until the waiting read has plaintext (or fails).
void tls_stream::pump_recv() noexcept {
    while (reading_ && !rx_busy_) {
        if (cancel_rx_) {
            r_->finish(*std::exchange(reading_, nullptr), -ECANCELED);
            return;
        }
        rx_busy_ = true;
        bool done_now = false;
        try {
            room_.prepare(net_rx_, net_request());
            done_now = start_net_recv(net_rx_);
        } catch (...) {
            net_rx_.result = -ENOMEM;
            done_now = true;
        }
        if (!done_now) return;  // on_net_recv goes on
        rx_busy_ = false;
        took();
    }
}

// Takes in what a receive of records brought, and answers the waiting read if it can.
void tls_stream::took() noexcept {
    int res = room_.take(net_rx_);
    if (res == receive_room::again)
        res = -EAGAIN;  // nothing received: the next receive uses the room's buffer
    if (res == 0)
        net_eof_ = true;
    else if (res < 0 && res != -ECANCELED && res != -EAGAIN)
        net_error_ = res;
    if (!reading_) return;
    int n = decrypt_from_room(reading_->buffer);
    if (n < 0) pump_send();  // as start_recv
    if (n == want_more && res == -ECANCELED) n = -ECANCELED;
    if (n != want_more) r_->finish(*std::exchange(reading_, nullptr), n);
}

void tls_stream::on_net_recv(operation& op) {
    tls_stream* s = static_cast<net_op&>(op).owner;
    s->rx_busy_ = false;
    s->took();
    s->pump_recv();
}

// --- sending ---

bool tls_stream::start_send(operation& op) {
    if (net_error_ || shut_ || closed_) {
        op.result = net_error_ ? net_error_ : -EPIPE;
        return true;
    }
    std::size_t taken = 0;
    const msghdr& msg = *op.msg;
    clear_errors();  // a write that succeeds leaves the queue empty for the next one
    for (std::size_t i = 0; i < msg.msg_iovlen && taken < max_plain_per_send; ++i) {
        const iovec& v = msg.msg_iov[i];
        std::size_t len = std::min(v.iov_len, max_plain_per_send - taken);
        if (len == 0) continue;
        std::size_t written = 0;
        if (SSL_write_ex(ssl_, v.iov_base, len, &written) != 1) {
            if (taken > 0) break;  // report what went; the error comes next time
            op.result = fail("write");
            return true;
        }
        taken += written;
    }
    // out_ (or later_) holds every record of this send now: they leave together.
    write_result_ = static_cast<int>(taken);
    if (!output_pending()) {
        op.result = write_result_;
        return true;
    }
    context().hold(op, *this);
    writing_ = &op;
    cancel_tx_ = false;
    pump_send();
    return false;
}

// Sends out_ until it is all gone (or the socket fails).
void tls_stream::pump_send() noexcept {
    reactor& r = context();
    for (;;) {
        next_output();
        if (tx_busy_ || out_sent_ == out_.size() || net_error_) break;
        if (cancel_tx_ && writing_) {
            r.finish(*std::exchange(writing_, nullptr), -ECANCELED);
            return;
        }
        tx_busy_ = true;
        bool done_now = false;
        try {
            done_now = start_net_send(net_tx_, net_tx_.msg, net_tx_.iov,
                                      std::as_bytes(std::span(out_).subspan(out_sent_)));
        } catch (...) {
            net_tx_.result = -ENOMEM;
            done_now = true;
        }
        if (!done_now) return;  // on_net_send goes on
        tx_busy_ = false;
        sent(net_tx_.result);
    }
    if (writing_ && (!output_pending() || net_error_))
        r.finish(*std::exchange(writing_, nullptr), net_error_ ? net_error_ : write_result_);
}

void tls_stream::sent(int res) noexcept {
    if (res > 0) {
        out_sent_ += static_cast<std::size_t>(res);
        if (out_sent_ == out_.size()) {
            out_.clear();
            out_sent_ = 0;
        }
    } else if (res == -ECANCELED) {
        cancel_tx_ = true;
    } else {
        net_error_ = res < 0 ? res : -EPIPE;
        out_.clear();
        later_.clear();
        out_sent_ = 0;
    }
}

void tls_stream::on_net_send(operation& op) {
    tls_stream* s = static_cast<net_op&>(op).owner;
    s->tx_busy_ = false;
    s->sent(op.result);
    if (s->cancel_tx_ && s->writing_) {
        s->context().finish(*std::exchange(s->writing_, nullptr), -ECANCELED);
        return;
    }
    s->pump_send();
}

// --- ending ---

void tls_stream::shutdown_send() noexcept {
    if (shut_ || closed_ || net_error_ || !SSL_is_init_finished(ssl_)) return;
    shut_ = true;
    clear_errors();
    SSL_shutdown(ssl_);    // writes our close_notify (into out_); we never wait for the peer's
    if (tx_busy_) return;  // it follows what is in flight
    if (lower_) {  // a lower transport: an ordinary send (an in-memory pair takes it at once)
        pump_send();
        return;
    }
    // Nothing in flight: the few bytes go straight to the socket, now. When the connection
    // ends after them (closing_after_output), they too are held back (MSG_MORE) for close(),
    // which closes the descriptor at once: the kernel sends them with its FIN, in one segment.
    next_output();
    const int more = hold_back_ ? MSG_MORE : 0;
    while (out_sent_ < out_.size()) {
        ssize_t n = ::send(sock_.native_handle(), out_.data() + out_sent_, out_.size() - out_sent_,
                           MSG_DONTWAIT | MSG_NOSIGNAL | more);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out_sent_ += static_cast<std::size_t>(n);
    }
    out_.clear();
    out_sent_ = 0;
}

task<bool> tls_stream::shutdown(reactor::clock::duration wait) {
    shutdown_send();
    try {
        co_return co_await with_timeout(context(), drain_to_close_notify(), wait);
    } catch (const std::system_error&) {  // no close_notify in time, a truncation, a failure
        co_return false;
    }
}

task<bool> tls_stream::drain_to_close_notify() {
    std::array<std::byte, 2048> dropped;
    for (;;) {
        std::size_t n = co_await transport_recv_awaiter(*this, dropped);
        if (n == 0) co_return (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
    }
}

void tls_stream::close() noexcept {
    if (closed_) return;
    closed_ = true;
    // What is in flight ends now, and the peer sees our end at once. With nothing in flight
    // the descriptor closes here (one syscall, where a shutdown() now and a close() with the
    // stream would be two); a receive or send the kernel holds keeps it open until the stream
    // goes, and the shutdown ends that operation.
    if (lower_)
        lower_->close();  // what it holds of ours finishes (a receive with end of stream)
    else if (sock_ && (rx_busy_ || tx_busy_))
        ::shutdown(sock_.native_handle(), SHUT_RDWR);
    else if (sock_)
        sock_.close();
    reactor& r = context();
    if (reading_ && !rx_busy_) r.finish(*std::exchange(reading_, nullptr), 0);
}

void tls_stream::cancel(operation& op) noexcept {
    reactor& r = context();
    if (&op == reading_) {
        cancel_rx_ = true;
        if (rx_busy_)
            r.cancel(net_rx_);  // finishes (ECANCELED, or with records) and ends the read
        else
            r.finish(*std::exchange(reading_, nullptr), -ECANCELED);
    } else if (&op == writing_) {
        cancel_tx_ = true;
        if (tx_busy_)
            r.cancel(net_tx_);
        else
            r.finish(*std::exchange(writing_, nullptr), -ECANCELED);
    }
}

void tls_stream::abandon(operation& op) noexcept {
    if (&op == reading_) reading_ = nullptr;
    if (&op == writing_) writing_ = nullptr;
}

// --- handshakes -----------------------------------------------------------------------

namespace {

// Accepting wants a server context and connecting a client one: a mix-up is the caller's bug.
void require_side(const tls_context& ctx, bool server, const char* who) {
    if (ctx.is_server() != server)
        throw std::logic_error(std::string(who) +
                               (server ? ": a client context" : ": a server context"));
}

// The stream, once its handshake has finished within options.timeout.
task<std::unique_ptr<tls_stream>> handshaken(std::unique_ptr<tls_stream> stream,
                                             tls_handshake_options options) {
    co_await with_timeout(stream->context(), stream->handshake(), options.timeout);
    co_return stream;
}

}  // namespace

task<std::unique_ptr<tls_stream>> tls_accept(socket s, tls_context ctx,
                                             tls_handshake_options options) {
    require_side(ctx, true, "tls_accept");
    return handshaken(std::make_unique<tls_stream>(std::move(s), std::move(ctx), std::string()),
                      options);
}

task<std::unique_ptr<tls_stream>> tls_connect(socket s, tls_context ctx, std::string host_name,
                                              tls_handshake_options options) {
    require_side(ctx, false, "tls_connect");
    return handshaken(
        std::make_unique<tls_stream>(std::move(s), std::move(ctx), std::move(host_name)), options);
}

task<std::unique_ptr<tls_stream>> tls_accept(std::unique_ptr<transport> lower, tls_context ctx,
                                             tls_handshake_options options) {
    require_side(ctx, true, "tls_accept");
    return handshaken(std::make_unique<tls_stream>(std::move(lower), std::move(ctx), std::string()),
                      options);
}

task<std::unique_ptr<tls_stream>> tls_connect(std::unique_ptr<transport> lower, tls_context ctx,
                                              std::string host_name,
                                              tls_handshake_options options) {
    require_side(ctx, false, "tls_connect");
    return handshaken(
        std::make_unique<tls_stream>(std::move(lower), std::move(ctx), std::move(host_name)),
        options);
}

}  // namespace coronet
