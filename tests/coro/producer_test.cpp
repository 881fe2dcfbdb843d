#include <coronet/coro/producer.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace coronet;

namespace {

// CONFORMANCE.md C: a 16,385-byte test string (one byte past 16 KiB), not all one byte.
std::string test_string(std::size_t size = 16385) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
    return s;
}

// Every chunk more() returns up to (not including) the first empty one.
std::vector<std::string> drain_chunks(producer& p) {
    std::vector<std::string> chunks;
    for (std::string s = p.more(); !s.empty(); s = p.more())
        chunks.push_back(std::move(s));
    return chunks;
}

std::string drain(producer& p) {
    std::string all;
    for (auto& chunk : drain_chunks(p))
        all += chunk;
    return all;
}

std::vector<producer> producers_of(producer a, producer b, producer c) {
    std::vector<producer> v;
    v.push_back(std::move(a));
    v.push_back(std::move(b));
    v.push_back(std::move(c));
    return v;
}

// A user-defined producer: counts how often more() was called.
struct counting_producer {
    int* calls;
    int left;
    std::string more() {
        ++*calls;
        return left-- > 0 ? std::string("x") : std::string();
    }
};

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// A temporary file holding content, removed at scope exit.
class temp_file {
public:
    explicit temp_file(const std::string& content) {
        const char* dir = std::getenv("TEST_TMPDIR");
        std::string pattern =
            (dir ? std::string(dir) : std::filesystem::temp_directory_path().string()) +
            "/producer_test_XXXXXX";
        int fd = ::mkstemp(pattern.data());
        REQUIRE(fd >= 0);
        path_ = pattern;
        std::size_t done = 0;
        while (done < content.size()) {
            ssize_t n = ::write(fd, content.data() + done, content.size() - done);
            REQUIRE(n > 0);
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
    ~temp_file() { std::filesystem::remove(path_); }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

std::string inflate_all(const std::string& compressed) {
    z_stream zs{};
    REQUIRE(inflateInit(&zs) == Z_OK);
    std::string out;
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    zs.avail_in = static_cast<uInt>(compressed.size());
    int rc;
    do {
        char buffer[4096];
        zs.next_out = reinterpret_cast<Bytef*>(buffer);
        zs.avail_out = sizeof buffer;
        rc = inflate(&zs, Z_NO_FLUSH);
        REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
        out.append(buffer, sizeof buffer - zs.avail_out);
    } while (rc != Z_STREAM_END);
    CHECK(zs.avail_in == 0);  // nothing after the end of the stream
    inflateEnd(&zs);
    return out;
}

// SMTP dot-stuffing of a whole stream at once: the reference for escaping_producer.
std::string dot_stuff(const std::string& s, bool line_start) {
    std::string in = (line_start ? "\r\n" : "") + s;
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = in.find("\r\n.", pos)) != std::string::npos; pos = hit + 3)
        out += in.substr(pos, hit - pos) + "\r\n..";
    out += in.substr(pos);
    return line_start ? out.substr(2) : out;
}

}  // namespace

// --- the concept and the holder

static_assert(producer_source<simple_producer>);
static_assert(producer_source<file_producer>);
static_assert(producer_source<producer>);
static_assert(producer_source<counting_producer>);
static_assert(!producer_source<int>);
static_assert(!producer_source<std::string>);
static_assert(!std::is_copy_constructible_v<producer>);
static_assert(std::is_nothrow_move_constructible_v<producer>);
static_assert(!std::is_copy_constructible_v<file_producer>);
static_assert(std::is_nothrow_move_constructible_v<file_producer>);

TEST_CASE("producer: a holder wraps any type with more()", "[producer]") {
    int calls = 0;
    producer p = counting_producer{&calls, 3};
    REQUIRE(p);
    CHECK(drain(p) == "xxx");
    CHECK(calls == 4);
    CHECK(p.more().empty());
}

TEST_CASE("producer: an empty holder is false and returns empty", "[producer]") {
    producer p;
    CHECK_FALSE(p);
    CHECK(p.more().empty());
    CHECK(p.as_file() == nullptr);

    producer q = simple_producer("abc");
    producer r = std::move(q);
    CHECK(r);
    CHECK(r.more() == "abc");
}

