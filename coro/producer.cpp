#include <coronet/coro/producer.hpp>

#include <coronet/proto/http.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZLIB_CONST  // next_in is const Bytef*
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <new>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include <coronet/coro/scan.hpp>

namespace coronet {

namespace {

std::system_error errno_error(const char* what) {
    return std::system_error(std::error_code(errno, std::system_category()), what);
}

void require_inner(const producer& inner, const char* who) {
    if (!inner) throw std::invalid_argument(std::string(who) + ": inner producer is empty");
}

// chunked_producer's footers: "" or non-empty lines, each ending in its only CR LF. An empty
// line would end the trailer section early, and a bare CR or LF would end a line where the
// producer does not see one: either way the bytes after it would be read as the next message.

}  // namespace

// --- file_producer

file_producer::file_producer(int fd) : fd_(fd) {
    if (fd < 0) throw std::invalid_argument("file_producer: invalid file descriptor");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        auto error = errno_error("file_producer: fstat");
        close();
        throw error;
    }
    if (S_ISREG(st.st_mode)) {
        off_t position = ::lseek(fd, 0, SEEK_CUR);
        if (position >= 0) {
            regular_ = true;
            offset_ = static_cast<std::uint64_t>(position);
            size_ = static_cast<std::uint64_t>(st.st_size);
        }
    }
}

file_producer file_producer::open(const std::filesystem::path& path) {
    int fd;
    do
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        throw std::system_error(std::error_code(errno, std::system_category()),
                                "file_producer: open " + path.string());
    return file_producer(fd);
}

file_producer::file_producer(std::shared_ptr<const void> owner, int fd, std::uint64_t offset,
                             std::uint64_t size)
    : fd_(fd), regular_(true), offset_(offset), size_(offset + size), owner_(std::move(owner)) {
    if (fd < 0 || !owner_)
        throw std::invalid_argument("file_producer: invalid shared file descriptor");
}

file_producer::file_producer(file_producer&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      regular_(other.regular_),
      zero_copy_(other.zero_copy_),
      offset_(other.offset_),
      size_(other.size_),
      owner_(std::move(other.owner_)) {}

file_producer& file_producer::operator=(file_producer&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        regular_ = other.regular_;
        zero_copy_ = other.zero_copy_;
        offset_ = other.offset_;
        size_ = other.size_;
        owner_ = std::move(other.owner_);
    }
    return *this;
}

file_producer::~file_producer() { close(); }

void file_producer::close() noexcept {
    if (owner_)
        owner_.reset();  // shared: its owner closes it
    else if (fd_ >= 0)
        ::close(fd_);  // not retried on EINTR: on Linux the fd is released regardless
    fd_ = -1;
}

std::string file_producer::more() {
    std::string data;
    append_to(data);
    return data;
}

std::size_t file_producer::append_to(std::string& out, std::size_t max) {
    if (fd_ < 0) return 0;
    // A regular file's size is known (fstat at open): read no more than is left,
    // and know its end without one more pread (profiled: small files served over
    // HTTP spent more time zero-filling 64 KiB than reading).
    std::size_t want = std::min(max, out_buffer_size);
    if (regular_) {
        if (offset_ >= size_) {
            close();
            return 0;
        }
        want = static_cast<std::size_t>(std::min<std::uint64_t>(want, size_ - offset_));
    }
    if (want == 0) return 0;
    const std::size_t used = out.size();
    out.resize(used + want);
    ssize_t n;
    do
        n = regular_ ? ::pread(fd_, out.data() + used, want, static_cast<off_t>(offset_))
                     : ::read(fd_, out.data() + used, want);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        auto error = errno_error("file_producer: read");
        out.resize(used);
        throw error;
    }
    if (n == 0) {
        out.resize(used);
        close();
        return 0;
    }
    out.resize(used + static_cast<std::size_t>(n));
    offset_ += static_cast<std::uint64_t>(n);
    return static_cast<std::size_t>(n);
}

std::optional<std::size_t> file_producer::remaining() const noexcept {
    if (!regular_) return std::nullopt;
    if (fd_ < 0 || offset_ >= size_) return 0;
    return static_cast<std::size_t>(size_ - offset_);
}

void file_producer::consumed(std::size_t n) {
    if (n == 0) {
        close();
        return;
    }
    offset_ += n;
    zero_copy_ = true;
}

// --- simple_producer

simple_producer::simple_producer(std::string data, std::size_t buffer_size)
    : data_(std::move(data)), buffer_size_(buffer_size) {
    if (buffer_size == 0)
        throw std::invalid_argument("simple_producer: buffer_size must be positive");
}

