#include "readahead_window.hpp"

#include <doctest/doctest.h>
#include <vector>

using namespace sgfs;

TEST_CASE("the first window is four requests, rounded up to a power of two")
{
    CHECK(first_window_blocks(16, 2048) == 64);
    CHECK(first_window_blocks(24, 2048) == 128);
    CHECK(first_window_blocks(1, 2048) == 4);
    CHECK(first_window_blocks(0, 2048) == 4);
}

TEST_CASE("no window is larger than one command")
{
    CHECK(first_window_blocks(2048, 2048) == 2048);
    CHECK(first_window_blocks(1000, 2048) == 2048);
    CHECK(first_window_blocks(16, 8) == 8);
    CHECK(next_window_blocks(1024, 2048) == 2048);
    CHECK(next_window_blocks(2048, 2048) == 2048);
    CHECK(next_window_blocks(1500, 2048) == 2048);
    CHECK(first_window_blocks(16, 0) == 1);
}

TEST_CASE("windows double until they reach the largest command")
{
    std::vector<std::uint64_t> sizes{first_window_blocks(16, 2048)};
    while (sizes.back() < 2048)
        sizes.push_back(next_window_blocks(sizes.back(), 2048));
    CHECK(sizes == std::vector<std::uint64_t>{64, 128, 256, 512, 1024, 2048});
}

TEST_CASE("a request inside one window is served from an offset into it")
{
    const std::vector<BlockRange> windows{{100, 64}};
    std::vector<WindowPiece> pieces;
    REQUIRE(cover_request(windows, {116, 16}, pieces));
    REQUIRE(pieces.size() == 1);
    CHECK(pieces[0].window == 0);
    CHECK(pieces[0].offset_blocks == 16);
    CHECK(pieces[0].blocks == 16);
}

TEST_CASE("a request may span two windows, in whatever order they are listed")
{
    const std::vector<BlockRange> windows{{164, 128}, {0, 0}, {100, 64}};
    std::vector<WindowPiece> pieces;
    REQUIRE(cover_request(windows, {160, 16}, pieces));
    REQUIRE(pieces.size() == 2);
    CHECK(pieces[0].window == 2);
    CHECK(pieces[0].offset_blocks == 60);
    CHECK(pieces[0].blocks == 4);
    CHECK(pieces[1].window == 0);
    CHECK(pieces[1].offset_blocks == 0);
    CHECK(pieces[1].blocks == 12);
}

TEST_CASE("a request that leaves the windows, or starts before them, is not covered")
{
    const std::vector<BlockRange> windows{{100, 64}, {180, 64}};
    std::vector<WindowPiece> pieces;
    CHECK_FALSE(cover_request(windows, {160, 8}, pieces)); // gap at 164..180
    CHECK_FALSE(cover_request(windows, {96, 8}, pieces));
    CHECK_FALSE(cover_request(windows, {240, 8}, pieces));
    CHECK(cover_request(windows, {180, 64}, pieces));
}

TEST_CASE("a null range is no window")
{
    const std::vector<BlockRange> windows{{0, 0}};
    std::vector<WindowPiece> pieces;
    CHECK_FALSE(cover_request(windows, {0, 1}, pieces));
}

TEST_CASE("ranges overlap only when they share a block")
{
    CHECK(BlockRange{10, 5}.overlaps({14, 1}));
    CHECK_FALSE(BlockRange{10, 5}.overlaps({15, 1}));
    CHECK_FALSE(BlockRange{10, 5}.overlaps({5, 5}));
    CHECK(BlockRange{10, 5}.overlaps({5, 6}));
}
