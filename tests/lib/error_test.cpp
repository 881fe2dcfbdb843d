#include <coronet/lib/error.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>
#include <system_error>

TEST_CASE("error: coronet conditions share one category with readable messages", "[error]") {
    std::error_code ec = coronet::errc::fd_exceeds_fd_setsize;  // via is_error_code_enum
    REQUIRE(ec.category() == coronet::coronet_category());
    REQUIRE(std::string(ec.category().name()) == "coronet");
    REQUIRE_THAT(ec.message(), Catch::Contains("FD_SETSIZE"));
    REQUIRE(make_error_code(coronet::errc::timed_out).category() == coronet::coronet_category());
    REQUIRE_THAT(make_error_code(coronet::errc::timed_out).message(), Catch::Contains("timed out"));
}

TEST_CASE("error: an operation result decodes to errno or to a coronet condition", "[error]") {
    REQUIRE(coronet::error_of(-ECONNRESET) == std::errc::connection_reset);
    REQUIRE(coronet::error_of(-ECONNRESET).category() == std::system_category());
    REQUIRE(coronet::error_of(coronet::result_of(coronet::errc::timed_out)) ==
            coronet::errc::timed_out);
    REQUIRE(coronet::error_of(coronet::result_of(coronet::errc::line_too_long)) ==
            coronet::errc::line_too_long);
    // coronet's results sit below every errno value, so the two never collide.
    REQUIRE(coronet::result_of(coronet::errc::line_too_long) < -4095);
}

TEST_CASE("error: throw_if_error passes counts through and throws system_error below zero",
          "[error]") {
    REQUIRE(coronet::throw_if_error(0, "recv") == 0);
    REQUIRE(coronet::throw_if_error(4096, "recv") == 4096);
    try {
        coronet::throw_if_error(-EPIPE, "send");
        FAIL("no exception");
    } catch (const std::system_error& e) {
        REQUIRE(e.code() == std::errc::broken_pipe);
        REQUIRE_THAT(e.what(), Catch::StartsWith("send"));
    }
    try {
        coronet::throw_if_error(coronet::result_of(coronet::errc::fd_exceeds_fd_setsize), "recv");
        FAIL("no exception");
    } catch (const std::system_error& e) {
        REQUIRE(e.code() == coronet::errc::fd_exceeds_fd_setsize);
    }
}

TEST_CASE("error: errno_name gives the symbolic name", "[error]") {
    REQUIRE(coronet::errno_name(ECONNRESET) == "ECONNRESET");
    REQUIRE(coronet::errno_name(EPIPE) == "EPIPE");
    REQUIRE_THAT(coronet::errno_name(99999), Catch::Contains("99999"));
}
