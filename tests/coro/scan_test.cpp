#include <coronet/coro/scan.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using coronet::find_prefix_at_end;
using coronet::find_terminator;
using namespace std::string_view_literals;

TEST_CASE("scan: find_prefix_at_end matches asynchat's examples", "[scan]") {
    CHECK(find_prefix_at_end("qwerty\r", "\r\n") == 1);
    CHECK(find_prefix_at_end("qwertydkjf", "\r\n") == 0);
}

TEST_CASE("scan: find_prefix_at_end returns the longest proper prefix", "[scan]") {
    CHECK(find_prefix_at_end("data\r\n", "\r\n.\r\n") == 2);
    CHECK(find_prefix_at_end("data\r\n.\r", "\r\n.\r\n") == 4);
    CHECK(find_prefix_at_end("abab", "aba") == 2);
    CHECK(find_prefix_at_end("aaaa", "aaab") == 3);
    // A whole needle at the end is not a *proper* prefix; its own proper prefixes may be.
    CHECK(find_prefix_at_end("x\r\n", "\r\n") == 0);
    CHECK(find_prefix_at_end("aaa", "aaa") == 2);
}

TEST_CASE("scan: find_prefix_at_end handles short inputs", "[scan]") {
    CHECK(find_prefix_at_end("", "\r\n") == 0);
    CHECK(find_prefix_at_end("\r", "\r\n") == 1);
    CHECK(find_prefix_at_end("\r\n", "\r\n.\r\n") == 2);
    CHECK(find_prefix_at_end("abc", "") == 0);
    CHECK(find_prefix_at_end("abc", "c") == 0);  // a one-byte needle has no proper prefix
}

TEST_CASE("scan: find_terminator finds one-byte terminators", "[scan]") {
    CHECK(find_terminator("hello\nworld\n", "\n") == 5);
    CHECK(find_terminator("hello", "\n") == std::string_view::npos);
    CHECK(find_terminator("", "\n") == std::string_view::npos);
    CHECK(find_terminator("\xff\x00z"sv, "\x00"sv) == 1);
    CHECK(find_terminator("a\xff", "\xff") == 1);  // a negative char still matches
}

TEST_CASE("scan: find_terminator finds multi-byte terminators", "[scan]") {
    CHECK(find_terminator("GET / HTTP/1.0\r\n\r\nbody", "\r\n\r\n") == 14);
    CHECK(find_terminator("a\r\rb\r\n", "\r\n") == 4);
    CHECK(find_terminator("a\r", "\r\n") == std::string_view::npos);
    CHECK(find_terminator("\r\n", "\r\n.\r\n") == std::string_view::npos);
    CHECK(find_terminator("x\0y\0z"sv, "\0z"sv) == 3);
}

TEST_CASE("scan: find_terminator with an empty terminator returns 0", "[scan]") {
    CHECK(find_terminator("abc", "") == 0);
    CHECK(find_terminator("", "") == 0);
}

TEST_CASE("scan: find_terminator agrees with std::string_view::find", "[scan]") {
    std::string haystack;
    for (int i = 0; i < 2000; ++i)
        haystack += static_cast<char>("ab\r\n."[(i * 7 + i / 3) % 5]);
    for (std::string_view term : {"\r\n.\r\n"sv, "\r\n"sv, "."sv, "ab"sv, "bb\r"sv, "zz"sv})
        for (std::size_t from = 0; from < haystack.size(); from += 37) {
            std::string_view tail = std::string_view(haystack).substr(from);
            INFO("term size " << term.size() << ", from " << from);
            CHECK(find_terminator(tail, term) == tail.find(term));
        }
}

TEST_CASE("scan: find_terminator agrees with string_view::find on random input", "[scan]") {
    // Every path (memchr, memchr + compare for 2-4 bytes, memmem) against the
    // plain search, over a small alphabet so that near misses ("\r\r\n") abound.
    std::uint32_t seed = 12345;
    auto next = [&seed] { return seed = seed * 1664525u + 1013904223u; };
    const char alphabet[] = {'\r', '\n', 'a', 'q'};
    for (int round = 0; round < 20000; ++round) {
        std::string hay(next() % 40, ' ');
        for (auto& c : hay)
            c = alphabet[next() % 4];
        std::string term(1 + next() % 6, ' ');
        for (auto& c : term)
            c = alphabet[next() % 4];
        INFO("round " << round);
        REQUIRE(coronet::find_terminator(hay, term) == std::string_view(hay).find(term));
    }
}
