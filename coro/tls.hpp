#pragma once
// TLS under a channel: OpenSSL 3 through a BIO of the stream's own, driven by the reactor.
//
// A tls_context holds what every connection of one side shares: the server's
// certificates (one per name, picked by SNI), the client's trust store, ALPN,
// protocol versions, session resumption. tls_accept() / tls_connect() run the
// handshake on a connected socket, or on any transport under it (an in-memory
// pair in tests), under a timeout, and give a tls_stream, a transport:
// `channel ch(co_await tls_accept(std::move(s), ctx));` and the handler reads
// and writes as it would in plain text. Ciphertext moves through the lower
// end's ordinary operations, so TLS works on io_uring, epoll and select alike
// (this kernel has no kernel TLS): records arrive in a receive_room (on a
// socket, into the reactor's provided blocks) that OpenSSL reads straight
// from, and everything the channel sends in one loop turn is encrypted and
// leaves in one send. Files go through producers (no sendfile).
// Closing sends close_notify and never waits for the peer's; a peer that ends
// the stream without one is reported as errc::stream_truncated (in the
// channel's close_reason()), never as data. Every failure is a
// std::system_error carrying OpenSSL's reason.
// Medusa ancestor: none (Medusa predates TLS; asyncore users wrapped sockets in ssl).

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <coronet/coro/task.hpp>
#include <coronet/lib/receive_room.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/transport.hpp>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace coronet {

// OpenSSL's errors ("tls"): the value is OpenSSL's packed error code.
const std::error_category& tls_category() noexcept;

enum class tls_version { tls1_2, tls1_3 };

// A server's certificate and key (PEM files: the chain, leaf first, and its key).
struct tls_certificate {
    std::string cert_file{};
    std::string key_file{};
};

// What a server context is built from.
struct tls_server_options {
    tls_certificate certificate{};    // served when no SNI name matches (or none is sent)
    std::vector<std::string> alpn{};  // protocols accepted, preferred first ("http/1.1")
    tls_version min_version = tls_version::tls1_2;
    tls_version max_version = tls_version::tls1_3;
    bool session_tickets = true;  // resumption by ticket (and TLS 1.2 session ids)
};

// What a client context is built from.
struct tls_client_options {
    std::string ca_file{};            // trust these CAs (PEM) instead of the system store
    bool insecure_no_verify = false;  // accepts any certificate and name: tests only
    std::vector<std::string> alpn{};  // protocols offered, preferred first
    tls_version min_version = tls_version::tls1_2;
    tls_version max_version = tls_version::tls1_3;
    bool session_resumption = true;  // keeps each host's last session and offers it again
};

// OpenSSL's memory. The first tls_context made in a process gives OpenSSL
// allocation functions that keep the blocks it frees in per-thread lists by
// size (CRYPTO_set_mem_functions: a handshake's few hundred allocations then
// take no malloc lock), unless OpenSSL has allocated already (it refuses them
// then), the build has AddressSanitizer (recycled blocks would hide a use
// after free), or tls_keep_openssl_malloc() was called first: for a process that
// installs its own functions, or wants OpenSSL on plain malloc.
void tls_keep_openssl_malloc() noexcept;
// True when OpenSSL allocates through those per-thread lists.
bool tls_openssl_memory_cached() noexcept;

// One side's shared TLS configuration. Copies share it. Build it once, before
// connections use it; it belongs to one thread (one per reactor).
class tls_context {
public:
    // Throws std::system_error naming the file when a certificate or key does not load.
    static tls_context server(const tls_server_options& options);
    static tls_context client(const tls_client_options& options = {});

    // Server: serves `certificate` to clients that ask for host_name (SNI).
    void add_server_name(const std::string& host_name, const tls_certificate& certificate);

    bool is_server() const noexcept;
    SSL_CTX* native_handle() const noexcept;

    struct state;

private:
    explicit tls_context(std::shared_ptr<state> s) noexcept : state_(std::move(s)) {}
    std::shared_ptr<state> state_;
};

// How a handshake runs.
struct tls_handshake_options {
    reactor::clock::duration timeout = std::chrono::seconds(10);  // errc::timed_out past it
};

class tls_stream;

// The server side of an accepted connection: the handshake, then a transport.
[[nodiscard]] task<std::unique_ptr<tls_stream>> tls_accept(socket s, tls_context ctx,
                                                           tls_handshake_options options = {});
// The client side: host_name is sent (SNI) and, unless the context is insecure,
// the peer's certificate must be valid for it.
[[nodiscard]] task<std::unique_ptr<tls_stream>> tls_connect(socket s, tls_context ctx,
                                                            std::string host_name,
                                                            tls_handshake_options options = {});
// The same over another transport (memory_transport in tests, for one): the
// ciphertext goes through its start_recv / start_send.
[[nodiscard]] task<std::unique_ptr<tls_stream>> tls_accept(std::unique_ptr<transport> lower,
                                                           tls_context ctx,
                                                           tls_handshake_options options = {});
