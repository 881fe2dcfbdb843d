// tests/examples/resp_test.cpp: examples/resp.hpp without a socket: the commands run through
// store::execute() with Redis's replies (the RESP2 codec is tested in tests/proto/resp_test.cpp).
#include <coronet/examples/resp.hpp>

#include <catch2/catch.hpp>

#include <climits>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

namespace {

// Runs one command on db and returns the raw RESP reply.
std::string run(kv::store& db, std::initializer_list<std::string> words) {
    std::vector<std::string> argv(words);
    std::string out;
    db.execute(argv, out);
    return out;
}

}  // namespace

TEST_CASE("resp: strings, counters and multi-key commands answer like Redis", "[resp]") {
    kv::store db;
    CHECK(run(db, {"PING"}) == "+PONG\r\n");
    CHECK(run(db, {"ping", "hi"}) == "$2\r\nhi\r\n");
    CHECK(run(db, {"ECHO", "x y"}) == "$3\r\nx y\r\n");
    CHECK(run(db, {"SET", "k", "v"}) == "+OK\r\n");
    CHECK(run(db, {"get", "k"}) == "$1\r\nv\r\n");
    CHECK(run(db, {"GET", "missing"}) == "$-1\r\n");
    CHECK(run(db, {"SET", "k", "w", "NX"}) == "$-1\r\n");
    CHECK(run(db, {"SET", "new", "w", "XX"}) == "$-1\r\n");
    CHECK(run(db, {"SET", "k", "w", "XX"}) == "+OK\r\n");
    CHECK(run(db, {"SET", "k", "w", "NX", "XX"}) == "-ERR syntax error\r\n");
    CHECK(run(db, {"SET", "k", "w", "EX"}) == "-ERR syntax error\r\n");
    CHECK(run(db, {"SET", "k", "w", "EX", "ten"}) ==
          "-ERR value is not an integer or out of range\r\n");
    CHECK(run(db, {"SET", "k", "w", "EX", "0"}) == "-ERR invalid expire time in 'set' command\r\n");
    CHECK(run(db, {"SET", "k", "w", "PX", "9223372036854775807"}) ==
          "-ERR invalid expire time in 'set' command\r\n");
    CHECK(run(db, {"EXISTS", "k", "nope", "k"}) == ":2\r\n");
    CHECK(run(db, {"INCR", "n"}) == ":1\r\n");
    CHECK(run(db, {"INCRBY", "n", "41"}) == ":42\r\n");
    CHECK(run(db, {"DECR", "n"}) == ":41\r\n");
    CHECK(run(db, {"DECRBY", "n", "40"}) == ":1\r\n");
    CHECK(run(db, {"INCR", "k"}) == "-ERR value is not an integer or out of range\r\n");
    CHECK(run(db, {"INCRBY", "n", "x"}) == "-ERR value is not an integer or out of range\r\n");
    CHECK(run(db, {"SET", "max", "9223372036854775807"}) == "+OK\r\n");
    CHECK(run(db, {"INCR", "max"}) == "-ERR increment or decrement would overflow\r\n");
    CHECK(run(db, {"MSET", "a", "1", "b", "2"}) == "+OK\r\n");
    CHECK(run(db, {"MGET", "a", "nope", "b"}) == "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n");
    CHECK(run(db, {"DBSIZE"}) == ":5\r\n");
    CHECK(run(db, {"DEL", "a", "b", "nope"}) == ":2\r\n");
    CHECK(run(db, {"FLUSHALL"}) == "+OK\r\n");
    CHECK(run(db, {"DBSIZE"}) == ":0\r\n");
}

TEST_CASE("resp: wrong arity and unknown commands get Redis's errors", "[resp]") {
    kv::store db;
    CHECK(run(db, {"GET"}) == "-ERR wrong number of arguments for 'get' command\r\n");
    CHECK(run(db, {"Set", "k"}) == "-ERR wrong number of arguments for 'set' command\r\n");
    CHECK(run(db, {"MSET", "a", "1", "b"}) ==
          "-ERR wrong number of arguments for 'mset' command\r\n");
    CHECK(run(db, {"PING", "a", "b"}) == "-ERR wrong number of arguments for 'ping' command\r\n");
    CHECK(run(db, {"DBSIZE", "x"}) == "-ERR wrong number of arguments for 'dbsize' command\r\n");
    CHECK(run(db, {"FOO", "bar", "b\r\nz"}) ==
          "-ERR unknown command 'FOO', with args beginning with: 'bar' 'b  z' \r\n");
}

