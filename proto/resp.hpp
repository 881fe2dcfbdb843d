#pragma once
// proto/resp.hpp: RESP2, the Redis serialization protocol, as bytes: the pieces a server needs to
// read requests (multibulk and bulk headers checked against limits, inline commands, integers
// as strictly as Redis parses them) and the replies it writes. Nothing here does I/O: a server
// reads "*N" and "$N" lines with channel::read_until("\r\n") and each bulk with
// read_exactly(N + 2), switching terminators as asynchat does (examples/kv_server.cpp); tests
// and fuzzers (tests/proto/resp_test.cpp, tests/fuzz/resp_fuzz.cpp) drive it directly.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::resp {

// Malformed input: the server answers "-ERR Protocol error: <what>" and closes the connection.
class protocol_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// How much one request may announce; a count or length beyond these is a protocol error.
struct limits {
    std::size_t max_bulk = 512 * 1024 * 1024;  // one bulk string (Redis's proto-max-bulk-len)
    std::size_t max_args = 1024 * 1024;        // bulk strings in one request
};

// Redis's string2ll: an optional '-' then digits, no '+', spaces or leading zeros, in range.
std::optional<long long> to_integer(std::string_view text);

// N of a "*N" line; throws protocol_error above max_args. N <= 0 is an empty request (0).
std::size_t multibulk_count(std::string_view line, const limits& lim);

// N of a "$N" line; throws protocol_error if the line is not one or N is above max_bulk.
std::size_t bulk_length(std::string_view line, const limits& lim);

// The bulk string of `bulk` (N bytes then "\r\n"); throws protocol_error if the "\r\n" is missing.
std::string_view bulk_body(std::string_view bulk);

// Splits an inline command ("SET k v") on spaces and tabs into args[0..) (no quoting, unlike
// Redis); returns the count.
std::size_t split_inline(std::string_view line, std::vector<std::string>& args);

// Appends n in decimal (the digits of an integer reply; the value INCR stores).
void append_decimal(std::string& out, long long n);

// RESP2 replies, appended to out.
void reply_simple(std::string& out, std::string_view text);  // +OK
void reply_error(std::string& out, std::string_view text);   // -ERR ...
void reply_integer(std::string& out, long long n);           // :42
void reply_bulk(std::string& out, std::string_view data);    // $5 hello
void reply_null(std::string& out);                           // $-1 (nil)
void reply_array(std::string& out, std::size_t n);           // *n, then n replies

}  // namespace coronet::resp