TEST_CASE("producer: as_file exposes only a wrapped file_producer", "[producer]") {
    temp_file file("hello");
    producer f = file_producer::open(file.path());
    REQUIRE(f.as_file() != nullptr);
    CHECK(f.as_file()->fd() >= 0);
    CHECK(f.as_file()->remaining() == std::optional<std::size_t>(5));

    producer s = simple_producer("hello");
    CHECK(s.as_file() == nullptr);
    producer h = hooked_producer(file_producer::open(file.path()), [](std::size_t) {});
    CHECK(h.as_file() == nullptr);  // wrapped in another producer: no zero-copy
}

// --- simple (C.28)

TEST_CASE("producer: simple returns buffer_size bytes per more", "[producer]") {
    const std::string data = test_string();
    producer p = simple_producer(data);
    auto chunks = drain_chunks(p);
    REQUIRE(chunks.size() == 17);  // 16 * 1024 + 1
    CHECK(chunks.front() == data.substr(0, 1024));
    for (std::size_t i = 0; i + 1 < chunks.size(); ++i)
        CHECK(chunks[i].size() == 1024);
    CHECK(chunks.back() == data.substr(16384));
    std::string joined;
    for (auto& c : chunks)
        joined += c;
    CHECK(joined == data);
    CHECK(p.more().empty());
    CHECK(p.more().empty());
}

TEST_CASE("producer: simple with buffer_size 5 returns the data exactly", "[producer]") {
    const std::string data = test_string();
    producer p = simple_producer(data, 5);
    auto chunks = drain_chunks(p);
    CHECK(chunks.size() == 3277);  // ceil(16385 / 5)
    CHECK(chunks.front() == data.substr(0, 5));
    std::string joined;
    for (auto& c : chunks)
        joined += c;
    CHECK(joined == data);
}

TEST_CASE("producer: simple with data no larger than buffer_size returns it whole", "[producer]") {
    producer p = simple_producer("hello", 5);
    CHECK(p.more() == "hello");
    CHECK(p.more().empty());
    producer e = simple_producer("");
    CHECK(e.more().empty());
}

TEST_CASE("producer: simple rejects buffer_size 0", "[producer]") {
    CHECK_THROWS_AS(simple_producer("abc", 0), std::invalid_argument);
}

// --- lines (C.29)

TEST_CASE("producer: lines returns up to 50 lines per more, each with CRLF", "[producer]") {
    producer p = lines_producer(std::vector<std::string>(65, "a"));
    std::string fifty, fifteen;
    for (int i = 0; i < 50; ++i)
        fifty += "a\r\n";
    for (int i = 0; i < 15; ++i)
        fifteen += "a\r\n";
    CHECK(p.more() == fifty);
    CHECK(p.more() == fifteen);
    CHECK(p.more().empty());
    CHECK(p.more().empty());
}

TEST_CASE("producer: lines round-trips 65 lines", "[producer]") {
    producer p = lines_producer(std::vector<std::string>(65, "a"));
    std::string expected;
    for (int i = 0; i < 65; ++i)
        expected += "a\r\n";
    CHECK(drain(p) == expected);
}

TEST_CASE("producer: lines with no lines is exhausted, an empty line is CRLF", "[producer]") {
    producer none = lines_producer({});
    CHECK(none.more().empty());
    producer blank = lines_producer({"", "x", ""});
    CHECK(blank.more() == "\r\nx\r\n\r\n");
    CHECK(blank.more().empty());
}

// --- buffer_list (C.30)

TEST_CASE("producer: buffer_list returns one element per more, 1027 round-trip", "[producer]") {
    std::vector<std::string> buffers;
    for (int i = 0; i < 1027; ++i)
        buffers.push_back("buffer " + std::to_string(i) + ";");
    producer p = buffer_list_producer(buffers);
    auto chunks = drain_chunks(p);
    CHECK(chunks == buffers);
    CHECK(p.more().empty());
}

TEST_CASE("producer: buffer_list skips empty elements instead of stopping", "[producer]") {
    producer p = buffer_list_producer({"a", "", "b", ""});
    CHECK(p.more() == "a");
    CHECK(p.more() == "b");
    CHECK(p.more().empty());
    CHECK(p.more().empty());
}

// --- file (C.31)