std::string simple_producer::more() {
    std::string result;
    if (pos_ == 0 && data_.size() <= buffer_size_) {
        result = std::move(data_);  // the whole thing: no copy
    } else {
        result = data_.substr(pos_, buffer_size_);
        pos_ += result.size();
    }
    if (pos_ >= data_.size()) {
        data_ = std::string{};  // exhausted: release the memory
        pos_ = 0;
    }
    return result;
}

// --- lines_producer

lines_producer::lines_producer(std::vector<std::string> lines) : lines_(std::move(lines)) {}

std::string lines_producer::more() {
    std::size_t end = std::min(lines_.size(), next_ + lines_per_more);
    std::size_t size = 0;
    for (std::size_t i = next_; i < end; ++i)
        size += lines_[i].size() + 2;
    std::string result;
    result.reserve(size);
    for (; next_ < end; ++next_) {
        result += lines_[next_];
        result += "\r\n";
    }
    if (next_ == lines_.size()) {
        lines_ = {};  // exhausted: release the memory
        next_ = 0;
    }
    return result;
}

// --- buffer_list_producer

buffer_list_producer::buffer_list_producer(std::vector<std::string> buffers)
    : buffers_(std::move(buffers)) {}

std::string buffer_list_producer::more() {
    while (next_ < buffers_.size()) {
        std::string data = std::move(buffers_[next_++]);
        if (!data.empty()) return data;
    }
    buffers_ = {};
    next_ = 0;
    return {};
}

// --- composite_producer

composite_producer::composite_producer(std::vector<producer> producers)
    : producers_(std::move(producers)) {}

std::string composite_producer::more() {
    while (current_ < producers_.size()) {
        std::string data = producers_[current_].more();
        if (!data.empty()) return data;
        producers_[current_++] = producer{};  // release it now: a file closes here
    }
    return {};
}

// --- globbing_producer

globbing_producer::globbing_producer(producer inner, std::size_t buffer_size)
    : inner_(std::move(inner)), buffer_size_(buffer_size) {
    require_inner(inner_, "globbing_producer");
    if (buffer_size == 0)
        throw std::invalid_argument("globbing_producer: buffer_size must be positive");
}

std::string globbing_producer::more() {
    std::string buffer;
    while (inner_ && buffer.size() < buffer_size_) {
        std::string data = inner_.more();
        if (data.empty())
            inner_ = producer{};
        else if (buffer.empty())
            buffer = std::move(data);
        else
            buffer += data;
    }
    return buffer;
}

// --- hooked_producer

hooked_producer::hooked_producer(producer inner, std::function<void(std::size_t)> on_done)
    : inner_(std::move(inner)), on_done_(std::move(on_done)) {
    require_inner(inner_, "hooked_producer");
    if (!on_done_) throw std::invalid_argument("hooked_producer: on_done is empty");
}

std::string hooked_producer::more() {
    if (!inner_) return {};
    std::string data = inner_.more();
    if (data.empty()) {
        // Drop inner and the hook before calling it, so nothing can run it twice.
        inner_ = producer{};
        auto on_done = std::exchange(on_done_, nullptr);
        on_done(bytes_);
    } else {
        bytes_ += data.size();
    }
    return data;
}

// --- chunked_producer

chunked_producer::chunked_producer(producer inner, std::string footers)
    : inner_(std::move(inner)), footers_(std::move(footers)) {
    require_inner(inner_, "chunked_producer");
    if (!http::valid_trailers(footers_))
        throw std::invalid_argument(
            "chunked_producer: footers must be non-empty lines ending in \"\\r\\n\"");
}

std::string chunked_producer::more() {
    if (!inner_) return {};
    std::string data = inner_.more();
    std::string result;
    if (data.empty()) {
        // The inner producer is exhausted: the last-chunk and trailer, exactly once.
        inner_ = producer{};
        http::append_last_chunk(result, footers_);
        return result;
    }
    result.reserve(2 * sizeof(std::size_t) + data.size() + 4);
    http::append_chunk(result, data);
    return result;
}

// --- compressed_producer

void compressed_producer::deflate_end::operator()(z_stream_s* stream) const noexcept {
    ::deflateEnd(stream);
    delete stream;
}

