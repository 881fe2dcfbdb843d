// coro/producer.hpp: producers, the pull-based sources of outgoing data that a channel drains.
//
// A producer is any type with `std::string more()`; an empty string means "exhausted" and every
// later call returns empty too. `producer` is the type-erased, move-only holder the channel
// queues (async_chat's producer_fifo). The classes below are Medusa's producers.py, one for one,
// plus file_producer's zero-copy accessors (sendfile) for the channel.
// Medusa ancestor: medusa/producers.py (and asynchat.simple_producer).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

struct z_stream_s;  // <zlib.h>, kept out of this header

namespace coronet {

// Anything with `more()` returning (something convertible to) std::string; empty = exhausted.
template <class P>
concept producer_source = requires(P& p) {
    { p.more() } -> std::convertible_to<std::string>;
};

// Reads a file descriptor 64 KiB per more(), closes it at EOF (producers.file_producer).
// It owns the descriptor, or shares one that an open-file cache keeps open
// (coro/open_file_cache.hpp).
class file_producer {
public:
    // Bytes returned by one more(), as Medusa's out_buffer_size.
    static constexpr std::size_t out_buffer_size = std::size_t{1} << 16;

    // Takes ownership of fd (closed at EOF or on destruction); reading starts at its position.
    explicit file_producer(int fd);
    // Bytes [offset, offset + size) of a regular file whose descriptor `owner` keeps open (no
    // system call here; fd is never closed by this producer, which lets go of owner at EOF).
    file_producer(std::shared_ptr<const void> owner, int fd, std::uint64_t offset,
                  std::uint64_t size);
    // Opens path read-only; throws std::system_error on failure.
    [[nodiscard]] static file_producer open(const std::filesystem::path& path);

    file_producer(file_producer&& other) noexcept;
    file_producer& operator=(file_producer&& other) noexcept;
    file_producer(const file_producer&) = delete;
    file_producer& operator=(const file_producer&) = delete;
    ~file_producer();

    // The next (up to) 64 KiB; at EOF closes the fd and returns empty, forever after.
    std::string more();
    // Reads the next (up to) max bytes, at most 64 KiB, onto the end of out (a buffer the
    // caller reuses: nothing is allocated when it has room); 0 at EOF, which closes the fd.
    std::size_t append_to(std::string& out, std::size_t max = out_buffer_size);

    // The open descriptor for sendfile, or -1 once closed.
    int fd() const noexcept { return fd_; }
    // File offset of the next unsent byte (pass a copy to sendfile, then call consumed()).
    std::uint64_t offset() const noexcept { return offset_; }
    // Bytes left, known for regular files (size from fstat at open); nullopt for pipes/sockets.
    std::optional<std::size_t> remaining() const noexcept;
    // Records n bytes sent zero-copy from offset(); n == 0 means the sender saw EOF: closes.
    void consumed(std::size_t n);
    // True once consumed() has recorded bytes: the file is being sent zero-copy.
    bool sending_zero_copy() const noexcept { return zero_copy_; }

private:
    void close() noexcept;

    int fd_ = -1;
    bool regular_ = false;    // pread at offset_ and size_ is meaningful
    bool zero_copy_ = false;  // consumed() has recorded bytes
    std::uint64_t offset_ = 0;
    std::uint64_t size_ = 0;  // regular files: where reading ends (st_size at construction)
    std::shared_ptr<const void> owner_;  // set: fd_ is shared, and owner_ keeps it open
};

// Type-erased, move-only holder of any producer_source; what a channel's fifo stores.
class producer {
public:
    // An empty holder: operator bool is false and more() returns empty.
    producer() noexcept = default;
    // Wraps p (moved into one heap-allocated model).
    template <producer_source P>
        requires(!std::same_as<std::remove_cvref_t<P>, producer>)
    producer(P p) : impl_(std::make_unique<model<P>>(std::move(p))) {}

    producer(producer&&) noexcept = default;
    producer& operator=(producer&&) noexcept = default;

    // The wrapped producer's next chunk; empty when exhausted (or when nothing is held).
    std::string more() { return impl_ ? impl_->more() : std::string{}; }
    // True when something is held.
    explicit operator bool() const noexcept { return impl_ != nullptr; }
    // The wrapped file_producer for zero-copy sends, or nullptr for any other type.
    file_producer* as_file() noexcept { return impl_ ? impl_->as_file() : nullptr; }

private:
    struct model_base {
        virtual ~model_base() = default;
        virtual std::string more() = 0;
        virtual file_producer* as_file() noexcept { return nullptr; }
    };
    template <class P>
    struct model final : model_base {
        explicit model(P p) : source(std::move(p)) {}
        std::string more() override { return std::string(source.more()); }
        file_producer* as_file() noexcept override {
            if constexpr (std::is_same_v<P, file_producer>)
                return &source;
            else
                return nullptr;
        }
        P source;
    };

