#include <coronet/coro/scan.hpp>

#include <string.h>  // memmem (glibc; g++ defines _GNU_SOURCE)

#include <cstring>

namespace coronet {

std::size_t find_prefix_at_end(std::string_view haystack, std::string_view needle) noexcept {
    if (haystack.empty() || needle.size() < 2) return 0;
    // Fast path: a prefix that ends haystack must contain haystack's last byte.
    if (needle.substr(0, needle.size() - 1).find(haystack.back()) == std::string_view::npos)
        return 0;
    std::size_t l = needle.size() - 1;
    if (l > haystack.size()) l = haystack.size();
    // asynchat's loop: try the longest prefix first.
    for (; l > 0; --l)
        if (haystack.ends_with(needle.substr(0, l))) return l;
    return 0;
}

std::size_t find_terminator(std::string_view haystack, std::string_view term) noexcept {
    if (term.empty()) return 0;
    if (term.size() > haystack.size()) return std::string_view::npos;
    const char* p = haystack.data();
    const char* end = p + haystack.size();
    if (term.size() == 1) {
        const void* hit = std::memchr(p, term.front(), haystack.size());
        return hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - p)
                   : std::string_view::npos;
    }
    if (term.size() <= 4) {
        // Short terminators ("\r\n", "\r\n\r\n") are the hot case: memchr for the
        // first byte, then compare the rest. memmem's setup costs more than the
        // search itself for the short lines a protocol server reads (profiled).
        // The rest (1-3 bytes) is compared in line: a memcmp call per candidate
        // cost about as much as the memchr that found it (profiled on an HTTP server).
        const char* last = end - term.size();  // the last place a match can start
        const char* rest = term.data() + 1;
        const std::size_t rest_size = term.size() - 1;
        for (;;) {
            auto* hit = static_cast<const char*>(std::memchr(p, term.front(), last - p + 1));
            if (!hit) return std::string_view::npos;
            std::size_t i = 0;
            while (i < rest_size && hit[1 + i] == rest[i])
                ++i;
            if (i == rest_size) return static_cast<std::size_t>(hit - haystack.data());
            p = hit + 1;
            if (p > last) return std::string_view::npos;
        }
    }
    const void* hit = ::memmem(p, haystack.size(), term.data(), term.size());
    if (hit == nullptr) return std::string_view::npos;
    return static_cast<std::size_t>(static_cast<const char*>(hit) - haystack.data());
}

}  // namespace coronet