TEST_CASE("producer: file reads 64 KiB per more, closes at EOF, then empty forever", "[producer]") {
    const std::string data = test_string(16385 * 10);  // 163,850 bytes: 64 KiB, 64 KiB, rest
    temp_file file(data);
    producer p = file_producer::open(file.path());
    file_producer* f = p.as_file();
    REQUIRE(f != nullptr);
    const int fd = f->fd();
    REQUIRE(fd >= 0);

    std::string first = p.more();
    CHECK(first.size() == 65536);
    CHECK(first == data.substr(0, 65536));
    CHECK(f->remaining() == std::optional<std::size_t>(data.size() - 65536));
    std::string second = p.more();
    CHECK(second.size() == 65536);
    std::string third = p.more();
    CHECK(third.size() == data.size() - 2 * 65536);
    CHECK(first + second + third == data);
    CHECK(fd_is_open(fd));

    CHECK(p.more().empty());  // EOF: closes
    CHECK(f->fd() == -1);
    CHECK_FALSE(fd_is_open(fd));
    for (int i = 0; i < 3; ++i)
        CHECK(p.more().empty());
    CHECK(f->remaining() == std::optional<std::size_t>(0));
}

TEST_CASE("producer: file closes its fd when destroyed early", "[producer]") {
    temp_file file(test_string());
    int fd;
    {
        file_producer f = file_producer::open(file.path());
        fd = f.fd();
        CHECK(f.more().size() == 16385);
        REQUIRE(fd_is_open(fd));
    }
    CHECK_FALSE(fd_is_open(fd));
}

TEST_CASE("producer: file moves keep one owner of the fd", "[producer]") {
    temp_file file("abc");
    file_producer a = file_producer::open(file.path());
    int fd = a.fd();
    file_producer b = std::move(a);
    CHECK(a.fd() == -1);
    CHECK(b.fd() == fd);
    CHECK(a.more().empty());
    CHECK(b.more() == "abc");
}

TEST_CASE("producer: file open of a missing path throws system_error", "[producer]") {
    try {
        (void)file_producer::open("/nonexistent/coronet/producer_test");
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::error_code(ENOENT, std::system_category()));
    }
    CHECK_THROWS_AS(file_producer(-1), std::invalid_argument);
}

TEST_CASE("producer: file zero-copy accessors track offset and remaining", "[producer]") {
    const std::string data = test_string();
    temp_file file(data);
    file_producer f = file_producer::open(file.path());
    CHECK(f.offset() == 0);
    CHECK(f.remaining() == std::optional<std::size_t>(16385));
    f.consumed(16000);  // as if sendfile sent that much
    CHECK(f.offset() == 16000);
    CHECK(f.remaining() == std::optional<std::size_t>(385));
    CHECK(f.more() == data.substr(16000));  // reading resumes where sending stopped
    CHECK(f.remaining() == std::optional<std::size_t>(0));
    int fd = f.fd();
    f.consumed(0);  // the sender saw EOF
    CHECK(f.fd() == -1);
    CHECK_FALSE(fd_is_open(fd));
    CHECK(f.more().empty());
}

TEST_CASE("producer: file append_to reads onto the end of a caller's buffer", "[producer]") {
    const std::string data = test_string();  // 16,385 bytes
    temp_file file(data);
    file_producer f = file_producer::open(file.path());
    std::string out = "head:";
    out.reserve(64 * 1024);
    const char* memory = out.data();
    CHECK(f.append_to(out, 1000) == 1000);
    CHECK(f.append_to(out) == 16385 - 1000);  // no more than is left
    CHECK(out.data() == memory);              // read into the room it had: nothing allocated
    CHECK(out == "head:" + data);
    CHECK_FALSE(f.sending_zero_copy());
    int fd = f.fd();
    CHECK(f.append_to(out) == 0);  // the end: closes
    CHECK_FALSE(fd_is_open(fd));
    CHECK(out == "head:" + data);
}

