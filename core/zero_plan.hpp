// How to make a block range read as zeros with a device's own means: a pure plan from the
// device's provisioning and limits, so that it is tested without a device and shared by
// every caller that zeroes (truncate, fallocate's zeroing, and the zeroing parts of hole
// punching: unmap_plan.hpp), with the granule arithmetic both plans use.
//
// Plain UNMAP is never a zeroing means. LBPRZ says only what an *unmapped* block reads, and
// UNMAP is advisory: the device server may ignore all or part of it and still return GOOD,
// leaving the old data (Linux dropped discard_zeroes_data for UNMAP for this reason). Only
// WRITE SAME with the UNMAP bit guarantees zeros: the device either unmaps the blocks (which
// then read zero, LBPRZ) or writes the zero block. UNMAP (sg_ll_unmap) is used only by hole
// punching, which then checks what the device really did (unmap_plan.hpp).
#pragma once

#include "sgfs/disk.hpp"
#include "sgfs/stats.hpp"

#include <cstdint>
#include <vector>

namespace sgfs
{

// What a device offers for zeroing, with its limits turned into per-command caps.
struct ZeroMeans {
    bool write_same = true;        // WRITE SAME(16) of a zero block
    bool write_same_unmap = false; // ... with the UNMAP bit, unmapped blocks reading zero
    std::uint32_t granularity = 1; // unmap granule, blocks (>= 1)
    std::uint32_t alignment = 0;   // a granule starts at every LBA == alignment (mod granularity)
    std::uint64_t max_write_same_blocks = 1; // per WRITE SAME command (>= 1)
};

// The per-command cap where the device reports no limit (or a larger one): a WRITE SAME of a
// thick disk writes every block, and its timeout (zero_command_timeout_ms) must still fit.
inline constexpr std::uint64_t write_same_cap_bytes = std::uint64_t{64} << 20;

// The means the probed figures allow: the UNMAP bit of WRITE SAME only with LBPME, LBPWS
// and LBPRZ. WRITE SAME itself is assumed until the device refuses it.
ZeroMeans zero_means(const Provisioning &provisioning, std::uint32_t block_size);

// A timeout for a zeroing command over `bytes`: the configured one, or longer when the
// device may have to write all those bytes at a slow disk's pace (1 MiB/s).
unsigned zero_command_timeout_ms(std::uint64_t bytes, unsigned configured_ms);

// The whole unmap granules inside [lba, lba + blocks): [first, last), granules of
// `granularity` blocks (0 counts as 1) starting at every LBA == alignment (mod granularity).
// Empty (first == last == lba + blocks) when no whole granule fits.
struct GranuleSpan {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    bool empty() const { return first >= last; }
};
GranuleSpan whole_granules(std::uint64_t lba, std::uint64_t blocks, std::uint32_t granularity,
                           std::uint32_t alignment);

struct ZeroStep {
    ZeroKind kind = ZeroKind::host_write;
    std::uint64_t lba = 0; // the blocks this step zeroes
    std::uint64_t blocks = 0;
};

// Splits [lba, lba + blocks) into steps that together zero it, in LBA order: whole unmap
// granules by WRITE SAME with UNMAP, the parts outside whole granules by WRITE SAME without
// UNMAP (a device may leave a partial granule mapped and unchanged), and all of it by WRITE
// SAME, or by one host_write step (the caller splits it), where the means are missing.
// Every command step is within the limits of `means`.
std::vector<ZeroStep> plan_zeroing(std::uint64_t lba, std::uint64_t blocks, const ZeroMeans &means);

} // namespace sgfs
