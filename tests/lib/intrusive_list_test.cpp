#include <coronet/lib/intrusive_list.hpp>

#include <catch2/catch.hpp>

#include <vector>

namespace {

struct item {
    int value = 0;
    item* prev = nullptr;
    item* next = nullptr;
};

// Links under other names, as an element with two kinds of list would have.
struct named {
    int value = 0;
    named* before = nullptr;
    named* after = nullptr;
};

template <class List, class T, class Next>
std::vector<int> values(const List& list, Next next) {
    std::vector<int> out;
    for (T* p = list.front(); p; p = p->*next)
        out.push_back(p->value);
    return out;
}

}  // namespace

using coronet::intrusive_list;

TEST_CASE("intrusive_list: push_front links at the head, walked through next") {
    intrusive_list<item> list;
    CHECK(list.empty());
    CHECK(list.front() == nullptr);
    item a{1}, b{2}, c{3};
    list.push_front(a);
    list.push_front(b);
    list.push_front(c);
    CHECK_FALSE(list.empty());
    CHECK(values<intrusive_list<item>, item>(list, &item::next) == std::vector<int>{3, 2, 1});
    CHECK(c.prev == nullptr);
    CHECK(b.prev == &c);
    CHECK(a.next == nullptr);
}

TEST_CASE("intrusive_list: remove from the head, the middle and the tail") {
    intrusive_list<item> list;
    item a{1}, b{2}, c{3}, d{4};
    for (item* p : {&a, &b, &c, &d})
        list.push_front(*p);  // 4 3 2 1
    CHECK(list.remove(c));    // middle
    CHECK(values<intrusive_list<item>, item>(list, &item::next) == std::vector<int>{4, 2, 1});
    CHECK(c.prev == nullptr);
    CHECK(c.next == nullptr);
    CHECK(list.remove(d));  // head
    CHECK(list.front() == &b);
    CHECK(b.prev == nullptr);
    CHECK(list.remove(a));  // tail
    CHECK(values<intrusive_list<item>, item>(list, &item::next) == std::vector<int>{2});
    CHECK(list.remove(b));  // the last one
    CHECK(list.empty());
}

TEST_CASE("intrusive_list: removing what is not linked does nothing") {
    intrusive_list<item> list;
    item a{1}, b{2};
    CHECK_FALSE(list.contains(a));
    CHECK_FALSE(list.remove(a));  // never linked
    list.push_front(a);
    CHECK(list.contains(a));
    CHECK_FALSE(list.contains(b));
    CHECK_FALSE(list.remove(b));
    CHECK(list.remove(a));
    CHECK_FALSE(list.remove(a));  // twice
    CHECK(list.empty());
    list.push_front(a);  // and back again
    CHECK(list.front() == &a);
}

TEST_CASE("intrusive_list: links under other member names") {
    intrusive_list<named, &named::before, &named::after> list;
    named a{1}, b{2};
    list.push_front(a);
    list.push_front(b);
    CHECK(values<decltype(list), named>(list, &named::after) == std::vector<int>{2, 1});
    CHECK(a.before == &b);
    CHECK(list.remove(b));
    CHECK(list.front() == &a);
    CHECK(a.before == nullptr);
}

TEST_CASE("intrusive_list: unlink and pop_front") {
    intrusive_list<item> list;
    CHECK(list.pop_front() == nullptr);
    item a{1}, b{2}, c{3};
    for (item* p : {&a, &b, &c})
        list.push_front(*p);  // 3 2 1
    list.unlink(b);
    CHECK(values<intrusive_list<item>, item>(list, &item::next) == std::vector<int>{3, 1});
    CHECK(list.pop_front() == &c);
    CHECK(c.next == nullptr);
    CHECK(a.prev == nullptr);  // the new front
    CHECK(list.pop_front() == &a);
    CHECK(list.empty());
}
