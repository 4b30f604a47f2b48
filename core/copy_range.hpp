// copy_range's arithmetic and its staged form, shared by every Disk's default and the
// pieces of an sg-to-sg copy that cannot go whole blocks at a time.
#pragma once

#include "sgfs/disk.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <sys/types.h>

namespace sgfs
{

// How many of `length` bytes a copy from `from` to `to` can move, in `out`: 0 when the
// source ends at or before `from` (a copy past the end is short, like a read); up to the
// destination's end, -ENOSPC when `to` is at or past it (like a write).
inline int copy_extent(std::uint64_t source_capacity, std::uint64_t destination_capacity,
                       std::uint64_t from, std::uint64_t to, std::uint64_t length,
                       std::uint64_t &out)
{
    out = clamp_length(from, length, source_capacity);
    if (out == 0)
        return 0;
    if (to >= destination_capacity)
        return -ENOSPC;
    out = std::min(out, destination_capacity - to);
    return 0;
}

// memmove on one disk: when the destination starts inside the source range, copying
// front to back would overwrite source bytes before they are read. Back to front, every
// write lands on bytes whose reads came earlier.
inline bool copy_goes_backwards(bool same_disk, std::uint64_t from, std::uint64_t to,
                                std::uint64_t length)
{
    return same_disk && to > from && to < from + length;
}

// Calls fn(offset, count) over [0, length) in pieces of at most `chunk` (> 0), the last
// piece first when `backwards`. Stops at and returns the first non-zero result.
template <typename Fn>
int for_each_copy_chunk(std::uint64_t length, std::uint64_t chunk, bool backwards, Fn &&fn)
{
    const std::uint64_t count = (length + chunk - 1) / chunk;
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t index = backwards ? count - 1 - i : i;
        const std::uint64_t offset = index * chunk;
        if (int rc = fn(offset, std::min(chunk, length - offset)); rc != 0)
            return rc;
    }
    return 0;
}

// Copies through `buffer` one piece at a time: read(data, bytes, offset) and
// write(data, bytes, offset) return IoResults. Each piece is read whole before any of it is
// written, so with `backwards` from copy_goes_backwards() it is memmove. A failure says its
// end and, front to back, the bytes copied before it.
template <typename Read, typename Write>
IoResult staged_copy(std::uint64_t from, std::uint64_t to, std::uint64_t length, bool backwards,
                     std::span<std::uint8_t> buffer, Read &&read, Write &&write)
{
    IoResult failed = IoResult::success(0);
    std::uint64_t done = 0;
    const auto whole = [](IoResult result, std::uint64_t bytes, const char *what) {
        // The extent was cut to both disks: a short count is a fault.
        if (result.ok() && result.bytes != bytes)
            return IoResult::failure(-EIO, std::string("short ") + what + " in a copy");
        return result;
    };
    for_each_copy_chunk(
        length, buffer.size(), backwards, [&](std::uint64_t offset, std::uint64_t bytes) {
            IoResult got = whole(read(buffer.data(), bytes, from + offset), bytes, "read");
            if (!got.ok()) {
                failed = std::move(got);
                failed.end = IoEnd::source;
                return failed.error;
            }
            IoResult put = whole(write(buffer.data(), bytes, to + offset), bytes, "write");
            if (!put.ok()) {
                failed = std::move(put);
                failed.end = IoEnd::destination;
                return failed.error;
            }
            done += bytes;
            return 0;
        });
    if (failed.ok())
        return IoResult::success(length);
    failed.bytes = backwards ? 0 : done;
    return failed;
}

} // namespace sgfs
