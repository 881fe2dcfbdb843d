#include <catch2/catch.hpp>
TEST_CASE("smoke: arithmetic", "[smoke]") { REQUIRE(1 + 1 == 2); }
