#include <coronet/coro/open_file_cache.hpp>

#include <coronet/lib/reactor.hpp>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <list>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace coronet {
namespace {

// A descriptor the cache opened: closed when its entry and every response sending from it
// have let go.
struct descriptor {
    explicit descriptor(int f) noexcept : fd(f) {}
    descriptor(const descriptor&) = delete;
    descriptor& operator=(const descriptor&) = delete;
    ~descriptor() { ::close(fd); }
    int fd;
};

int missing_or_refused(int err) noexcept { return err == ENOENT || err == ENOTDIR ? 404 : 403; }

// Opens rel under dir_fd for reading with no symlink followed in ANY component, and never
// leaving dir_fd's tree: openat2's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so a directory on the
// way swapped for a symlink after it was looked at fails with ELOOP instead of being followed
// (O_NOFOLLOW guards only the last component). Where the kernel has no openat2 (before 5.6, or
// a seccomp filter that refuses it: ENOSYS), plain openat with O_NOFOLLOW; the caller's
// inode check after the open still refuses a file replaced on the way.
int open_beneath(int dir_fd, const char* rel) noexcept {
    static bool no_openat2 = false;  // racy but benign: every thread learns the same answer
    constexpr int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;
    if (!no_openat2) {
        ::open_how how{};
        how.flags = flags;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd = ::syscall(SYS_openat2, dir_fd, rel, &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
        no_openat2 = true;
    }
    return ::openat(dir_fd, rel, flags);
}

bool same_time(const timespec& a, const timespec& b) noexcept {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace

resolved_path resolve_under(const std::filesystem::path& root, std::string_view rel) {
    if (rel.starts_with('/')) return {403, {}};  // root / "/etc" would be "/etc"
    if (rel.find('\0') != std::string_view::npos)
        return {404, {}};  // the system would cut it there
    std::error_code ec;
    auto path = std::filesystem::canonical(root / rel, ec);  // every symlink resolved
    if (ec) return {missing_or_refused(ec.value()), {}};
    // Component-wise prefix: "/srv/www" must not accept "/srv/www-private".
    const std::string& r = root.native();
    const std::string& p = path.native();
    bool inside = p == r || (p.starts_with(r) && (r.ends_with('/') || p[r.size()] == '/'));
    if (!inside) return {403, {}};
    return {0, std::move(path)};
}

file_producer open_file::body() const {
    if (status != 0 || directory || !owner_)
        throw std::invalid_argument("open_file::body: not a file that was found");
    return file_producer(owner_, fd_, 0, size);
}

struct open_file_cache::state {
    // What lstat saw of one component of a kept path: the path still leads to the same
    // place while every component is the same inode of the same type.
    struct component {
        std::size_t end;  // where its name ends in the key
        dev_t dev;
        ino_t ino;
        mode_t type;  // st_mode & S_IFMT
    };
    struct entry {
        std::string key;                         // the path: clean segments joined by '/'
        std::vector<component> chain;            // one per segment, root first
        std::shared_ptr<const descriptor> file;  // a file's; nullptr for a directory
        off_t size = 0;                          // a file's, as seen when it was opened
        timespec mtime{}, ctime{};
        clock::time_point opened, used;
    };
    using entries = std::list<entry>;  // most recently used first

    std::filesystem::path root;
    int root_fd = -1;
    open_file_cache_options options;
    entries lru;
    std::unordered_map<std::string_view, entries::iterator> index;  // views entry::key
    std::string key;  // the lookup's path, cleaned (reused: no allocation per lookup)
    counters stats;

    ~state() {
        if (root_fd >= 0) ::close(root_fd);
    }

    void evict(entries::iterator it) {
        index.erase(std::string_view(it->key));
        lru.erase(it);
    }

    // Drops what has gone unused for ttl (the least recently used are at the back).
    void drop_idle(clock::time_point now) {
        while (!lru.empty() && now - lru.back().used >= options.ttl) {
            evict(std::prev(lru.end()));
            ++stats.evicted;
        }
    }

    // Cleans rel into `key` (segments joined by '/'; empty and "." segments skipped) and says
    // whether a directory was asked for (a trailing '/'); 0, or the status to answer.
    int clean(std::string_view rel, bool& want_dir) {
        if (rel.starts_with('/')) return 403;
        if (rel.find('\0') != std::string_view::npos) return 404;
        key.clear();
        want_dir = false;
        while (!rel.empty()) {
            std::size_t slash = rel.find('/');
            std::string_view segment = rel.substr(0, slash);
            rel.remove_prefix(slash == std::string_view::npos ? rel.size() : slash + 1);
            if (segment == "..") return 403;
            if (segment.empty() || segment == ".") {
                want_dir = true;
                continue;
            }
            if (!key.empty()) key += '/';
            key += segment;
            want_dir = slash != std::string_view::npos;
        }
        return 0;
    }

    // 0 while e's path still leads where it did (one fstatat per component, no symlink
    // followed); 404 when something on the way has gone; -1 when anything differs.
    int check(const entry& e) const {
        char buf[PATH_MAX];
        const char* path = e.key.c_str();
        if (e.chain.size() > 1) {  // each component's prefix is cut from a copy of the key
            std::memcpy(buf, e.key.c_str(), e.key.size() + 1);
            path = buf;
        }
        for (std::size_t i = 0; i < e.chain.size(); ++i) {
            const component& c = e.chain[i];
            const bool last = i + 1 == e.chain.size();
            if (!last) buf[c.end] = '\0';
            struct ::stat st {};
            int rc = ::fstatat(root_fd, path, &st, AT_SYMLINK_NOFOLLOW);
            if (!last) buf[c.end] = '/';
            if (rc != 0) return errno == ENOENT || errno == ENOTDIR ? 404 : -1;
            if (st.st_dev != c.dev || st.st_ino != c.ino || (st.st_mode & S_IFMT) != c.type)
                return -1;
            if (last && e.file &&
                (st.st_size != e.size || !same_time(st.st_mtim, e.mtime) ||
                 !same_time(st.st_ctim, e.ctime)))
                return -1;  // rewritten (or its metadata changed): open it again
        }
        return 0;
    }

    open_file answer(const entry& e, bool want_dir) const {
        open_file f;
        if (!e.file) {
            f.directory = true;
            f.path = root / e.key;
        } else if (want_dir) {
            f.status = 404;  // "file.txt/": not a directory
        } else {
            f.size = static_cast<std::uint64_t>(e.size);
            f.mtime = e.mtime.tv_sec;
            f.owner_ = e.file;
            f.fd_ = e.file->fd;
        }
        return f;
    }

    void keep(entry e) {
        if (options.max_entries == 0) return;
        while (lru.size() >= options.max_entries) {
            evict(std::prev(lru.end()));
            ++stats.evicted;
        }
        lru.push_front(std::move(e));
        index.emplace(std::string_view(lru.front().key), lru.begin());
    }

    // A path through a symlink: every symlink resolved (and refused outside the root), then
    // opened; never kept.
    open_file through_symlinks(bool want_dir) {
        std::string rel = key;
        if (want_dir) rel += '/';
        resolved_path where = resolve_under(root, rel);
        open_file f;
        if (where.status) {
            f.status = where.status;
            return f;
        }
        // Opened as the canonical path relative to the root with no symlink followed: a
        // component swapped for a symlink since canonical() looked fails (ELOOP: refused)
        // instead of leading outside the root. O_NONBLOCK: opening a FIFO must not block the
        // loop (fstat refuses it below).
        std::string inside =
            where.path.native().substr(std::min(where.path.native().size(), root.native().size()));
        while (inside.starts_with('/'))
            inside.erase(0, 1);
        int fd = inside.empty() ? ::openat(root_fd, ".", O_RDONLY | O_CLOEXEC | O_DIRECTORY)
                                : open_beneath(root_fd, inside.c_str());
        if (fd < 0) {
            f.status = missing_or_refused(errno);
            return f;
        }
        auto owner = std::make_shared<const descriptor>(fd);
        struct ::stat st {};
        if (::fstat(fd, &st) != 0) {
            f.status = 500;
        } else if (S_ISDIR(st.st_mode)) {
            f.directory = true;
            f.path = std::move(where.path);
        } else if (S_ISREG(st.st_mode)) {
            f.size = static_cast<std::uint64_t>(st.st_size);
            f.mtime = st.st_mtim.tv_sec;
            f.fd_ = fd;
            f.owner_ = std::move(owner);
        } else {
            f.status = 403;  // a FIFO, a socket, a device
        }
        return f;
    }

    // Resolves key afresh, one component at a time without following symlinks, and keeps
    // the answer when no symlink was on the way.
    open_file resolve(bool want_dir, clock::time_point now) {
        open_file f;
        if (key.empty()) {  // the root itself: held open since the start
            f.directory = true;
            f.path = root;
            return f;
        }
        if (key.size() >= PATH_MAX) return through_symlinks(want_dir);  // the system's answer
        entry e;
        char buf[PATH_MAX];
        std::memcpy(buf, key.c_str(), key.size() + 1);
        struct ::stat st {};
        for (std::size_t end = 0; end < key.size();) {
            end = key.find('/', end + 1);
            const bool last = end == std::string::npos;
            if (last) end = key.size();
            buf[end] = '\0';
            int rc = ::fstatat(root_fd, buf, &st, AT_SYMLINK_NOFOLLOW);
            if (!last) buf[end] = '/';
            if (rc != 0) {
                f.status = missing_or_refused(errno);
                return f;
            }
            if (S_ISLNK(st.st_mode)) return through_symlinks(want_dir);
            e.chain.push_back({end, st.st_dev, st.st_ino, st.st_mode & S_IFMT});
            if (!last && !S_ISDIR(st.st_mode)) {
                f.status = 404;
                return f;
            }
        }
        if (S_ISREG(st.st_mode)) {
            if (want_dir) {
                f.status = 404;
                return f;
            }
            // No symlink in any component (openat2 where the kernel has it): a directory on the
            // way swapped for a symlink since fstatat looked is ELOOP, never followed.
            int fd = open_beneath(root_fd, buf);
            if (fd < 0) {
                if (errno == ELOOP || errno == EXDEV)
                    return through_symlinks(want_dir);  // swapped for a symlink just now
                f.status = missing_or_refused(errno);
                return f;
            }
            e.file = std::make_shared<const descriptor>(fd);
            struct ::stat opened {};
            if (::fstat(fd, &opened) != 0) {
                f.status = 500;
                return f;
            }
            if (opened.st_dev != st.st_dev || opened.st_ino != st.st_ino ||
                !S_ISREG(opened.st_mode))
                return through_symlinks(want_dir);  // replaced between the two calls
            e.size = opened.st_size;
            e.mtime = opened.st_mtim;
            e.ctime = opened.st_ctim;
        } else if (!S_ISDIR(st.st_mode)) {
            f.status = 403;  // a FIFO, a socket, a device: never opened
            return f;
        }
        e.key = key;
        e.opened = e.used = now;
        f = answer(e, want_dir);
        keep(std::move(e));
        return f;
    }
};

open_file_cache::open_file_cache(const std::filesystem::path& root, open_file_cache_options options)
    : s_(std::make_unique<state>()) {
    s_->root = std::filesystem::canonical(root);
    s_->options = options;
    s_->root_fd = ::open(s_->root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s_->root_fd < 0)
        throw std::system_error(std::error_code(errno, std::system_category()),
                                "open_file_cache: open " + s_->root.string());
}

open_file_cache::open_file_cache(open_file_cache&&) noexcept = default;
open_file_cache& open_file_cache::operator=(open_file_cache&&) noexcept = default;
open_file_cache::~open_file_cache() = default;

open_file open_file_cache::lookup(std::string_view rel) { return lookup(rel, coarse_now()); }

open_file open_file_cache::lookup(std::string_view rel, clock::time_point now) {
    state& s = *s_;
    s.drop_idle(now);
    bool want_dir = false;
    if (int status = s.clean(rel, want_dir)) {
        open_file f;
        f.status = status;
        return f;
    }
    if (s.key.empty()) {  // the root: held open since the start, nothing to check
        ++s.stats.hits;
        return s.resolve(want_dir, now);
    }
    auto found = s.index.find(std::string_view(s.key));
    if (found != s.index.end()) {
        auto it = found->second;
        int verdict = now - it->opened >= s.options.ttl ? -1 : s.check(*it);
        if (verdict == 0) {
            ++s.stats.hits;
            it->used = now;
            s.lru.splice(s.lru.begin(), s.lru, it);  // most recently used
            return s.answer(*it, want_dir);
        }
        ++s.stats.stale;
        s.evict(it);
        if (verdict == 404) {
            ++s.stats.misses;
            open_file f;
            f.status = 404;
            return f;
        }
    }
    ++s.stats.misses;
    return s.resolve(want_dir, now);
}

std::size_t open_file_cache::size() const noexcept { return s_->lru.size(); }
open_file_cache::counters open_file_cache::stats() const noexcept { return s_->stats; }
const std::filesystem::path& open_file_cache::root() const noexcept { return s_->root; }

}  // namespace coronet
