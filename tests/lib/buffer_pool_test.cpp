#include <coronet/lib/buffer_pool.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <coronet/lib/reactor.hpp>

#include "tests/support/backends.hpp"

// The reactor's provided blocks: a free stack, or (io_uring) a buffer ring the
// pool hands its free blocks to. The pool alone first, then through a reactor
// on every backend.

using coronet::buffer_pool;

namespace {

// A buffer ring that only records what it is given.
struct recording_ring final : coronet::buffer_ring {
    buffer_pool* pool = nullptr;
    std::vector<std::uint16_t> got;
    void put_back(std::uint16_t id, std::byte* data, std::size_t size) noexcept override {
        if (pool) {
            CHECK(data == pool->data(id));
            CHECK(size == pool->size());
        }
        got.push_back(id);
    }
};

}  // namespace

TEST_CASE("buffer_pool: an empty pool hands out nothing", "[buffer_pool]") {
    buffer_pool none;
    CHECK(none.count() == 0);
    CHECK(none.size() == 0);
    CHECK(none.take() == -1);
    CHECK(none.in_use() == 0);
    buffer_pool zero_size(4, 0);
    CHECK(zero_size.count() == 0);
    CHECK(zero_size.take() == -1);
}

TEST_CASE("buffer_pool: each block is handed out once, the last given back first",
          "[buffer_pool]") {
    buffer_pool pool(3, 64);
    REQUIRE(pool.count() == 3);
    REQUIRE(pool.size() == 64);
    CHECK(pool.data(1) == pool.data(0) + 64);
    CHECK(pool.take() == 0);  // lowest id first
    CHECK(pool.take() == 1);
    CHECK(pool.take() == 2);
    CHECK(pool.take() == -1);
    CHECK(pool.in_use() == 3);
    pool.give_back(1);
    CHECK(pool.in_use() == 2);
    CHECK(pool.given_back() == 1);
    CHECK(pool.take() == 1);  // the warm one again
    pool.give_back(0);
    pool.give_back(1);
    pool.give_back(2);
    CHECK(pool.in_use() == 0);
    CHECK(pool.given_back() == 4);
}

TEST_CASE("buffer_pool: a block taken and not used is not counted as given back", "[buffer_pool]") {
    // A readiness backend tells a block that came back (a receive starved of
    // one may wait a turn more) from one its own receive found no bytes for.
    buffer_pool pool(1, 64);
    int id = pool.take();
    REQUIRE(id == 0);
    pool.untake(0);
    CHECK(pool.in_use() == 0);
    CHECK(pool.given_back() == 0);
    CHECK(pool.take() == 0);
}

TEST_CASE("buffer_pool: an attached ring gets every free block, then each one given back",
          "[buffer_pool]") {
    buffer_pool pool(4, 128);
    recording_ring ring;
    ring.pool = &pool;
    REQUIRE(pool.take() == 0);  // held across the attach
    pool.attach(ring);
    CHECK(ring.got == std::vector<std::uint16_t>{1, 2, 3});
    CHECK(pool.take() == -1);  // the free blocks are the ring's now
    pool.lend(2);              // the kernel picked one
    CHECK(pool.in_use() == 2);
    pool.give_back(2);
    pool.give_back(0);
    CHECK(ring.got == std::vector<std::uint16_t>{1, 2, 3, 2, 0});
    CHECK(pool.in_use() == 0);
    CHECK(pool.given_back() == 2);
    pool.lend(3);
    pool.detach();
    pool.give_back(3);  // the ring is gone: back onto the free stack
    CHECK(ring.got.size() == 5);
    CHECK(pool.take() == 3);
    pool.give_back(3);
}

TEST_CASE("buffer_pool: block ids stay within 16 bits", "[buffer_pool]") {
    buffer_pool pool(40000, 1);
    CHECK(pool.count() == 32768);
}

#ifdef CORONET_ASAN
TEST_CASE("buffer_pool: a free block is poisoned, one handed out is not", "[buffer_pool]") {
    buffer_pool pool(2, 64);
    CHECK(__asan_address_is_poisoned(pool.data(0)));
    int id = pool.take();
    REQUIRE(id == 0);
    CHECK_FALSE(__asan_address_is_poisoned(pool.data(0)));
    CHECK_FALSE(__asan_address_is_poisoned(pool.data(0) + 63));
    CHECK(__asan_address_is_poisoned(pool.data(1)));
    pool.give_back(0);
    CHECK(__asan_address_is_poisoned(pool.data(0)));
}
#endif

TEST_CASE("buffer_pool: the reactor's pool is sized by its options on every backend",
          "[buffer_pool]") {
    CORONET_FOR_EACH_BACKEND(kind);
    {
        coronet::reactor r{{.backend = kind, .provided_buffers = 4, .provided_buffer_size = 256}};
        CHECK(r.provided_buffer_size() == 256);
        CHECK(r.buffers_in_use() == 0);
        if (kind != coronet::backend_kind::io_uring) CHECK_FALSE(r.multishot_receive());
    }
    coronet::reactor none{{.backend = kind, .provided_buffers = 0}};
    CHECK(none.provided_buffer_size() == 0);
    CHECK(none.buffers_in_use() == 0);
    CHECK_FALSE(none.multishot_receive());  // no buffer ring to receive into
}
