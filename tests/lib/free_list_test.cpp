#include <coronet/lib/free_list.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

namespace {

int dropped = 0;

struct count_drop {
    void operator()(int*& p) const noexcept {
        ++dropped;
        delete p;
    }
};

}  // namespace

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
