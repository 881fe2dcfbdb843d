// tests/coro/open_file_cache_test.cpp: coro/open_file_cache.hpp on a real directory.
//
// The cache does no I/O through a reactor (file system calls only), so these tests run no
// backend; tests/examples/http_server_test.cpp drives it through the server on every backend.
// Time is the test's: lookup(rel, now) with a clock the test moves.
#include <coronet/coro/open_file_cache.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/process.hpp"

using namespace coronet;
using namespace std::chrono_literals;
using coronet::testing::temp_dir;

namespace {

using clock_type = open_file_cache::clock;

// Everything a found file's producer gives.
std::string content(const open_file& f) {
    REQUIRE(f.status == 0);
    REQUIRE_FALSE(f.directory);
    file_producer p = f.body();
    std::string all;
    for (std::string s = p.more(); !s.empty(); s = p.more())
        all += s;
    return all;
}

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Writes path's content in place: the same inode, truncated and rewritten.
void rewrite_in_place(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("open_file_cache: a file is opened once, then each lookup checks and reuses it",
          "[open_file_cache]") {
    temp_dir root;
    root.write("a.txt", "alpha");
    root.write("docs/deep/b.txt", "beta");
    open_file_cache cache(root.path());
    auto now = clock_type::now();

    open_file first = cache.lookup("a.txt", now);
    CHECK(content(first) == "alpha");
    CHECK(first.size == 5);
    CHECK(first.mtime > 0);
    open_file again = cache.lookup("a.txt", now);
    CHECK(again.fd() == first.fd());  // the same descriptor
    CHECK(content(again) == "alpha");
    CHECK(cache.stats().misses == 1);
    CHECK(cache.stats().hits == 1);

    CHECK(content(cache.lookup("docs/deep/b.txt", now)) == "beta");
    CHECK(content(cache.lookup("docs//./deep/b.txt", now)) == "beta");  // the same path, cleaned
    CHECK(cache.stats().hits == 2);

    open_file dir = cache.lookup("docs/", now);
    CHECK(dir.status == 0);
    CHECK(dir.directory);
    CHECK(dir.path == root.path() / "docs");
    CHECK(dir.fd() == -1);
    CHECK_THROWS_AS(dir.body(), std::invalid_argument);
    open_file top = cache.lookup("", now);
    CHECK(top.directory);
    CHECK(top.path == root.path());
    CHECK(cache.size() == 3);  // a.txt, docs/deep/b.txt, docs
}

TEST_CASE("open_file_cache: at most max_entries are kept, the least recently used goes first",
          "[open_file_cache]") {
    temp_dir root;
    for (const char* name : {"a", "b", "c", "d"})
        root.write(name, name);
    open_file_cache cache(root.path(), {.max_entries = 2});
    auto now = clock_type::now();
    int a_fd = cache.lookup("a", now).fd();
    (void)cache.lookup("b", now);
    (void)cache.lookup("a", now);  // a is now the most recently used
    open_file c = cache.lookup("c", now);
    CHECK(cache.size() == 2);
    CHECK(cache.stats().evicted == 1);  // b
    CHECK(fd_is_open(a_fd));
    (void)cache.lookup("a", now);
    CHECK(cache.stats().hits == 2);  // a both times: it stayed
    (void)cache.lookup("b", now);    // back, in place of c
    CHECK(cache.stats().misses == 4);
    CHECK(cache.stats().evicted == 2);
    CHECK(content(c) == "c");  // a descriptor handed out outlives its entry
    int c_fd = c.fd();
    c = open_file{};
    CHECK_FALSE(fd_is_open(c_fd));  // ... and closes with the last holder

    open_file_cache none(root.path(), {.max_entries = 0});
    CHECK(content(none.lookup("d", now)) == "d");
    CHECK(none.size() == 0);
}

TEST_CASE("open_file_cache: an entry ttl old is resolved afresh; one unused for ttl is dropped",
          "[open_file_cache]") {
    temp_dir root;
    root.write("a", "a");
    root.write("b", "b");
    open_file_cache cache(root.path(), {.ttl = 10s});
    auto t0 = clock_type::now();
    (void)cache.lookup("a", t0);
    (void)cache.lookup("a", t0 + 9s);
    CHECK(cache.stats().hits == 1);
    (void)cache.lookup("a", t0 + 10s);  // 10 s since it was opened: opened again
    CHECK(cache.stats().hits == 1);
    CHECK(cache.stats().stale == 1);
    CHECK(cache.stats().misses == 2);
    CHECK(cache.size() == 1);

    (void)cache.lookup("b", t0 + 10s);
    CHECK(cache.size() == 2);
    (void)cache.lookup("b", t0 + 19s);  // b stays in use, a does not
    CHECK(cache.size() == 2);
    (void)cache.lookup("b", t0 + 20s);  // a unused since t0 + 10 s: dropped
    CHECK(cache.size() == 1);
    CHECK(cache.stats().evicted == 1);
    (void)cache.lookup("b", t0 + 40s);  // and b, unused for 20 s, before it is looked up again
    CHECK(cache.stats().evicted == 2);
    CHECK(cache.size() == 1);
}

TEST_CASE("open_file_cache: the very next lookup sees a file replaced, rewritten or deleted",
          "[open_file_cache]") {
    temp_dir root;
    root.write("f.txt", "first");
    root.write("sub/g.txt", "in sub");
    open_file_cache cache(root.path());
    auto now = clock_type::now();
    CHECK(content(cache.lookup("f.txt", now)) == "first");

    SECTION("renamed over") {
        root.write("new.tmp", "second version");
        std::filesystem::rename(root.path() / "new.tmp", root.path() / "f.txt");
        open_file f = cache.lookup("f.txt", now);
        CHECK(content(f) == "second version");
        CHECK(f.size == 14);
        CHECK(cache.stats().stale == 1);
    }
    SECTION("rewritten in place with a new size") {
        rewrite_in_place(root.path() / "f.txt", "longer than the first");
        open_file f = cache.lookup("f.txt", now);
        CHECK(f.size == 21);
        CHECK(content(f) == "longer than the first");
        rewrite_in_place(root.path() / "f.txt", "short");
        CHECK(content(cache.lookup("f.txt", now)) == "short");
    }
    SECTION("deleted") {
        std::filesystem::remove(root.path() / "f.txt");
        CHECK(cache.lookup("f.txt", now).status == 404);
        CHECK(cache.size() == 0);
        root.write("f.txt", "back");
        CHECK(content(cache.lookup("f.txt", now)) == "back");
    }
    SECTION("its directory removed, or replaced by a file") {
        CHECK(content(cache.lookup("sub/g.txt", now)) == "in sub");
        std::filesystem::remove_all(root.path() / "sub");
        CHECK(cache.lookup("sub/g.txt", now).status == 404);
        root.write("sub", "a file now");
        CHECK(cache.lookup("sub/g.txt", now).status == 404);
        CHECK(content(cache.lookup("sub", now)) == "a file now");
    }
    SECTION("replaced by a directory") {
        std::filesystem::remove(root.path() / "f.txt");
        std::filesystem::create_directory(root.path() / "f.txt");
        open_file f = cache.lookup("f.txt", now);
        CHECK(f.status == 0);
        CHECK(f.directory);
    }
}

TEST_CASE("open_file_cache: a directory swapped for a symlink out of the root is refused at once",
          "[open_file_cache]") {
    temp_dir root, outside;
    root.write("dir/secret.txt", "inside");
    open_file_cache cache(root.path());
    auto now = clock_type::now();
    CHECK(content(cache.lookup("dir/secret.txt", now)) == "inside");
    CHECK(cache.lookup("dir/", now).directory);

    SECTION("the same directory, moved out and linked back in") {
        // The file keeps its inode: only the symlink on the way tells.
        std::filesystem::rename(root.path() / "dir", outside.path() / "dir");
    }
    SECTION("another directory outside") {
        outside.write("dir/secret.txt", "OUTSIDE");
        std::filesystem::remove_all(root.path() / "dir");
    }
    std::filesystem::create_directory_symlink(outside.path() / "dir", root.path() / "dir");
    CHECK(cache.lookup("dir/secret.txt", now).status == 403);
    CHECK(cache.lookup("dir/", now).status == 403);
    CHECK(cache.size() == 0);
}

TEST_CASE(
    "open_file_cache: paths: traversal refused, symlinks resolved and never kept, odd files "
    "refused",
    "[open_file_cache]") {
    temp_dir root, outside;
    root.write("real/file.txt", "real");
    outside.write("secret.txt", "SECRET");
    std::filesystem::create_directory_symlink(root.path() / "real", root.path() / "alias");
    std::filesystem::create_symlink(outside.path() / "secret.txt", root.path() / "escape.txt");
    std::filesystem::create_symlink(root.path() / "nowhere", root.path() / "dangling");
    REQUIRE(::mkfifo((root.path() / "fifo").c_str(), 0600) == 0);
    open_file_cache cache(root.path());
    auto now = clock_type::now();

    CHECK(cache.lookup("../etc/passwd", now).status == 403);
    CHECK(cache.lookup("real/../../etc/passwd", now).status == 403);
    CHECK(cache.lookup("/etc/passwd", now).status == 403);
    CHECK(cache.lookup(std::string_view("real/file.txt\0.html", 19), now).status == 404);
    CHECK(cache.lookup("escape.txt", now).status == 403);
    CHECK(cache.lookup("dangling", now).status == 404);
    CHECK(cache.lookup("missing", now).status == 404);
    CHECK(cache.lookup("real/file.txt/", now).status == 404);  // a file is no directory
    CHECK(cache.lookup("real/file.txt/x", now).status == 404);
    CHECK(cache.lookup("fifo", now).status == 403);                 // never opened (it would block)
    CHECK(content(cache.lookup("alias/file.txt", now)) == "real");  // inside the root: served
    open_file alias = cache.lookup("alias", now);
    CHECK(alias.directory);
    CHECK(alias.path == root.path() / "real");
    CHECK(cache.size() == 0);  // nothing above was kept: each went through a symlink or failed
    CHECK(cache.stats().hits == 0);

    CHECK(resolve_under(root.path(), "alias/file.txt").path == root.path() / "real/file.txt");
    CHECK(resolve_under(root.path(), "escape.txt").status == 403);
}

TEST_CASE("open_file_cache: a root that is not a directory is an error", "[open_file_cache]") {
    temp_dir root;
    root.write("file", "x");
    CHECK_THROWS_AS(open_file_cache(root.path() / "file"), std::system_error);
    CHECK_THROWS_AS(open_file_cache(root.path() / "missing"), std::system_error);
}