    std::unique_ptr<model_base> impl_;
};

// Returns data buffer_size bytes per more() (producers.simple_producer).
class simple_producer {
public:
    // Throws std::invalid_argument when buffer_size is 0.
    explicit simple_producer(std::string data, std::size_t buffer_size = 1024);
    // The next buffer_size bytes (fewer at the end), then empty.
    std::string more();

private:
    std::string data_;
    std::size_t pos_ = 0;
    std::size_t buffer_size_;
};

// Returns up to 50 lines per more(), each followed by "\r\n" (producers.lines_producer).
class lines_producer {
public:
    // Lines returned by one more().
    static constexpr std::size_t lines_per_more = 50;
    // The lines, without their line endings.
    explicit lines_producer(std::vector<std::string> lines);
    // The next up-to-50 lines, each with "\r\n" appended, then empty.
    std::string more();

private:
    std::vector<std::string> lines_;
    std::size_t next_ = 0;
};

// Returns one buffer per more() (producers.buffer_list_producer).
class buffer_list_producer {
public:
    // Empty buffers are skipped rather than ending the stream early (Medusa's would stop there).
    explicit buffer_list_producer(std::vector<std::string> buffers);
    // The next non-empty buffer, then empty.
    std::string more();

private:
    std::vector<std::string> buffers_;
    std::size_t next_ = 0;
};

// Drains each producer in turn (producers.composite_producer).
class composite_producer {
public:
    // Producers are released (files closed) as soon as each is exhausted.
    explicit composite_producer(std::vector<producer> producers);
    // The current producer's next chunk, moving on when it is exhausted.
    std::string more();

private:
    std::vector<producer> producers_;
    std::size_t current_ = 0;
};

// Gathers small chunks into at least buffer_size bytes per more() (producers.globbing_producer).
class globbing_producer {
public:
    // Throws std::invalid_argument for an empty inner producer or a buffer_size of 0.
    explicit globbing_producer(producer inner, std::size_t buffer_size = std::size_t{1} << 16);
    // At least buffer_size bytes, unless inner is exhausted first.
    std::string more();

private:
    producer inner_;
    std::size_t buffer_size_;
};

// Calls on_done(total bytes) exactly once, when inner is exhausted (producers.hooked_producer).
class hooked_producer {
public:
    // Throws std::invalid_argument for an empty inner producer or an empty on_done.
    hooked_producer(producer inner, std::function<void(std::size_t)> on_done);
    // Inner's next chunk; on exhaustion calls on_done once and returns empty.
    std::string more();

private:
    producer inner_;
    std::function<void(std::size_t)> on_done_;
    std::size_t bytes_ = 0;
};

// HTTP/1.1 chunked transfer coding of inner (producers.chunked_producer).
class chunked_producer {
public:
    // footers: "" or non-empty trailer lines, each ending in its only "\r\n" (else
    // std::invalid_argument: an empty line or a bare CR or LF would end the message early).
    explicit chunked_producer(producer inner, std::string footers = "");
    // "<hex len>\r\n<data>\r\n" per inner chunk, then "0\r\n<footers>\r\n" once, then empty.
    std::string more();

private:
    producer inner_;  // empty once the terminator has been returned
    std::string footers_;
};

// zlib-compresses inner as one zlib (deflate) stream (producers.compressed_producer).
class compressed_producer {
public:
    // level: 0-9 or -1 (Z_DEFAULT_COMPRESSION); else std::invalid_argument.
    explicit compressed_producer(producer inner, int level = 5);
    // The next non-empty piece of compressed output, the stream's tail at the end, then empty.
    std::string more();

private:
    struct deflate_end {
        void operator()(z_stream_s* stream) const noexcept;
    };

    producer inner_;
    std::unique_ptr<z_stream_s, deflate_end> stream_;  // heap: zlib's state points back to it
};

// Where escaping_producer's stream begins, for matching esc_from.
enum class escape_start {
    as_line_start,  // as if after esc_from minus its last byte: SMTP's "\r\n", so ".x" -> "..x"
    verbatim,       // nothing precedes the stream: a leading "." is left alone
};

// Replaces esc_from by esc_to, even across chunk boundaries: SMTP dot-stuffing
// (producers.escaping_producer). Unlike Medusa's, it never drops a held-back tail at the end.
class escaping_producer {
public:
    // Throws std::invalid_argument for an empty inner or esc_from, or, with as_line_start,
    // when esc_to does not begin with esc_from minus its last byte.
    explicit escaping_producer(producer inner, std::string esc_from = "\r\n.",
                               std::string esc_to = "\r\n..",
                               escape_start start = escape_start::as_line_start);
    // The next non-empty piece of escaped output, then empty.
    std::string more();

private:
    std::string escape_ready();

    producer inner_;
    std::string esc_from_;
    std::string esc_to_;
    std::string pending_;    // raw bytes held back: a possible start of esc_from
    std::size_t strip_ = 0;  // bytes of the virtual line start still to drop from the output
};

}  // namespace coronet
