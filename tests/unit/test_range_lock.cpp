// Overlapping writes serialize; disjoint ones do not wait for each other.
#include "range_lock.hpp"

#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <thread>
#include <vector>

using namespace sgfs;
using namespace std::chrono_literals;

TEST_CASE("disjoint ranges are held together")
{
    RangeLock lock;
    auto a = lock.lock(0, 10);
    auto b = lock.lock(10, 20);
    CHECK(lock.held() == 2);
}

TEST_CASE("an overlapping range waits for the holder")
{
    RangeLock lock;
    std::atomic<bool> entered{false};
    std::thread other;
    {
        auto held = lock.lock(5, 15);
        other = std::thread([&] {
            auto mine = lock.lock(14, 30);
            entered = true;
        });
        std::this_thread::sleep_for(50ms);
        CHECK_FALSE(entered.load());
    }
    other.join();
    CHECK(entered.load());
    CHECK(lock.held() == 0);
}

TEST_CASE("read-modify-write under the lock never loses an update")
{
    RangeLock lock;
    int shared_block = 0; // stands for one boundary block patched by many writers
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t)
        writers.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                auto held = lock.lock(7, 8);
                const int read = shared_block;
                std::this_thread::yield();
                shared_block = read + 1;
            }
        });
    for (auto &writer : writers)
        writer.join();
    CHECK(shared_block == 4000);
}
