// A copy offloaded to the target's copy manager as EXTENDED COPY(LID1) commands: a pure plan
// from the copy manager's operating parameters (RECEIVE COPY RESULTS), so that it is tested
// without a device. The engine runs it (engine_offload.cpp).
//
// Overlap on one LU is never offloaded: SPC-4 promises nothing about the order in which a
// copy manager reads and writes the blocks of a segment (LIO reads and writes each segment
// front to back in chunks of its own size), so only segments no longer than the distance
// between source and destination, one command at a time, back to front, would keep
// memmove's result, and a short distance would make that thousands of tiny commands. Such
// copies (a ranged copy within one file) go the pipelined way, which is memmove.
#pragma once

#include "sgfs/cdb.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace sgfs
{

// What one command may carry, from the copy manager's parameters and the LUs' block size.
struct OffloadLimits {
    std::uint32_t block_size = 512;
    std::uint32_t granule_blocks = 1;     // every segment's blocks are a multiple of it
    std::uint32_t max_segment_blocks = 1; // >= granule_blocks, a multiple of it, <= 0xffff
    std::size_t max_segments = 1;         // segment descriptors per command (>= 1)
    unsigned commands_in_flight = 1;      // the copy manager's TOTAL CONCURRENT COPIES (>= 1)
    bool no_list_id = false;              // SNLID: LIST ID USAGE 11b is accepted
};

// The CSCD descriptors every command names: the source LU (index 0), the destination (1).
inline constexpr std::size_t offload_cscd_count = 2;
// At most this many segments per command, whatever the copy manager allows: its parameter
// list stays small.
inline constexpr std::size_t offload_max_segments_per_command = 64;

// The limits for copies between two LUs of `block_size` bytes per block, or none when the
// copy manager cannot do them: it must implement block-to-block segments (0x02) and
// identification CSCD descriptors (0xE4), take two CSCD descriptors and one segment, and
// let a segment hold at least one granule. A MAXIMUM SEGMENT LENGTH or MAXIMUM DESCRIPTOR
// LIST LENGTH of 0 is taken as no limit.
std::optional<OffloadLimits> offload_limits(const CopyOperatingParameters &parameters,
                                            std::uint32_t block_size);

// Whether a copy of `blocks` from `source_lba` to `destination_lba` may be offloaded: not
// when both are on one LU and the ranges overlap (see the top of this file).
bool offload_allowed(bool same_lu, std::uint64_t source_lba, std::uint64_t destination_lba,
                     std::uint64_t blocks);

struct OffloadCommand {
    std::vector<CopySegment> segments; // source CSCD 0, destination CSCD 1
    std::uint64_t blocks = 0;          // the segments' total
};

struct OffloadPlan {
    std::vector<OffloadCommand> commands; // in order: together front to back
    std::uint64_t blocks = 0; // the blocks planned, from the start of the range; the rest
                              // (less than a granule) is the caller's
};

// [source_lba, source_lba + blocks) to destination_lba as commands within `limits`: each
// segment as long as it may be, each command as many segments as it may hold.
OffloadPlan plan_offload(std::uint64_t source_lba, std::uint64_t destination_lba,
                         std::uint64_t blocks, const OffloadLimits &limits);

// A timeout for one EXTENDED COPY of `bytes`: the configured one, or longer when the copy
// manager reads and writes all those bytes at a slow disk's pace (1 MiB/s).
unsigned offload_command_timeout_ms(std::uint64_t bytes, unsigned configured_ms);

} // namespace sgfs
