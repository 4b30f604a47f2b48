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

TEST_CASE("two interleaved sequential readers are two streams, both sequential")
{
    StreamTable streams;
    bool sequential = true;
    const std::size_t a = streams.match({0, 16}, 1, StreamTable::no_owner, sequential);
    CHECK_FALSE(sequential); // a first read continues nothing
    const std::size_t b = streams.match({1000, 128}, 2, StreamTable::no_owner, sequential);
    CHECK_FALSE(sequential);
    CHECK(a != b);
    for (std::uint64_t i = 1; i < 10; ++i) {
        CHECK(streams.match({i * 16, 16}, 1, StreamTable::no_owner, sequential) == a);
        CHECK(sequential);
        CHECK(streams.match({1000 + i * 128, 128}, 2, StreamTable::no_owner, sequential) == b);
        CHECK(sequential);
    }
}

TEST_CASE("a read inside a stream's window belongs to that stream")
{
    StreamTable streams;
    bool sequential = false;
    const std::size_t a = streams.match({0, 16}, 1, StreamTable::no_owner, sequential);
    streams.match({500, 8}, 1, StreamTable::no_owner, sequential);
    // Not at a's next block, but in one of a's windows (the caller found the owner).
    CHECK(streams.match({64, 16}, 1, a, sequential) == a);
    CHECK(sequential);
    CHECK(streams[a].next_lba == 80);
}

TEST_CASE("a read that continues no stream takes over the one read least recently")
{
    StreamTable streams(2);
    bool sequential = false;
    const std::size_t a = streams.match({0, 8}, 1, StreamTable::no_owner, sequential);
    const std::size_t b = streams.match({100, 8}, 1, StreamTable::no_owner, sequential);
    streams.match({8, 8}, 1, StreamTable::no_owner, sequential); // a again: b is the oldest
    streams[b].ahead_lba = 200;
    CHECK(streams.match({5000, 8}, 1, StreamTable::no_owner, sequential) == b);
    CHECK_FALSE(sequential);
    CHECK(streams[b].ahead_lba == 0); // nothing of the old stream is kept
    CHECK(streams[b].next_lba == 5008);
    CHECK(streams.match({16, 8}, 1, StreamTable::no_owner, sequential) == a);
    CHECK(sequential);
}

TEST_CASE("a stream nobody read for a while is quiet")
{
    StreamTable streams;
    bool sequential = false;
    const std::size_t a = streams.match({0, 8}, 1, StreamTable::no_owner, sequential);
    const std::size_t b = streams.match({100, 8}, 1, StreamTable::no_owner, sequential);
    for (std::uint64_t i = 1; i <= 10; ++i)
        streams.match({100 + i * 8, 8}, 1, StreamTable::no_owner, sequential);
    CHECK(streams.quiet(a, 5));
    CHECK_FALSE(streams.quiet(a, 20));
    CHECK_FALSE(streams.quiet(b, 0));
}

TEST_CASE("a read at another reader's next block is not that reader's stream")
{
    StreamTable streams;
    bool sequential = true;
    const std::size_t a = streams.match({0, 16}, 1, StreamTable::no_owner, sequential);
    streams.match({16, 16}, 1, StreamTable::no_owner, sequential);
    // Reader 2 opened later and reads on where reader 1 stopped: what reader 1 read ahead
    // may predate reader 2's open.
    const std::size_t b = streams.match({32, 16}, 2, StreamTable::no_owner, sequential);
    CHECK(b != a);
    CHECK_FALSE(sequential);
    CHECK(streams[b].reader == 2);
    CHECK(streams[a].reader == 1);
    CHECK(streams[a].next_lba == 32); // reader 1's stream is untouched
    CHECK(streams.match({48, 16}, 2, StreamTable::no_owner, sequential) == b);
    CHECK(sequential);
}

TEST_CASE("another reader's window does not make a read that reader's")
{
    StreamTable streams;
    bool sequential = false;
    const std::size_t a = streams.match({0, 16}, 1, StreamTable::no_owner, sequential);
    const std::size_t b = streams.match({64, 16}, 2, a, sequential);
    CHECK(b != a);
    CHECK_FALSE(sequential);
    CHECK(streams[a].next_lba == 16);
}

TEST_CASE("one reader may have two streams")
{
    StreamTable streams;
    bool sequential = false;
    const std::size_t a = streams.match({0, 8}, 7, StreamTable::no_owner, sequential);
    const std::size_t b = streams.match({900, 8}, 7, StreamTable::no_owner, sequential);
    CHECK(a != b);
    CHECK(streams.match({8, 8}, 7, StreamTable::no_owner, sequential) == a);
    CHECK(sequential);
    CHECK(streams.match({908, 8}, 7, StreamTable::no_owner, sequential) == b);
    CHECK(sequential);
}

TEST_CASE("a reader that ended leaves no stream, and its slots are taken over first")
{
    StreamTable streams(3);
    bool sequential = false;
    const std::size_t a = streams.match({0, 8}, 1, StreamTable::no_owner, sequential);
    const std::size_t b = streams.match({100, 8}, 2, StreamTable::no_owner, sequential);
    const std::size_t c = streams.match({200, 8}, 3, StreamTable::no_owner, sequential);
    streams.match({8, 8}, 1, StreamTable::no_owner, sequential);
    streams.forget(2);
    CHECK(streams[b].reader == no_reader);
    CHECK(streams[b].next_lba == UINT64_MAX);
    // Reader 2's next block no longer continues anything, even for reader 2.
    CHECK(streams.match({108, 8}, 2, StreamTable::no_owner, sequential) == b);
    CHECK_FALSE(sequential);
    CHECK(streams[a].reader == 1);
    CHECK(streams[c].reader == 3);
    CHECK(streams.match({16, 8}, 1, StreamTable::no_owner, sequential) == a);
    CHECK(sequential);
}

TEST_CASE("forgetting no reader changes nothing")
{
    StreamTable streams(2);
    bool sequential = false;
    const std::size_t a = streams.match({0, 8}, 1, StreamTable::no_owner, sequential);
    streams.forget(no_reader);
    CHECK(streams[a].reader == 1);
    CHECK(streams.match({8, 8}, 1, StreamTable::no_owner, sequential) == a);
    CHECK(sequential);
}

TEST_CASE("a table seen read-only shows the same streams")
{
    StreamTable table(2);
    bool sequential = false;
    const std::size_t stream = table.match({100, 8}, 7, StreamTable::no_owner, sequential);
    const StreamTable &view = table;
    CHECK(view.size() == 2);
    CHECK(view[stream].reader == 7);
    CHECK(view[stream].next_lba == 108);
    CHECK(&view[stream] == &table[stream]);
}
