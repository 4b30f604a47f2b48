// The arithmetic of read-ahead windows, apart from the fds and locks that carry them out:
// how large the next window is, and which windows (and which parts of them) answer a read.
#pragma once

#include "sgfs/disk.hpp"

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

// A sequential reader of a disk, known by its open file and the block it reads next.
struct ReadStream {
    ReaderId reader = no_reader;         // the open file it reads ahead for
    std::uint64_t next_lba = UINT64_MAX; // where its reader reads next; none yet
    std::uint64_t ahead_lba = 0;         // where its next window starts
    std::uint64_t next_window_blocks = 1;
    std::uint64_t last_used = 0; // the table's clock when it last read
    bool sequential = false;     // its last read continued it
};

// Up to `capacity` sequential readers of one disk told apart, like the kernel's per-file
// readahead state: a read belongs to the stream of its own reader (its open file) whose next
// block it starts at (or whose window holds it, `window_owner`), never to another reader's;
// a read that continues none takes over the stream read least recently, and is not
// sequential. One open file may have several streams (readers at two places of one fd).
class StreamTable
{
  public:
    static constexpr std::size_t default_capacity = 4;
    explicit StreamTable(std::size_t capacity = default_capacity) : streams_(capacity) {}

    // The stream `request` of `reader` belongs to, which from now on expects request.end();
    // sets `sequential` when the request continued it, and false when it was taken over.
    // `window_owner` must be one of `reader`'s streams (or no_owner).
    std::size_t match(const BlockRange &request, ReaderId reader, std::size_t window_owner,
                      bool &sequential);
    // `reader` has ended: its streams are reset, the first to be taken over.
    void forget(ReaderId reader);
    // Passed to match() when no window holds the request.
    static constexpr std::size_t no_owner = SIZE_MAX;
    // Streams not read in the last `within` reads (of any stream): their readers stopped.
    bool quiet(std::size_t stream, std::uint64_t within) const
    {
        return clock_ - streams_[stream].last_used > within;
    }

    ReadStream &operator[](std::size_t stream) { return streams_[stream]; }
    const ReadStream &operator[](std::size_t stream) const { return streams_[stream]; }
    std::size_t size() const { return streams_.size(); }

  private:
    std::vector<ReadStream> streams_;
    std::uint64_t clock_ = 0;
};

} // namespace sgfs
