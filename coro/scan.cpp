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
    const void* hit;
    if (term.size() == 1)
        hit = std::memchr(haystack.data(), term.front(), haystack.size());
    else
        hit = ::memmem(haystack.data(), haystack.size(), term.data(), term.size());
    if (hit == nullptr) return std::string_view::npos;
    return static_cast<std::size_t>(static_cast<const char*>(hit) - haystack.data());
}

}  // namespace coronet