[[nodiscard]] task<std::unique_ptr<tls_stream>> tls_connect(std::unique_ptr<transport> lower,
                                                            tls_context ctx, std::string host_name,
                                                            tls_handshake_options options = {});

// A TLS connection after its handshake: a transport for channel and async_chat.
class tls_stream final : public transport {
public:
    tls_stream(socket s, tls_context ctx, std::string host_name);
    // Over another transport (not null); throws std::invalid_argument when it is.
    tls_stream(std::unique_ptr<transport> lower, tls_context ctx, std::string host_name);
    ~tls_stream() override;
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;

    // The protocol ALPN chose ("" when none).
    std::string alpn() const;
    // "TLSv1.3", "TLSv1.2".
    std::string version() const;
    std::string cipher() const;
    // The name the client asked for (SNI), "" when none.
    std::string server_name() const;
    // True when the handshake resumed an earlier session.
    bool session_reused() const noexcept;
    SSL* native_handle() const noexcept { return ssl_; }

    // --- transport ---
    reactor& context() const noexcept override { return *r_; }
    bool start_recv(operation& op) override;
    bool start_send(operation& op) override;
    std::error_code error() const noexcept override { return error_; }
    void shutdown_send() noexcept override;
    void close() noexcept override;
    void closing_after_output() noexcept override { hold_back_ = true; }
    socket* underlying_socket() noexcept override {
        return lower_ ? lower_->underlying_socket() : &sock_;
    }
    std::string peer_name() const override;
    void cancel(operation& op) noexcept override;
    void abandon(operation& op) noexcept override;

    // The handshake (tls_accept / tls_connect run it); throws on failure.
    task<void> handshake();
    // Sends close_notify, then waits up to `wait` for the peer's, reading and
    // dropping what comes before it: true when it came. Closing never waits
    // otherwise (RFC 8446 §6.1; waiting unasked is the classic shutdown hang).
    // Not while a channel read waits on this stream.
    task<bool> shutdown(reactor::clock::duration wait);

private:
    struct net_op : operation {
        tls_stream* owner = nullptr;
        msghdr msg{};  // a send to a lower transport (sendmsg, one iovec)
        iovec iov{};
    };
    class net_recv_awaiter;
    class net_send_awaiter;
    struct bio_glue;                               // the BIO between OpenSSL and room_ / out_
    static constexpr int want_more = -0x7fffffff;  // decrypt(): no plaintext yet

    tls_stream(reactor& r, socket&& s, std::unique_ptr<transport>&& lower, tls_context&& ctx,
               std::string&& host_name);
    task<bool> drain_to_close_notify();
    int decrypt(std::span<std::byte> into) noexcept;
    int decrypt_from_room(std::span<std::byte> into) noexcept;
    int fail(const char* what) noexcept;
    void add_output(const char* data, std::size_t n);
    bool output_pending() const noexcept;
    void next_output() noexcept;
    receive_request net_request() const noexcept;
    bool start_net_recv(operation& op);
    bool start_net_send(operation& op, msghdr& msg, iovec& iov, std::span<const std::byte> bytes);
    void pump_recv() noexcept;
    void took() noexcept;
    void pump_send() noexcept;
    void sent(int res) noexcept;
    static void on_net_recv(operation& op);
    static void on_net_send(operation& op);
    bool whole_record_pending() const noexcept;

    reactor* r_;
    socket sock_;                       // the connection, unless lower_ is set (then empty)
    std::unique_ptr<transport> lower_;  // the transport the ciphertext goes through, or null
    tls_context ctx_;
    SSL* ssl_ = nullptr;  // its BIO reads records from room_ and writes them into out_ / later_
    mutable std::string peer_;  // peer_name(), made when first asked
    std::string host_;
    std::error_code error_;

    // Records received and not yet read by OpenSSL: on a socket, the provided
    // block they arrived in (or the room's own buffer when every block was out).
    receive_room room_;
    net_op net_rx_, net_tx_;
    bool rx_busy_ = false, tx_busy_ = false;
    bool net_eof_ = false;
    bool cancel_rx_ = false, cancel_tx_ = false;
    bool shut_ = false, closed_ = false;
    bool hold_back_ = false;  // closing_after_output(): records go with MSG_MORE until the end
    int net_error_ = 0;       // the lower end's error (-errno), once it failed
    operation* reading_ = nullptr;  // the channel's receive, waiting for records
    operation* writing_ = nullptr;  // the channel's send, waiting for its records to leave
    int write_result_ = 0;          // plaintext bytes that send took
    std::string out_;               // records to send
    std::string later_;             // records made while a send of out_ was in flight
    std::size_t out_sent_ = 0;
};

}  // namespace coronet