compressed_producer::compressed_producer(producer inner, int level) : inner_(std::move(inner)) {
    require_inner(inner_, "compressed_producer");
    if (level < Z_DEFAULT_COMPRESSION || level > Z_BEST_COMPRESSION)
        throw std::invalid_argument("compressed_producer: level must be 0-9 or -1");
    auto stream = std::make_unique<z_stream>();
    int rc = ::deflateInit(stream.get(), level);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc != Z_OK) throw std::runtime_error("compressed_producer: deflateInit failed");
    stream_.reset(stream.release());
}

namespace {

// Feeds input to deflate with the given flush mode and returns all output it makes.
std::string deflate_some(z_stream& stream, std::string_view input, int flush) {
    constexpr std::size_t out_chunk = 16 * 1024;
    constexpr std::size_t max_in = std::size_t{1} << 30;  // avail_in is a uInt
    std::string out;
    do {
        std::size_t take = std::min(input.size(), max_in);
        stream.next_in = reinterpret_cast<const Bytef*>(input.data());
        stream.avail_in = static_cast<uInt>(take);
        input.remove_prefix(take);
        int mode = input.empty() ? flush : Z_NO_FLUSH;
        do {
            std::size_t used = out.size();
            out.resize(used + out_chunk);
            stream.next_out = reinterpret_cast<Bytef*>(out.data() + used);
            stream.avail_out = static_cast<uInt>(out_chunk);
            int rc = ::deflate(&stream, mode);
            if (rc == Z_STREAM_ERROR)
                throw std::runtime_error("compressed_producer: deflate failed");
            out.resize(used + out_chunk - stream.avail_out);
        } while (stream.avail_out == 0);
    } while (!input.empty());
    return out;
}

}  // namespace

std::string compressed_producer::more() {
    // As Medusa's: keep feeding until deflate has something to say.
    std::string out;
    while (stream_ && out.empty()) {
        std::string data = inner_.more();
        if (data.empty()) {
            out = deflate_some(*stream_, {}, Z_FINISH);
            inner_ = producer{};
            stream_.reset();
        } else {
            out = deflate_some(*stream_, data, Z_NO_FLUSH);
        }
    }
    return out;
}

// --- escaping_producer

escaping_producer::escaping_producer(producer inner, std::string esc_from, std::string esc_to,
                                     escape_start start)
    : inner_(std::move(inner)), esc_from_(std::move(esc_from)), esc_to_(std::move(esc_to)) {
    require_inner(inner_, "escaping_producer");
    if (esc_from_.empty()) throw std::invalid_argument("escaping_producer: esc_from is empty");
    if (start == escape_start::as_line_start && esc_from_.size() > 1) {
        // The stream is matched as if it followed esc_from minus its last byte ("\r\n"). That
        // virtual prefix is fed through like data and then stripped from the output, which is
        // only sound when every replacement still begins with it.
        std::string lead = esc_from_.substr(0, esc_from_.size() - 1);
        if (!esc_to_.starts_with(lead))
            throw std::invalid_argument(
                "escaping_producer: with escape_start::as_line_start, esc_to must begin with "
                "esc_from minus its last byte");
        pending_ = std::move(lead);
        strip_ = pending_.size();
    }
}

// Escapes pending_ up to a tail that may be the start of esc_from, and keeps that tail.
//
// Why the tail is computed after the last match: the held-back bytes must be a prefix of
// esc_from that no left-to-right match in this buffer already covers, so that escaping the
// stream piecewise gives exactly the same result as escaping it whole, whatever the split.
std::string escaping_producer::escape_ready() {
    std::string_view raw = pending_;
    std::string out;
    out.reserve(raw.size() + raw.size() / 8);
    std::size_t pos = 0;
    for (;;) {
        std::size_t hit = find_terminator(raw.substr(pos), esc_from_);
        if (hit == std::string_view::npos) break;
        out.append(raw.substr(pos, hit)).append(esc_to_);
        pos += hit + esc_from_.size();
    }
    std::size_t keep = find_prefix_at_end(raw.substr(pos), esc_from_);
    out.append(raw.substr(pos, raw.size() - pos - keep));
    pending_.erase(0, raw.size() - keep);
    return out;
}

std::string escaping_producer::more() {
    std::string out;
    while (out.empty() && (inner_ || !pending_.empty())) {
        std::string data = inner_ ? inner_.more() : std::string{};
        if (data.empty()) {
            // Exhausted: the held-back tail is a proper prefix of esc_from, so goes out as is.
            inner_ = producer{};
            out = std::exchange(pending_, std::string{});
        } else {
            pending_ += data;
            out = escape_ready();
        }
        std::size_t strip = std::min(strip_, out.size());
        out.erase(0, strip);
        strip_ -= strip;
    }
    return out;
}

}  // namespace coronet