TEST_CASE("producer: file over a shared descriptor reads its range and never closes it",
          "[producer]") {
    const std::string data = test_string();
    temp_file file(data);
    int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    auto owner = std::make_shared<int>(fd);
    {
        file_producer f(owner, fd, 100, 5000);
        CHECK(owner.use_count() == 2);
        CHECK(f.offset() == 100);
        CHECK(f.remaining() == std::optional<std::size_t>(5000));
        file_producer moved = std::move(f);
        CHECK(owner.use_count() == 2);
        CHECK(moved.more() == data.substr(100, 5000));
        CHECK(moved.more().empty());
        CHECK(owner.use_count() == 1);  // let go at the end, not closed
        CHECK(fd_is_open(fd));
    }
    {
        file_producer f(owner, fd, 0, data.size());
        f.consumed(10000);  // as if sendfile sent that much
        CHECK(f.sending_zero_copy());
        CHECK(f.remaining() == std::optional<std::size_t>(data.size() - 10000));
    }  // destroyed before the end: let go too
    CHECK(owner.use_count() == 1);
    CHECK(fd_is_open(fd));
    CHECK_THROWS_AS(file_producer(nullptr, fd, 0, 1), std::invalid_argument);
    CHECK_THROWS_AS(file_producer(owner, -1, 0, 1), std::invalid_argument);
    ::close(fd);
}

TEST_CASE("producer: file starts at the fd's current position", "[producer]") {
    temp_file file("0123456789");
    int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::lseek(fd, 4, SEEK_SET) == 4);
    file_producer f(fd);
    CHECK(f.offset() == 4);
    CHECK(f.remaining() == std::optional<std::size_t>(6));
    CHECK(f.more() == "456789");
    CHECK(f.more().empty());
}

TEST_CASE("producer: file over a pipe reads until EOF, size unknown", "[producer]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(::write(fds[1], "through a pipe", 14) == 14);
    ::close(fds[1]);
    file_producer f(fds[0]);
    CHECK_FALSE(f.remaining().has_value());
    CHECK(f.more() == "through a pipe");
    CHECK(f.more().empty());
    CHECK(f.fd() == -1);
}

// --- composite (C.32, and C.27's "each producer is drained chunk by chunk")

TEST_CASE("producer: composite drains each inner producer in turn", "[producer]") {
    temp_file file("from the file");
    producer p = composite_producer(producers_of(simple_producer("abcdefgh", 3),
                                                 file_producer::open(file.path()),
                                                 lines_producer({"x", "y"})));
    auto chunks = drain_chunks(p);
    CHECK(chunks == std::vector<std::string>{"abc", "def", "gh", "from the file", "x\r\ny\r\n"});
    CHECK(p.more().empty());
}

TEST_CASE("producer: composite passes over empty and exhausted producers", "[producer]") {
    producer p =
        composite_producer(producers_of(simple_producer(""), producer{}, simple_producer("only")));
    CHECK(p.more() == "only");
    CHECK(p.more().empty());
    producer none = composite_producer({});
    CHECK(none.more().empty());
}

TEST_CASE("producer: composite releases a file as soon as it is drained", "[producer]") {
    temp_file file("data");
    file_producer f = file_producer::open(file.path());
    int fd = f.fd();
    producer p = composite_producer(
        producers_of(std::move(f), simple_producer("after"), simple_producer("more")));
    CHECK(p.more() == "data");
    CHECK(p.more() == "after");  // file hit EOF on the way here
    CHECK_FALSE(fd_is_open(fd));
}

// --- globbing (C.33)

TEST_CASE("producer: globbing returns at least buffer_size bytes per more", "[producer]") {
    const std::string data = test_string();
    producer p = globbing_producer(simple_producer(data, 5), 1024);
    auto chunks = drain_chunks(p);
    REQUIRE(chunks.size() == 16);
    for (std::size_t i = 0; i + 1 < chunks.size(); ++i)
        CHECK(chunks[i].size() == 1025);  // 205 pieces of 5: the first to reach 1024
    CHECK(chunks.back().size() == 16385 - 15 * 1025);
    std::string joined;
    for (auto& c : chunks)
        joined += c;
    CHECK(joined == data);
}

TEST_CASE("producer: globbing returns less only when inner is exhausted", "[producer]") {
    const std::string data = test_string();
    producer p = globbing_producer(simple_producer(data, 100));  // default 64 KiB
    CHECK(p.more() == data);
    CHECK(p.more().empty());
    CHECK(p.more().empty());
}

TEST_CASE("producer: globbing default gathers 64 KiB", "[producer]") {
    producer p = globbing_producer(simple_producer(test_string(16383 * 6), 16383));
    CHECK(p.more().size() == 16383 * 5);  // four pieces make 65,532: one short of 64 KiB
    CHECK(p.more().size() == 16383);
    producer q = globbing_producer(simple_producer(test_string(16384 * 5), 16384));
    CHECK(q.more().size() == 65536);
    CHECK(q.more().size() == 16384);
}

