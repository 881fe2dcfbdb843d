// examples/proxy.cpp: the Medusa tutorial's proxy server, ported line for line with async_chat.
//
// Listens on <server-port> + 8000 (or --port) on every interface, as the seed binds ('', port).
// For each client a proxy_receiver reads its lines and a proxy_sender connects to the real
// server: client lines are printed `<== (ID) 'line'` and forwarded, server lines `==> (ID)
// 'line'` and sent back, each quoted as Python's repr() quotes it. When one side closes, the
// other is closed too. The server's host name is resolved for each connection, on the loop
// (--dns-server HOST:PORT picks the DNS server), and every address is tried (Happy Eyeballs).
// Medusa ancestor: proxy.py in "Programming in Python with Medusa".
//
// Try: bazel run //examples:proxy -- localhost 25, then telnet localhost 8025.

#include <coronet/coronet.hpp>
#include <coronet/examples/cli.hpp>

#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

using namespace std::chrono_literals;

// Python's repr() of a byte string (without the b): 'line', "it's", '\r\x00'.
std::string py_repr(std::string_view s) {
    const char quote = s.find('\'') != s.npos && s.find('"') == s.npos ? '"' : '\'';
    std::string out(1, quote);
    for (unsigned char c : s) {
        if (c == quote || c == '\\') {
            out += {'\\', char(c)};
        } else if (c == '\t' || c == '\n' || c == '\r') {
            out += {'\\', c == '\t' ? 't' : c == '\n' ? 'n' : 'r'};
        } else if (c < 0x20 || c >= 0x7f) {
            out += {'\\', 'x', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
        } else {
            out += char(c);
        }
    }
    return out + quote;
}

// Closing the partner uses close_when_done(), not the seed's close(): coronet's push() sends on a
// later loop turn, so close() would drop the last lines forwarded just before the hang-up.
class proxy_receiver;

class proxy_sender : public coronet::async_chat {
public:
    proxy_sender(std::weak_ptr<proxy_receiver> receiver, int id) : receiver_(receiver), id_(id) {
        set_terminator("\n");
    }
    void handle_connect() override { std::printf("Connected\n"); }
    void collect_incoming_data(std::string_view data) override { buffer_ += data; }
    void found_terminator() override;
    void handle_close() override;

private:
    std::weak_ptr<proxy_receiver> receiver_;  // the receiver owns us; watching it breaks the cycle
    int id_;
    std::string buffer_;
};

class proxy_receiver : public coronet::async_chat {
public:
    explicit proxy_receiver(int id) : id_(id) { set_terminator("\n"); }
    void collect_incoming_data(std::string_view data) override { buffer_ += data; }
    void found_terminator() override {
        std::string data = std::exchange(buffer_, {});
        std::printf("<== (%d) %s\n", id_, py_repr(data).c_str());
        sender->push(data + "\n");
    }
    void handle_close() override {
        std::printf("Closing\n");
        sender->close_when_done();
        close();
    }
    std::shared_ptr<proxy_sender> sender;

private:
    int id_;
    std::string buffer_;
};

void proxy_sender::found_terminator() {
    std::string data = std::exchange(buffer_, {});
    std::printf("==> (%d) %s\n", id_, py_repr(data).c_str());
    if (auto receiver = receiver_.lock()) receiver->push(data + "\n");
}

void proxy_sender::handle_close() {
    if (auto receiver = receiver_.lock()) receiver->close_when_done();
    close();
}

// proxy_server.handle_accept: a receiver for each client, and its sender to the real server.
// (An object's events begin on the next loop turn, so `sender` is set before any of them.)
coronet::task<> proxy_server(coronet::socket listener, std::string host, unsigned port,
                             coronet::connect_host_options how) {
    auto& r = listener.context();
    for (int channel_counter = 0;;) {
        std::error_code error;
        try {
            auto receiver = coronet::async_chat::start<proxy_receiver>(
                r, co_await listener.accept(), channel_counter);
            receiver->sender =
                coronet::async_chat::create<proxy_sender>(r, receiver, channel_counter++);
            receiver->sender->connect(host, port, how);  // the name resolves on the loop
            continue;
        } catch (const std::system_error& e) {
            error = e.code();  // EMFILE and the like: say so, back off, go on
        }
        coronet::log(coronet::log_level::warning, "accept: " + error.message());
        co_await coronet::sleep_for(r, 50ms);
    }
}

int main(int argc, char** argv) {
    std::string host, server_port, port = "server-port+8000", dns_server;
    cli::parser args("proxy",
                     "Relays a line protocol to a server, printing every line (Medusa's proxy).");
    args.positional("server-host", host, "the real server's host name or address");
    args.positional("server-port", server_port, "its TCP port");
    args.flag("port", port, "TCP port to listen on; 0 picks a free one");
    args.flag("dns-server", dns_server, "DNS server to ask (default: resolv.conf's)", "HOST:PORT");
    args.parse(argc, argv);
    auto number = [&](const std::string& text, unsigned min, const std::string& what) {
        unsigned n = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec != std::errc() || end != text.data() + text.size() || n < min || n > 65535)
            args.fail(what + ": expected a port from " + std::to_string(min) + " to 65535, got '" +
                      text + "'");
        return n;
    };
    unsigned there_port = number(server_port, 1, "<server-port>");
    unsigned here_port = port == "server-port+8000" ? there_port + 8000 : number(port, 0, "--port");
    if (here_port > 65535) args.fail("<server-port> + 8000 is above 65535: choose one with --port");
    auto here = coronet::address::from_host_port("0.0.0.0", here_port);

    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, even into a pipe
    coronet::reactor r;
    coronet::socket listener;
    try {
        listener = coronet::socket::listen(r, here, {.backlog = 5});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "proxy: %s\n", e.what());
        return 1;
    }
    std::printf("proxy: listening on %s, relaying to %s port %u\n",
                listener.local_address().to_string().c_str(), host.c_str(), there_port);
    coronet::connect_host_options how{.resolve = {.servers = dns_server}};
    coronet::spawn(r, proxy_server(std::move(listener), host, there_port, how), "proxy_server");
    r.run();
}
