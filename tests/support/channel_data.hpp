#pragma once
// Test support: the asynchat conformance data and small helpers the channel
// tests share (over sockets in channel_input_test, in memory in channel_memory_test).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::testing {

inline constexpr std::string_view term16 = "<<terminator16>>";
static_assert(term16.size() == 16);

// asynchat's test lines (CONFORMANCE.md items 1-3, 9) and the terminators they are split by.
inline const std::vector<std::string> classic_lines = {"hello world", "", "I'm not dead yet!"};
inline const std::vector<std::string> terminators = {"\n", "\r\n", "qqq", std::string(term16)};

// "\r\n" spelled out, for failure messages.
inline std::string printable(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\r')
            out += "\\r";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

inline std::string join_lines(const std::vector<std::string>& lines, std::string_view term) {
    std::string out;
    for (const auto& l : lines)
        (out += l) += term;
    return out;
}

// A position-dependent byte (never NUL), so any loss, duplication or reordering shows.
inline char pattern_at(std::size_t i) { return static_cast<char>('!' + (i * 7 + i / 4099) % 90); }

inline std::string pattern(std::size_t from, std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = pattern_at(from + i);
    return s;
}

// A read's view copied (it dies at the next read).
inline std::optional<std::string> own(std::optional<std::string_view> v) {
    if (!v) return std::nullopt;
    return std::string(*v);
}

}  // namespace coronet::testing