TEST_CASE("producer: globbing rejects buffer_size 0 and an empty inner", "[producer]") {
    CHECK_THROWS_AS(globbing_producer(simple_producer("x"), 0), std::invalid_argument);
    CHECK_THROWS_AS(globbing_producer(producer{}), std::invalid_argument);
}

// --- hooked (C.34)

TEST_CASE("producer: hooked calls back exactly once with the total", "[producer]") {
    const std::string data = test_string();
    std::vector<std::size_t> calls;
    producer p = hooked_producer(simple_producer(data, 1000),
                                 [&calls](std::size_t n) { calls.push_back(n); });
    for (int i = 0; i < 16; ++i)
        CHECK_FALSE(p.more().empty());
    CHECK(p.more().size() == 385);
    CHECK(calls.empty());  // not before exhaustion
    CHECK(p.more().empty());
    REQUIRE(calls.size() == 1);
    CHECK(calls[0] == 16385);
    CHECK(p.more().empty());
    CHECK(p.more().empty());
    CHECK(calls.size() == 1);
}

TEST_CASE("producer: hooked over an empty stream reports 0", "[producer]") {
    int called = 0;
    std::size_t total = 99;
    producer p = hooked_producer(simple_producer(""), [&](std::size_t n) {
        ++called;
        total = n;
    });
    CHECK(p.more().empty());
    CHECK(p.more().empty());
    CHECK(called == 1);
    CHECK(total == 0);
}

TEST_CASE("producer: hooked rejects an empty callback or inner", "[producer]") {
    CHECK_THROWS_AS(hooked_producer(simple_producer("x"), nullptr), std::invalid_argument);
    CHECK_THROWS_AS(hooked_producer(producer{}, [](std::size_t) {}), std::invalid_argument);
}

// --- chunked (C.35)

TEST_CASE("producer: chunked frames each chunk, with footers", "[producer]") {
    producer p =
        chunked_producer(buffer_list_producer({"the q", "uick ", "brown", " fox"}), "FOOTER\r\n");
    CHECK(drain(p) == "5\r\nthe q\r\n5\r\nuick \r\n5\r\nbrown\r\n4\r\n fox\r\n0\r\nFOOTER\r\n\r\n");
    CHECK(p.more().empty());
}

TEST_CASE("producer: chunked frames each chunk, without footers", "[producer]") {
    producer p = chunked_producer(buffer_list_producer({"the q", "uick ", "brown", " fox"}));
    auto chunks = drain_chunks(p);
    CHECK(chunks == std::vector<std::string>{"5\r\nthe q\r\n", "5\r\nuick \r\n", "5\r\nbrown\r\n",
                                             "4\r\n fox\r\n", "0\r\n\r\n"});
    CHECK(p.more().empty());
}

TEST_CASE("producer: chunked sizes are lowercase hex", "[producer]") {
    const std::string data = test_string();
    producer p = chunked_producer(simple_producer(data, 16385));
    CHECK(p.more() == "4001\r\n" + data + "\r\n");
    CHECK(p.more() == "0\r\n\r\n");
    producer q = chunked_producer(simple_producer(std::string(0xab, 'z'), 0xab));
    CHECK(q.more().starts_with("ab\r\n"));
}

TEST_CASE("producer: chunked never ends early on empty inner pieces", "[producer]") {
    producer p = chunked_producer(composite_producer(producers_of(
        simple_producer(""), buffer_list_producer({"", "abc", ""}), simple_producer(""))));
    CHECK(drain(p) == "3\r\nabc\r\n0\r\n\r\n");
    producer empty = chunked_producer(simple_producer(""));
    CHECK(empty.more() == "0\r\n\r\n");
    CHECK(empty.more().empty());
}

TEST_CASE("producer: chunked rejects footers without a final CRLF", "[producer]") {
    CHECK_THROWS_AS(chunked_producer(simple_producer("x"), "FOOTER"), std::invalid_argument);
    CHECK_NOTHROW(chunked_producer(simple_producer("x"), "A: 1\r\nB: 2\r\n"));
}

