// tests/proto/resp_test.cpp: proto/resp.hpp: integers parsed as strictly as Redis does,
// request counts and lengths against their limits, inline commands and RESP2 reply encoding.
#include <coronet/proto/resp.hpp>

#include <catch2/catch.hpp>

#include <climits>
#include <initializer_list>
#include <string>
#include <vector>

namespace resp = coronet::resp;

TEST_CASE("resp: integers are parsed as strictly as Redis does", "[resp]") {
    CHECK(resp::to_integer("0") == 0);
    CHECK(resp::to_integer("-42") == -42);
    CHECK(resp::to_integer("9223372036854775807") == LLONG_MAX);
    CHECK(resp::to_integer("-9223372036854775808") == LLONG_MIN);
    for (const char* bad :
         {"", "-", "+1", " 1", "1 ", "01", "-0", "1x", "9223372036854775808", "1.5"}) {
        INFO("text: '" << bad << "'");
        CHECK_FALSE(resp::to_integer(bad));
    }
}

TEST_CASE("resp: counts and lengths beyond the limits are protocol errors", "[resp]") {
    resp::limits lim{.max_bulk = 100, .max_args = 8};
    CHECK(resp::multibulk_count("*3", lim) == 3);
    CHECK(resp::multibulk_count("*0", lim) == 0);
    CHECK(resp::multibulk_count("*-1", lim) == 0);
    CHECK_THROWS_WITH(resp::multibulk_count("*9", lim), "invalid multibulk length");
    CHECK_THROWS_WITH(resp::multibulk_count("*x", lim), "invalid multibulk length");
    CHECK(resp::bulk_length("$100", lim) == 100);
    CHECK(resp::bulk_length("$0", lim) == 0);
    CHECK_THROWS_WITH(resp::bulk_length("$101", lim), "invalid bulk length");
    CHECK_THROWS_WITH(resp::bulk_length("$-1", lim), "invalid bulk length");
    CHECK_THROWS_WITH(resp::bulk_length("$99999999999999999999999", lim), "invalid bulk length");
    CHECK_THROWS_WITH(resp::bulk_length("x3", lim), "expected '$', got 'x'");
    CHECK(resp::bulk_body("a\r\nb\r\n") == "a\r\nb");
    // Overflow and non-canonical numbers (Redis's string2ll rejects them all), and sizes far
    // beyond the default limits, are refused before anything is allocated.
    for (const char* bad : {"*9223372036854775808", "*18446744073709551616", "*+1", "*01", "*-0",
                            "*", "* 1", "*1 ", "*0x10"}) {
        INFO("line: " << bad);
        CHECK_THROWS_WITH(resp::multibulk_count(bad, lim), "invalid multibulk length");
    }
    CHECK(resp::multibulk_count("*-2", lim) == 0);  // as Redis: any count <= 0 is an empty request
    CHECK(resp::multibulk_count("*-9223372036854775808", lim) == 0);
    for (const char* bad : {"$9223372036854775808", "$18446744073709551616", "$-2", "$+1", "$01",
                            "$-0", "$", "$ 1", "$1 ", "$-9223372036854775808"}) {
        INFO("line: " << bad);
        CHECK_THROWS_WITH(resp::bulk_length(bad, lim), "invalid bulk length");
    }
    const resp::limits defaults;
    CHECK_THROWS_WITH(resp::multibulk_count("*1099511627776", defaults),
                      "invalid multibulk length");
    CHECK_THROWS_WITH(resp::bulk_length("$1099511627776", defaults), "invalid bulk length");
    CHECK_THROWS_WITH(resp::bulk_length("$629145600", defaults), "invalid bulk length");  // 600 MiB
    CHECK(resp::bulk_length("$536870912", defaults) == 536870912);  // 512 MiB, Redis's default
    CHECK_THROWS_AS(resp::bulk_body("abxx"), resp::protocol_error);
}

TEST_CASE("resp: inline commands split on spaces and reuse the argument strings", "[resp]") {
    std::vector<std::string> args{"old", "old", "old", "old"};
    CHECK(resp::split_inline("  SET\tk   v ", args) == 3);
    CHECK(args[0] == "SET");
    CHECK(args[1] == "k");
    CHECK(args[2] == "v");
    CHECK(resp::split_inline("   ", args) == 0);
}

TEST_CASE("resp: replies are encoded as RESP2", "[resp]") {
    std::string out;
    resp::reply_simple(out, "OK");
    resp::reply_error(out, "ERR bad\r\nthing");
    resp::reply_integer(out, -7);
    resp::reply_bulk(out, "a\r\n");
    resp::reply_null(out);
    resp::reply_array(out, 2);
    CHECK(out == "+OK\r\n-ERR bad  thing\r\n:-7\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n");
}
