#include <coronet/lib/address.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

using coronet::address;

namespace {

// The message parse() throws with, or "" when it does not throw invalid_argument.
std::string parse_error(const std::string& text) {
    try {
        (void)address::parse(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("address: IPv4 host:port parses to the same text", "[address]") {
    auto a = address::parse("127.0.0.1:7000");
    REQUIRE(a.family() == AF_INET);
    REQUIRE(a.port() == 7000);
    REQUIRE(a.size() == sizeof(sockaddr_in));
    REQUIRE(a.to_string() == "127.0.0.1:7000");
}

TEST_CASE("address: bracketed IPv6 literal parses to the same text", "[address]") {
    auto a = address::parse("[::1]:7000");
    REQUIRE(a.family() == AF_INET6);
    REQUIRE(a.port() == 7000);
    REQUIRE(a.size() == sizeof(sockaddr_in6));
    REQUIRE(a.to_string() == "[::1]:7000");
}

TEST_CASE("address: localhost resolves to a loopback address with the port kept", "[address]") {
    auto a = address::parse("localhost:7000");
    REQUIRE(a.port() == 7000);
    INFO("resolved to " << a.to_string());
    if (a.family() == AF_INET) {
        REQUIRE(a.to_string() == "127.0.0.1:7000");
    } else {
        REQUIRE(a.family() == AF_INET6);
        REQUIRE(a.to_string() == "[::1]:7000");
    }
}

TEST_CASE("address: unix:/path names a Unix-domain socket", "[address]") {
    auto a = address::parse("unix:/tmp/coronet.sock");
    REQUIRE(a.family() == AF_UNIX);
    REQUIRE(a.port() == 0);
    REQUIRE(a.to_string() == "unix:/tmp/coronet.sock");
    const auto* un = reinterpret_cast<const sockaddr_un*>(a.data());
    REQUIRE(std::string(un->sun_path) == "/tmp/coronet.sock");
}

TEST_CASE("address: port 0 and port 65535 are accepted", "[address]") {
    REQUIRE(address::parse("127.0.0.1:0").port() == 0);
    REQUIRE(address::parse("127.0.0.1:65535").port() == 65535);
}

TEST_CASE("address: from_host_port and a copied sockaddr agree with parse", "[address]") {
    auto parsed = address::parse("127.0.0.1:8080");
    auto built = address::from_host_port("127.0.0.1", 8080);
    REQUIRE(built.to_string() == parsed.to_string());
    address copied(parsed.data(), parsed.size());
    REQUIRE(copied.to_string() == "127.0.0.1:8080");
    REQUIRE(copied.size() == parsed.size());
}

TEST_CASE("address: malformed text throws invalid_argument with the reason", "[address]") {
    SECTION("no port") {
        REQUIRE_THAT(parse_error("127.0.0.1"), Catch::Contains("expected host:port"));
    }
    SECTION("empty port") { REQUIRE_THAT(parse_error("127.0.0.1:"), Catch::Contains("bad port")); }
    SECTION("port not a number") {
        REQUIRE_THAT(parse_error("127.0.0.1:http"), Catch::Contains("bad port 'http'"));
    }
    SECTION("port with trailing junk") {
        REQUIRE_THAT(parse_error("127.0.0.1:70x"), Catch::Contains("bad port"));
    }
    SECTION("negative port") {
        REQUIRE_THAT(parse_error("127.0.0.1:-1"), Catch::Contains("bad port"));
    }
    SECTION("port out of range") {
        REQUIRE_THAT(parse_error("127.0.0.1:65536"), Catch::Contains("bad port"));
    }
    SECTION("empty host") { REQUIRE_THAT(parse_error(":7000"), Catch::Contains("empty host")); }
    SECTION("unclosed IPv6 bracket") {
        REQUIRE_THAT(parse_error("[::1:7000"), Catch::Contains("[v6]:port"));
    }
    SECTION("IPv6 bracket without a port") {
        REQUIRE_THAT(parse_error("[::1]"), Catch::Contains("[v6]:port"));
    }
    SECTION("IPv6 bracket without a colon") {
        REQUIRE_THAT(parse_error("[::1]7000"), Catch::Contains("[v6]:port"));
    }
    SECTION("empty text") { REQUIRE_THAT(parse_error(""), Catch::Contains("expected host:port")); }
    SECTION("empty unix path") {
        REQUIRE_THAT(parse_error("unix:"), Catch::Contains("unix socket path"));
    }
    SECTION("unix path longer than sun_path") {
        REQUIRE_THAT(parse_error("unix:/" + std::string(200, 'x')),
                     Catch::Contains("unix socket path"));
    }
}
