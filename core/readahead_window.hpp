// The arithmetic of read-ahead windows, apart from the fds and locks that carry them out:
// how large the next window is, and which windows (and which parts of them) answer a read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sgfs
{

struct BlockRange {
    std::uint64_t lba = 0;
    std::uint64_t blocks = 0;
    std::uint64_t end() const { return lba + blocks; }
    bool contains(std::uint64_t block) const { return lba <= block && block < end(); }
    bool overlaps(const BlockRange &other) const { return lba < other.end() && other.lba < end(); }
};

// Window sizes grow like the kernel's readahead: a short sequential run costs little extra,
// a long one soon reads the largest command the device takes.
// First window of a stream: a few requests' worth, at most `max_blocks`.
std::uint64_t first_window_blocks(std::uint64_t request_blocks, std::uint64_t max_blocks);
// Each further window of the same stream: twice the previous one, at most `max_blocks`.
std::uint64_t next_window_blocks(std::uint64_t previous_blocks, std::uint64_t max_blocks);

// Part of one window that answers part of a read.
struct WindowPiece {
    std::size_t window = 0;          // index into the windows given
    std::uint64_t offset_blocks = 0; // from the window's start
    std::uint64_t blocks = 0;
};

// The pieces of `windows` (a null range, blocks == 0, is no window) that together hold
// [request.lba, request.end()), in order. False when some block of the request is in none:
// then `pieces` is unspecified.
bool cover_request(std::span<const BlockRange> windows, const BlockRange &request,
                   std::vector<WindowPiece> &pieces);

} // namespace sgfs
