#include <coronet/lib/free_list.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

int dropped = 0;

int blocks_dropped = 0;

struct count_block_drop {
    void operator()(void* p) const noexcept {
        ++blocks_dropped;
        ::operator delete(p);
    }
};

struct count_drop {
    void operator()(int*& p) const noexcept {
        ++dropped;
        delete p;
    }
};

}  // namespace

using coronet::block_free_list;
using coronet::free_list;

TEST_CASE("free_list: take() gives back the thing kept last") {
    free_list<int, 4> list;
    CHECK(list.empty());
    int a = 1, b = 2;
    CHECK(list.keep(a));
    CHECK(list.keep(b));
    CHECK(list.size() == 2);
    CHECK(list.take() == 2);
    CHECK(list.take() == 1);
    CHECK(list.empty());
}

TEST_CASE("free_list: keeps at most Kept, then refuses and leaves the thing alone") {
    free_list<std::string, 2> list;
    std::string a = "a", b = "b", c = "c";
    CHECK(list.keep(a));
    CHECK(list.keep(b));
    CHECK(list.full());
    CHECK_FALSE(list.keep(c));
    CHECK(c == "c");  // refused: not moved from
    CHECK(list.take() == "b");
    CHECK_FALSE(list.full());
    CHECK(list.keep(c));
    CHECK(list.take() == "c");
}

TEST_CASE("free_list: Drop frees what is still kept when the list dies") {
    dropped = 0;
    {
        free_list<int*, 8, count_drop> list;
        int* p = new int(1);
        int* q = new int(2);
        CHECK(list.keep(p));
        CHECK(list.keep(q));
        int* r = list.take();  // taken: its owner frees it, not the list
        CHECK(*r == 2);
        delete r;
    }
    CHECK(dropped == 1);
}

TEST_CASE("free_list: one per thread when declared thread_local") {
    static thread_local free_list<int, 4> mine;
    int one = 1;
    CHECK(mine.keep(one));
    std::size_t other_size = 99;
    std::thread t([&] { other_size = mine.size(); });
    t.join();
    CHECK(other_size == 0);
    CHECK(mine.size() == 1);
}

TEST_CASE("block_free_list: take() gives back the block kept last, linked through the block") {
    block_free_list<4> list;
    CHECK(list.empty());
    void* a = ::operator new(64);
    void* b = ::operator new(64);
    CHECK(list.keep(a));
    CHECK(list.keep(b));
    CHECK(list.size() == 2);
    CHECK(list.take() == b);
    CHECK(list.take() == a);
    CHECK(list.empty());
    CHECK(list.size() == 0);
    ::operator delete(a);
    ::operator delete(b);
}

TEST_CASE("block_free_list: keeps at most Kept, then refuses and leaves the block alone") {
    block_free_list<2> list;
    void* a = ::operator new(16);
    void* b = ::operator new(16);
    void* c = ::operator new(16);
    std::memset(c, 'c', 16);
    CHECK(list.keep(a));
    CHECK(list.keep(b));
    CHECK(list.full());
    CHECK_FALSE(list.keep(c));
    CHECK(static_cast<const char*>(c)[0] == 'c');  // refused: not written to
    CHECK(list.take() == b);
    CHECK_FALSE(list.full());
    CHECK(list.keep(c));
    CHECK(list.take() == c);
    CHECK(list.take() == a);
    for (void* p : {a, b, c})
        ::operator delete(p);
}

TEST_CASE("block_free_list: Drop frees the blocks still kept when the list dies") {
    blocks_dropped = 0;
    {
        block_free_list<8, count_block_drop> list;
        CHECK(list.keep(::operator new(32)));
        CHECK(list.keep(::operator new(32)));
        CHECK(list.keep(::operator new(32)));
        ::operator delete(list.take());  // taken: its owner frees it, not the list
    }
    CHECK(blocks_dropped == 2);
}