// tests/fuzz/chunked_fuzz found this in its first runs: footers were only checked for a final
// CRLF, so "\r\n\r\n" or "A: 1\r\n\r\nB: 2\r\n" passed; the body then ended at the first
// empty line, and the rest followed it on the connection, to be read as the next response.
TEST_CASE("producer: chunked rejects footers that would end the body early", "[producer]") {
    for (std::string footers : {"\r\n", "\r\n\r\n", "A: 1\r\n\r\n", "A: 1\r\n\r\nB: 2\r\n",
                                "A: 1\nB: 2\r\n", "A: 1\rB: 2\r\n", "A: 1\n\r\n"}) {
        INFO("footers: " << footers.size() << " bytes");
        CHECK_THROWS_AS(chunked_producer(simple_producer("x"), footers), std::invalid_argument);
    }
    producer p = chunked_producer(simple_producer("x"), "A: 1\r\nB: 2\r\n");
    CHECK(drain(p) == "1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n");
}

// --- compressed (C.36)

TEST_CASE("producer: compressed output inflates back to the input", "[producer]") {
    const std::string data = test_string();
    producer p = compressed_producer(simple_producer(data, 100));
    auto chunks = drain_chunks(p);
    REQUIRE_FALSE(chunks.empty());
    std::string compressed;
    for (auto& c : chunks)
        compressed += c;
    CHECK(compressed.size() < data.size());
    CHECK(inflate_all(compressed) == data);
    CHECK(p.more().empty());
}

TEST_CASE("producer: compressed defaults to level 5 and honours the level", "[producer]") {
    const std::string data = test_string();
    auto compress_with = [&](int level) {
        std::string out(compressBound(static_cast<uLong>(data.size())), '\0');
        uLongf size = static_cast<uLongf>(out.size());
        REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                          reinterpret_cast<const Bytef*>(data.data()),
                          static_cast<uLong>(data.size()), level) == Z_OK);
        out.resize(size);
        return out;
    };
    producer five = compressed_producer(simple_producer(data, data.size()));
    CHECK(drain(five) == compress_with(5));  // zlib.compressobj(5): same bytes as compress2
    producer nine = compressed_producer(simple_producer(data, data.size()), 9);
    CHECK(drain(nine) == compress_with(9));
    producer stored = compressed_producer(simple_producer(data, data.size()), 0);
    std::string raw = drain(stored);
    CHECK(raw.size() > data.size());  // level 0 stores
    CHECK(inflate_all(raw) == data);
}

TEST_CASE("producer: compressed of an empty stream is a valid empty zlib stream", "[producer]") {
    producer p = compressed_producer(simple_producer(""));
    std::string out = p.more();
    CHECK_FALSE(out.empty());
    CHECK(inflate_all(out).empty());
    CHECK(p.more().empty());
}

TEST_CASE("producer: compressed rejects a bad level", "[producer]") {
    CHECK_THROWS_AS(compressed_producer(simple_producer("x"), 10), std::invalid_argument);
    CHECK_THROWS_AS(compressed_producer(simple_producer("x"), -2), std::invalid_argument);
    CHECK_NOTHROW(compressed_producer(simple_producer("x"), -1));
}

// --- escaping (C.37)

TEST_CASE("producer: escaping stuffs a dot after CRLF", "[producer]") {
    producer p = escaping_producer(simple_producer("a\r\n.b\r\n..c\r\n"));
    CHECK(drain(p) == "a\r\n..b\r\n...c\r\n");
}

TEST_CASE("producer: escaping stuffs a leading dot, as SMTP requires", "[producer]") {
    producer p = escaping_producer(simple_producer(".hidden\r\n.\r\n"));
    CHECK(drain(p) == "..hidden\r\n..\r\n");
    producer q = escaping_producer(simple_producer("."));
    CHECK(drain(q) == "..");
    producer r = escaping_producer(buffer_list_producer({"", ".", "x"}));
    CHECK(drain(r) == "..x");
}

TEST_CASE("producer: escaping with escape_start::verbatim leaves a leading dot", "[producer]") {
    producer p = escaping_producer(simple_producer(".hidden\r\n.x"), "\r\n.", "\r\n..",
                                   escape_start::verbatim);
    CHECK(drain(p) == ".hidden\r\n..x");
}

