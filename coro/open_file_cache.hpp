#pragma once
// coro/open_file_cache.hpp: what a static-file server's request paths name, kept open between
// requests (nginx's open_file_cache).
//
// lookup(rel) answers what a decoded request path names under a root: a regular file (its
// shared descriptor, size and mtime, and a producer of its bytes), a directory, or a status
// (403: it leads outside the root, or is neither file nor directory; 404: nothing is there).
// The answer is kept, so a busy file costs no path resolution, no open and no close per
// request. Each hit is checked first: every component of the path is looked at once more
// without following symlinks (one fstatat each; a file right under the root is one call), and
// anything that differs from what was seen when the file was opened (another inode, a new
// size, mtime or ctime, a symlink in place of a directory, nothing there) resolves the path
// afresh. So a file renamed over, rewritten, deleted, or reached through a directory swapped
// for a symlink is seen by the very next lookup, and a hit makes no failing system call.
// A path through a symlink is resolved in full on every lookup (std::filesystem::canonical,
// refused when it leads outside the root) and never kept.
// Bounded: at most max_entries answers, the least recently used dropped first; an answer is
// resolved afresh once it is ttl old, and dropped once it has gone unused for ttl. The
// descriptors handed out are shared: a response still sending a file keeps it open after the
// cache has let it go. One cache per thread: nothing in it is locked.
// Medusa ancestor: default_handler.py's filesystem lookups (nginx: ngx_open_cached_file).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include <coronet/coro/producer.hpp>

namespace coronet {

// Where a request path leads under a root, every symlink resolved.
struct resolved_path {
    int status = 0;  // 0; 404 when nothing is there (a dangling symlink too); 403 outside root
    std::filesystem::path path;  // root/rel with every symlink resolved
};

// Resolves rel (segments joined by '/') under root, which must be canonical: 403 for an
// absolute rel or one whose symlinks lead outside root, 404 for a name that cannot exist (a
// NUL byte) or is not there. The check open_file_cache makes for a path through a symlink.
resolved_path resolve_under(const std::filesystem::path& root, std::string_view rel);

// The limits of an open_file_cache.
struct open_file_cache_options {
    std::size_t max_entries = 1024;  // answers kept (an open descriptor each for files); 0: none
    // An answer's age before it is resolved afresh, and its idle time before it goes.
    std::chrono::seconds ttl{60};
};

// What open_file_cache::lookup found.
class open_file {
public:
    int status = 0;              // 0: found; 403: refused; 404: nothing there
    bool directory = false;      // found a directory (no descriptor; path names it)
    std::uint64_t size = 0;      // a file's size
    std::int64_t mtime = 0;      // a file's modification time, seconds since the epoch
    std::filesystem::path path;  // a directory's path with every symlink resolved; empty for a file

    // A producer of the file's size bytes from its shared descriptor; throws
    // std::invalid_argument when nothing was found or it is a directory.
    file_producer body() const;
    // The file's descriptor (shared: never close it), or -1.
    int fd() const noexcept { return fd_; }

private:
    friend class open_file_cache;
    std::shared_ptr<const void> owner_;  // keeps fd_ open
    int fd_ = -1;
};

// A bounded cache of what request paths name under one root, checked at every lookup.
class open_file_cache {
public:
    using clock = std::chrono::steady_clock;
    // What the cache has done so far.
    struct counters {
        std::uint64_t hits = 0;     // answered from a kept entry, checked unchanged
        std::uint64_t misses = 0;   // resolved afresh: not kept, or not keepable
        std::uint64_t stale = 0;    // kept, but changed or ttl old: resolved afresh (also a miss)
        std::uint64_t evicted = 0;  // dropped for room (max_entries) or unused for ttl
    };

    // root: a directory (made canonical here); throws std::system_error when it cannot be opened.
    explicit open_file_cache(const std::filesystem::path& root,
                             open_file_cache_options options = {});
    open_file_cache(open_file_cache&&) noexcept;
    open_file_cache& operator=(open_file_cache&&) noexcept;
    ~open_file_cache();

    // What rel names under the root: a decoded path ("docs/index.html"; "" is the root; a
    // trailing '/' asks for a directory, so "file.txt/" is 404). A ".." segment or a leading
    // '/' is 403; empty and "." segments are skipped.
    open_file lookup(std::string_view rel);
    // The same, at the time given (the tests' clock; lookup(rel) reads a coarse steady clock).
    open_file lookup(std::string_view rel, clock::time_point now);

    // Answers kept now.
    std::size_t size() const noexcept;
    counters stats() const noexcept;
    // The canonical root.
    const std::filesystem::path& root() const noexcept;

private:
    struct state;
    std::unique_ptr<state> s_;
};

}  // namespace coronet
