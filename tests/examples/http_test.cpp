// tests/examples/http_test.cpp: examples/http.hpp without sockets: path resolution under the
// root (symlinks out of it), MIME types, escaping and the directory listing. The protocol
// pieces are tested in tests/proto/http_test.cpp.
#include <coronet/examples/http.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

// A fresh directory under TEST_TMPDIR (or /tmp), removed at the end of the test.
class temp_dir {
public:
    temp_dir() {
        const char* base = std::getenv("TEST_TMPDIR");
        std::string pattern = std::string(base ? base : "/tmp") + "/http_test.XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = fs::canonical(pattern);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void write(const std::string& name, const std::string& text) const {
        fs::create_directories((path_ / name).parent_path());
        std::ofstream(path_ / name) << text;
    }

private:
    fs::path path_;
};

}  // namespace

TEST_CASE("http: paths resolve under the root, and symlinks out of it are refused", "[http]") {
    temp_dir root;
    temp_dir outside;
    root.write("a.txt", "a");
    root.write("sub/b.txt", "b");
    outside.write("secret", "s");
    fs::create_symlink(outside.path() / "secret", root.path() / "evil");
    fs::create_symlink(outside.path(), root.path() / "evil_dir");
    fs::create_symlink("sub/b.txt", root.path() / "good");
    fs::create_symlink("/nonexistent/x", root.path() / "dangling_out");
    // A sibling whose name starts with the root's: "/tmp/x" must not accept "/tmp/x-private".
    fs::create_directory(root.path().string() + "-private");
    fs::create_symlink(root.path().string() + "-private", root.path() / "prefix");

    auto ok = [&](std::string_view rel, const fs::path& expected) {
        auto r = http::resolve_under(root.path(), rel);
        INFO("rel: " << rel);
        CHECK(r.status == 0);
        CHECK(r.path == expected);
    };
    ok("", root.path());
    ok("a.txt", root.path() / "a.txt");
    ok("sub/b.txt", root.path() / "sub/b.txt");
    ok("good", root.path() / "sub/b.txt");
    CHECK(http::resolve_under(root.path(), "missing/file").status == 404);
    CHECK(http::resolve_under(root.path(), "a.txt/x").status == 404);
    CHECK(http::resolve_under(root.path(), "dangling_out").status == 404);  // nothing to leak

    for (std::string_view rel : {"evil", "evil_dir/secret", "evil_dir", "prefix", "/etc/passwd"}) {
        INFO("rel: " << rel);
        CHECK(http::resolve_under(root.path(), rel).status == 403);
    }
    fs::remove_all(root.path().string() + "-private");
}

TEST_CASE("http: Content-Type follows the extension", "[http]") {
    CHECK(http::mime_type("index.html") == "text/html; charset=utf-8");
    CHECK(http::mime_type("a/b/STYLE.CSS") == "text/css; charset=utf-8");
    CHECK(http::mime_type("x.png") == "image/png");
    CHECK(http::mime_type("x.tar.gz") == "application/gzip");
    CHECK(http::mime_type("notes.txt") == "text/plain; charset=utf-8");
    CHECK(http::mime_type("Makefile") == "application/octet-stream");
    CHECK(http::mime_type(".bashrc") == "application/octet-stream");
    CHECK(http::mime_type("dir.d/file") == "application/octet-stream");
    CHECK(http::mime_type("x.unknownext") == "application/octet-stream");
}

TEST_CASE("http: names are escaped for HTML and for URLs", "[http]") {
    CHECK(http::html_escape("<a href=\"x\">'&'</a>") ==
          "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    CHECK(http::html_escape("plain") == "plain");
    CHECK(http::url_escape("a b/c?d#e%f") == "a%20b%2Fc%3Fd%23e%25f");
    CHECK(http::url_escape("Az09-._~") == "Az09-._~");
    CHECK(http::url_escape("\xC3\xA9") == "%C3%A9");
}

TEST_CASE("http: a directory listing is sorted, escaped and made in batches", "[http]") {
    temp_dir dir;
    dir.write("b.txt", "bbb");
    dir.write("a <script>.html", "x");
    dir.write("sub/c", "");
    for (int i = 0; i < 100; ++i)
        dir.write("many/f" + std::to_string(1000 + i), "");

    http::listing_producer listing(dir.path(), "x&y/");
    std::string page, chunk;
    int calls = 0;
    while (!(chunk = listing.more()).empty())
        page += chunk, ++calls;
    CHECK(calls == 1);
    CHECK(listing.more().empty());
    INFO(page);
    CHECK(page.find("<title>Index of /x&amp;y/</title>") != std::string::npos);
    CHECK(page.find("<a href=\"../\">") != std::string::npos);
    CHECK(page.find("<a href=\"a%20%3Cscript%3E.html\">a &lt;script&gt;.html</a>") !=
          std::string::npos);
    CHECK(page.find("<script>") == std::string::npos);
    CHECK(page.find("<a href=\"sub/\">sub/</a>") != std::string::npos);
    CHECK(page.find("<td>3</td>") != std::string::npos);  // b.txt's size
    CHECK(page.find("a%20%3Cscript") < page.find("b.txt"));
    CHECK(page.find("b.txt") < page.find("many/"));
    CHECK(page.ends_with("</table>\n</body></html>\n"));

    http::listing_producer many(dir.path() / "many", "many/");
    page.clear();
    calls = 0;
    while (!(chunk = many.more()).empty())
        page += chunk, ++calls;
    CHECK(calls == 2);  // 100 entries, 64 per more()
    CHECK(page.find("f1000") < page.find("f1099"));

    http::listing_producer root_listing(dir.path(), "");
    CHECK(root_listing.more().find("href=\"../\"") == std::string::npos);  // no parent at the root
}

TEST_CASE("http: an error page names the status and its reason", "[http]") {
    CHECK(http::error_page(404).find("<h1>404 Not Found</h1>") != std::string::npos);
    CHECK(http::error_page(505).find("<title>505 HTTP Version Not Supported</title>") !=
          std::string::npos);
}
