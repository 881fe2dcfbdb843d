#include <coronet/lib/address.hpp>

#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

namespace coronet {

address::address(const sockaddr* sa, socklen_t len) noexcept {
    len_ = std::min<socklen_t>(len, sizeof storage_);
    std::memcpy(&storage_, sa, len_);
}

address address::unix_path(std::string_view path) {
    address a;
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof un.sun_path)
        throw std::invalid_argument("unix socket path empty or longer than " +
                                    std::to_string(sizeof un.sun_path - 1) + " bytes");
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&a.storage_, &un, sizeof un);
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return a;
}

address address::from_host_port(std::string_view host, unsigned port) {
    if (port > 65535) throw std::invalid_argument("port out of range: " + std::to_string(port));
    std::string h(host);
    address a;
    sockaddr_in v4{};
    if (inet_pton(AF_INET, h.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(static_cast<uint16_t>(port));
        std::memcpy(&a.storage_, &v4, sizeof v4);
        a.len_ = sizeof v4;
        return a;
    }
    sockaddr_in6 v6{};
    if (inet_pton(AF_INET6, h.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(static_cast<uint16_t>(port));
        std::memcpy(&a.storage_, &v6, sizeof v6);
        a.len_ = sizeof v6;
        return a;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
    if (rc != 0 || !res) {
        hints.ai_flags = 0;  // AI_ADDRCONFIG hides loopback on hosts with no other address
        rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
    }
    if (rc != 0 || !res)
        throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                                "cannot resolve '" + h + "': " + gai_strerror(rc));
    a = address(res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (a.family() == AF_INET)
        reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(static_cast<uint16_t>(port));
    else if (a.family() == AF_INET6)
        reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port =
            htons(static_cast<uint16_t>(port));
    return a;
}

address address::parse(std::string_view text) {
    if (text.starts_with("unix:")) return unix_path(text.substr(5));
    std::string_view host, port;
    if (text.starts_with("[")) {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("bad address '" + std::string(text) +
                                        "' (expected [v6]:port)");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            throw std::invalid_argument("bad address '" + std::string(text) +
                                        "' (expected host:port)");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || port.empty() || p > 65535)
        throw std::invalid_argument("bad port '" + std::string(port) + "' in '" +
                                    std::string(text) + "'");
    if (host.empty()) throw std::invalid_argument("empty host in '" + std::string(text) + "'");
    return from_host_port(host, p);
}

unsigned address::port() const noexcept {
    if (family() == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    if (family() == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    return 0;
}

std::string address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                  sizeof buf);
        return std::string(buf) + ":" + std::to_string(port());
    }
    if (family() == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                  sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(port());
    }
    if (family() == AF_UNIX) {
        const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
        std::size_t n =
            len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
        return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    return "<unbound>";
}

}  // namespace coronet