TEST_CASE("producer: escaping keeps a trailing CRLF with no dot", "[producer]") {
    producer p = escaping_producer(simple_producer("abc\r\n"));
    CHECK(drain(p) == "abc\r\n");
    producer q = escaping_producer(buffer_list_producer({"abc\r", "\n"}));
    CHECK(drain(q) == "abc\r\n");
    producer r = escaping_producer(simple_producer("\r\n"));
    CHECK(drain(r) == "\r\n");
    producer s = escaping_producer(simple_producer("x\r"));
    CHECK(drain(s) == "x\r");
}

TEST_CASE("producer: escaping of an empty stream is empty", "[producer]") {
    producer p = escaping_producer(simple_producer(""));
    CHECK(p.more().empty());
    CHECK(p.more().empty());
}

TEST_CASE("producer: escaping finds CRLF-dot split at every position", "[producer]") {
    const std::string stream = ".a\r\n.b\r\n..\r\n\r\n.c\r\r\n.\r\nend\r\n";
    for (bool line_start : {true, false}) {
        const std::string expected = dot_stuff(stream, line_start);
        const auto start = line_start ? escape_start::as_line_start : escape_start::verbatim;
        INFO("line_start " << line_start);
        for (std::size_t i = 0; i <= stream.size(); ++i)
            for (std::size_t j = i; j <= stream.size(); ++j) {
                INFO("split at " << i << " and " << j);
                producer p = escaping_producer(
                    buffer_list_producer(
                        {stream.substr(0, i), stream.substr(i, j - i), stream.substr(j)}),
                    "\r\n.", "\r\n..", start);
                auto chunks = drain_chunks(p);  // stops at the first empty chunk
                std::string joined;
                for (auto& c : chunks)
                    joined += c;
                REQUIRE(joined == expected);
                REQUIRE(p.more().empty());
            }
    }
}

TEST_CASE("producer: escaping one byte per more matches escaping it whole", "[producer]") {
    const std::string stream = ".\r\n.\r\n\r\n..\r\n.";
    producer p = escaping_producer(simple_producer(stream, 1));
    CHECK(drain(p) == dot_stuff(stream, true));
    CHECK(dot_stuff(stream, true) == "..\r\n..\r\n\r\n...\r\n..");
}

TEST_CASE("producer: escaping with overlapping patterns matches a whole-stream replace",
          "[producer]") {
    // "ababa" with "aba" -> "X" replaces left to right: "Xba". A held-back tail must not
    // reuse bytes of a match already made, whatever the split.
    const std::string stream = "ababa";
    for (std::size_t i = 0; i <= stream.size(); ++i) {
        INFO("split at " << i);
        producer p =
            escaping_producer(buffer_list_producer({stream.substr(0, i), stream.substr(i)}), "aba",
                              "X", escape_start::verbatim);
        CHECK(drain(p) == "Xba");
    }
}

TEST_CASE("producer: escaping rejects bad arguments", "[producer]") {
    CHECK_THROWS_AS(escaping_producer(simple_producer("x"), ""), std::invalid_argument);
    CHECK_THROWS_AS(escaping_producer(producer{}), std::invalid_argument);
    // The leading-dot rule needs esc_to to begin with "\r\n" as esc_from does.
    CHECK_THROWS_AS(escaping_producer(simple_producer("x"), "\r\n.", "X"), std::invalid_argument);
    CHECK_NOTHROW(escaping_producer(simple_producer("x"), "\r\n.", "X", escape_start::verbatim));
}

// --- producers of producers

TEST_CASE("producer: wrappers compose", "[producer]") {
    const std::string data = test_string();
    std::size_t hooked_total = 0;
    producer p = chunked_producer(globbing_producer(
        hooked_producer(simple_producer(data, 7), [&](std::size_t n) { hooked_total = n; }), 4096));
    std::string out = drain(p);
    // 16385 in pieces of 7 globbed to >= 4096: 4102, 4102, 4102, 4079.
    CHECK(out == "1006\r\n" + data.substr(0, 4102) + "\r\n" + "1006\r\n" + data.substr(4102, 4102) +
                     "\r\n" + "1006\r\n" + data.substr(8204, 4102) + "\r\n" + "fef\r\n" +
                     data.substr(12306) + "\r\n0\r\n\r\n");
    CHECK(hooked_total == 16385);
}
