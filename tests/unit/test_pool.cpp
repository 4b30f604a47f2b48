// The fd pool: leases, blocking when exhausted, LIFO reuse, and concurrent borrowers.
#include "sgfs/pool.hpp"

#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <thread>
#include <vector>

using namespace sgfs;

namespace
{
struct Item : PoolHook {
    int id = 0;
    std::atomic<int> users{0};
};
} // namespace

TEST_CASE("a lease returns its item when it goes out of scope")
{
    Item a;
    Pool<Item> pool;
    pool.add(a);
    CHECK(pool.size() == 1);
    {
        auto lease = pool.acquire();
        CHECK(lease.get() == &a);
        CHECK(pool.idle() == 0);
        CHECK_FALSE(pool.try_acquire());
    }
    CHECK(pool.idle() == 1);
}

TEST_CASE("moved leases return exactly once")
{
    Item a;
    Item b;
    Pool<Item> pool;
    pool.add(a);
    pool.add(b);
    auto first = pool.acquire();
    auto moved = std::move(first);
    CHECK_FALSE(first);
    CHECK(moved);
    auto second = pool.acquire();
    moved = std::move(second); // returns the first item, takes the second lease
    CHECK(pool.idle() == 1);
    moved.release();
    CHECK(pool.idle() == 2);
}

TEST_CASE("the most recently returned item is lent next")
{
    Item a;
    Item b;
    a.id = 1;
    b.id = 2;
    Pool<Item> pool;
    pool.add(a);
    pool.add(b);
    {
        auto lease = pool.acquire();
        CHECK(lease->id == 2);
    }
    auto again = pool.acquire();
    CHECK(again->id == 2);
}

TEST_CASE("acquire blocks until an item is given back")
{
    Item a;
    Pool<Item> pool;
    pool.add(a);
    auto held = pool.acquire();
    std::atomic<bool> got{false};
    std::thread waiter([&] {
        auto lease = pool.acquire();
        got = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(got.load());
    held.release();
    waiter.join();
    CHECK(got.load());
}

TEST_CASE("no item is ever lent to two borrowers at once")
{
    std::vector<Item> items(3);
    Pool<Item> pool;
    for (auto &item : items)
        pool.add(item);
    std::atomic<int> violations{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                auto lease = pool.acquire();
                if (lease->users.fetch_add(1) != 0)
                    ++violations;
                lease->users.fetch_sub(1);
            }
        });
    for (auto &thread : threads)
        thread.join();
    CHECK(violations == 0);
    CHECK(pool.idle() == 3);
}

TEST_CASE("acquire_many takes all it needs at once, or waits")
{
    std::vector<Item> items(3);
    Pool<Item> pool;
    for (auto &item : items)
        pool.add(item);
    auto one = pool.acquire();
    std::atomic<bool> got{false};
    std::thread waiter([&] {
        auto leases = pool.acquire_many(3);
        CHECK(leases.size() == 3);
        got = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(got.load());
    CHECK(pool.idle() == 2); // nothing taken while waiting: no hold-and-wait
    one.release();
    waiter.join();
    CHECK(got.load());
    CHECK(pool.idle() == 3);
}
