#include <coronet/lib/error.hpp>

#include <cerrno>
#include <cstring>

namespace coronet {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet"; }
    std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
        case errc::line_too_long: return "line too long (no terminator within max_line bytes)";
        case errc::fd_exceeds_fd_setsize: return "fd exceeds FD_SETSIZE (select backend)";
        case errc::timed_out: return "operation timed out";
        case errc::backend_unavailable: return "backend unavailable";
        case errc::message_too_long: return "message too long";
        case errc::channel_closed: return "channel closed";
        case errc::stream_truncated:
            return "stream truncated (the peer closed without close_notify)";
        case errc::transport_failed: return "transport failed";
        case errc::host_not_found: return "no such host name (or it has no address)";
        case errc::dns_timed_out: return "no answer from the DNS server in time";
        case errc::dns_refused: return "the DNS server refused the query";
        case errc::dns_failed: return "DNS server failure";
        case errc::no_address_connected: return "no address of the name accepted the connection";
        case errc::producer_failed: return "a producer failed";
        }
        return "unknown coronet error " + std::to_string(code);
    }
};

}  // namespace

const std::error_category& coronet_category() noexcept {
    static const category instance;
    return instance;
}

std::error_code error_of(int result) noexcept {
    if (result <= -0x10000) return {-result - 0x10000, coronet_category()};
    return {-result, std::system_category()};
}

bool is_disconnect(const std::error_code& ec) noexcept {
    if (ec.category() != std::system_category()) return false;
    switch (ec.value()) {
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN:
    case ECONNABORTED:
    case EPIPE: return true;
    default: return false;
    }
}

std::string errno_name(int err) {
    if (const char* name = strerrorname_np(err)) return name;
    return "errno " + std::to_string(err);
}

}  // namespace coronet
