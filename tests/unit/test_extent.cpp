// Byte-range to block arithmetic: plans, clamping, chunking and the head/whole/tail walk.
#include "sgfs/extent.hpp"

#include <cerrno>
#include <doctest/doctest.h>
#include <vector>

using namespace sgfs;

TEST_CASE("plan_blocks: aligned range")
{
    const BlockPlan plan = plan_blocks(4096, 8192, 512);
    CHECK(plan.first_lba == 8);
    CHECK(plan.block_count == 16);
    CHECK(plan.head_skip == 0);
    CHECK(plan.tail_keep == 0);
    CHECK(plan.aligned());
}

TEST_CASE("plan_blocks: unaligned head and tail")
{
    // bytes 1000..13344 on 4096-byte blocks: blocks 0..3, 1000 before, 3040 after
    const BlockPlan plan = plan_blocks(1000, 12345, 4096);
    CHECK(plan.first_lba == 0);
    CHECK(plan.block_count == 4);
    CHECK(plan.head_skip == 1000);
    CHECK(plan.tail_keep == 4 * 4096 - (1000 + 12345));
    CHECK_FALSE(plan.aligned());
}

TEST_CASE("plan_blocks: inside one block")
{
    const BlockPlan plan = plan_blocks(513, 10, 512);
    CHECK(plan.first_lba == 1);
    CHECK(plan.block_count == 1);
    CHECK(plan.head_skip == 1);
    CHECK(plan.tail_keep == 512 - 11);
}

TEST_CASE("clamp_length")
{
    CHECK(clamp_length(0, 100, 1000) == 100);
    CHECK(clamp_length(950, 100, 1000) == 50);
    CHECK(clamp_length(1000, 100, 1000) == 0);
    CHECK(clamp_length(5000, 100, 1000) == 0);
    CHECK(clamp_length(0, UINT64_MAX, 1000) == 1000);
}

TEST_CASE("write_extent: cut at the end, ENOSPC from the end on, nothing for length 0")
{
    std::uint64_t wanted = 7;
    CHECK(write_extent(0, 100, 1000, wanted) == 0);
    CHECK(wanted == 100);
    CHECK(write_extent(950, 100, 1000, wanted) == 0);
    CHECK(wanted == 50);
    CHECK(write_extent(1000, 100, 1000, wanted) == -ENOSPC);
    CHECK(wanted == 0);
    CHECK(write_extent(5000, 1, 1000, wanted) == -ENOSPC);
    // An empty write succeeds anywhere, as pwrite(2) of 0 bytes does.
    wanted = 7;
    CHECK(write_extent(5000, 0, 1000, wanted) == 0);
    CHECK(wanted == 0);
    CHECK(write_extent(0, UINT64_MAX, 1000, wanted) == 0);
    CHECK(wanted == 1000);
}

TEST_CASE("max_blocks_per_command")
{
    CHECK(max_blocks_per_command(std::uint64_t{512} * 1024, 512) == 1024);
    CHECK(max_blocks_per_command(std::uint64_t{512} * 1024, 4096) == 128);
    CHECK(max_blocks_per_command(1000, 512) == 1);
    CHECK(max_blocks_per_command(100, 4096) == 1);
}

TEST_CASE("powers of two and alignment")
{
    CHECK(is_power_of_two(4096));
    CHECK_FALSE(is_power_of_two(0));
    CHECK_FALSE(is_power_of_two(4095));
    CHECK(round_down_power_of_two(std::uint64_t{1280} * 1024) == 1024 * 1024);
    CHECK(round_down_power_of_two(1) == 1);
    CHECK(is_aligned(std::uint64_t{8192}, 4096));
    CHECK_FALSE(is_aligned(std::uint64_t{8193}, 512));
    alignas(4096) static char page[8192];
    CHECK(is_aligned(page, 4096));
    CHECK_FALSE(is_aligned(page + 80, 512));
}

TEST_CASE("for_each_chunk splits into pieces of at most max_blocks")
{
    std::vector<std::pair<std::uint64_t, std::uint32_t>> pieces;
    const int rc = for_each_chunk(100, 2500, 1024,
                                  [&](std::uint64_t lba, std::uint32_t n, std::uint64_t first) {
                                      CHECK(lba == 100 + first);
                                      pieces.emplace_back(lba, n);
                                      return 0;
                                  });
    CHECK(rc == 0);
    REQUIRE(pieces.size() == 3);
    CHECK(pieces[0] == std::pair<std::uint64_t, std::uint32_t>{100, 1024});
    CHECK(pieces[1] == std::pair<std::uint64_t, std::uint32_t>{1124, 1024});
    CHECK(pieces[2] == std::pair<std::uint64_t, std::uint32_t>{2148, 452});
}

TEST_CASE("for_each_chunk stops at the first error")
{
    int calls = 0;
    const int rc = for_each_chunk(0, 10, 2, [&](std::uint64_t, std::uint32_t, std::uint64_t) {
        return ++calls == 2 ? -5 : 0;
    });
    CHECK(rc == -5);
    CHECK(calls == 2);
}

// Every byte range over a few small blocks: the pieces cover the range exactly once, in
// order; partial pieces stay inside one block; whole pieces are whole blocks.
TEST_CASE("for_each_piece covers every byte range exactly")
{
    constexpr std::uint32_t block = 8;
    for (std::uint64_t offset = 0; offset < std::uint64_t{3} * block; ++offset) {
        for (std::uint64_t length = 1; length < std::uint64_t{5} * block; ++length) {
            CAPTURE(offset);
            CAPTURE(length);
            std::vector<int> covered(offset + length + std::uint64_t{2} * block, 0);
            std::uint64_t expected_done = 0;
            const int rc = for_each_piece(
                plan_blocks(offset, length, block), length, block,
                [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes,
                    std::uint64_t done) {
                    CHECK(done == expected_done);
                    CHECK(skip + bytes <= block);
                    CHECK(lba * block + skip == offset + done);
                    for (std::uint64_t i = 0; i < bytes; ++i)
                        ++covered[offset + done + i];
                    expected_done += bytes;
                    return 0;
                },
                [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
                    CHECK(done == expected_done);
                    CHECK(lba * block == offset + done);
                    for (std::uint64_t i = 0; i < blocks * block; ++i)
                        ++covered[offset + done + i];
                    expected_done += blocks * block;
                    return 0;
                });
            CHECK(rc == 0);
            CHECK(expected_done == length);
            for (std::uint64_t i = 0; i < covered.size(); ++i)
                CHECK(covered[i] == ((i >= offset && i < offset + length) ? 1 : 0));
        }
    }
}