TEST_CASE("resp: keys expire lazily on access and in the sweep", "[resp]") {
    kv::store db;
    CHECK(run(db, {"SET", "soon", "v", "PX", "1"}) == "+OK\r\n");
    CHECK(run(db, {"SET", "later", "v", "EX", "100"}) == "+OK\r\n");
    CHECK(run(db, {"SET", "kept", "v"}) == "+OK\r\n");
    CHECK(run(db, {"TTL", "later"}) == ":100\r\n");
    CHECK(run(db, {"TTL", "kept"}) == ":-1\r\n");
    CHECK(run(db, {"TTL", "missing"}) == ":-2\r\n");
    CHECK(run(db, {"PTTL", "missing"}) == ":-2\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // "soon" is now past its deadline

    SECTION("a command touching the key deletes it") {
        CHECK(run(db, {"DBSIZE"}) == ":3\r\n");  // not touched yet: still counted, as in Redis
        CHECK(run(db, {"GET", "soon"}) == "$-1\r\n");
        CHECK(run(db, {"DBSIZE"}) == ":2\r\n");
    }
    SECTION("the sweep deletes it untouched, and only it") {
        CHECK(db.sweep(100) == 1);
        CHECK(db.sweep(100) == 0);
        CHECK(run(db, {"DBSIZE"}) == ":2\r\n");
    }
    SECTION("SET without EX, and MSET, clear a deadline; KEEPTTL and INCR keep it") {
        CHECK(run(db, {"SET", "later", "w"}) == "+OK\r\n");
        CHECK(run(db, {"TTL", "later"}) == ":-1\r\n");
        CHECK(run(db, {"SET", "n", "1", "EX", "50"}) == "+OK\r\n");
        CHECK(run(db, {"INCR", "n"}) == ":2\r\n");
        CHECK(run(db, {"TTL", "n"}) == ":50\r\n");
        CHECK(run(db, {"SET", "n", "5", "KEEPTTL"}) == "+OK\r\n");
        CHECK(run(db, {"TTL", "n"}) == ":50\r\n");
        CHECK(run(db, {"MSET", "n", "6"}) == "+OK\r\n");
        CHECK(run(db, {"TTL", "n"}) == ":-1\r\n");
    }
    SECTION("EXPIRE sets a deadline, and a non-positive one deletes the key") {
        CHECK(run(db, {"EXPIRE", "kept", "30"}) == ":1\r\n");
        CHECK(run(db, {"TTL", "kept"}) == ":30\r\n");
        CHECK(run(db, {"EXPIRE", "missing", "30"}) == ":0\r\n");
        CHECK(run(db, {"EXPIRE", "kept", "x"}) ==
              "-ERR value is not an integer or out of range\r\n");
        CHECK(run(db, {"EXPIRE", "kept", "9223372036854775807"}) ==
              "-ERR invalid expire time in 'expire' command\r\n");
        CHECK(run(db, {"EXPIRE", "kept", "0"}) == ":1\r\n");
        CHECK(run(db, {"EXISTS", "kept"}) == ":0\r\n");
        CHECK(db.sweep(100) == 1);  // "soon"; the deleted keys left no stale deadline behind
        CHECK(db.sweep(100) == 0);
    }
}

TEST_CASE("resp: the handshake commands of redis-cli and redis-benchmark succeed", "[resp]") {
    kv::store db;
    CHECK(run(db, {"CONFIG", "GET", "save"}) == "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    CHECK(run(db, {"config", "get", "appendonly"}) == "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    CHECK(run(db, {"CONFIG", "GET", "nothing"}) == "*0\r\n");
    CHECK(run(db, {"CONFIG", "SET", "save", ""}).starts_with("-ERR unknown subcommand 'SET'"));
    CHECK(run(db, {"COMMAND"}) == "*0\r\n");
    CHECK(run(db, {"COMMAND", "COUNT"}) == ":22\r\n");
    CHECK(run(db, {"COMMAND", "DOCS"})
              .starts_with("-ERR unknown subcommand 'DOCS'"));  // redis-cli copes
    CHECK(run(db, {"SELECT", "0"}) == "+OK\r\n");
    CHECK(run(db, {"SELECT", "1"}) == "-ERR DB index is out of range\r\n");
    CHECK(run(db, {"INFO"}).find("redis_version:") != std::string::npos);
    std::vector<std::string> quit{"QUIT"};
    std::string out;
    CHECK(db.execute(quit, out) == kv::after_reply::close);
    CHECK(out == "+OK\r\n");
}

TEST_CASE("resp: a store shared by threads counts every increment", "[resp]") {
    kv::store db(kv::sharing::many_threads);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&db] {
            for (int i = 0; i < 10000; ++i)
                run(db, {"INCR", "n"});
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK(run(db, {"GET", "n"}) == "$5\r\n40000\r\n");
}
