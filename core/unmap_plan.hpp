// How Disk::punch_hole hands a range back to a thin device: a pure plan from the device's
// provisioning and limits, tested without a device (the Engine runs it: engine_punch.cpp).
//
// A punched range must read zero afterwards (fallocate(2)), and as much of it as can be
// should be unmapped. WRITE SAME with UNMAP where unmapped blocks read zero (LBPRZ) does
// both at once: the zero plan (zero_plan.hpp) is the whole punch then. Elsewhere a thin
// device's whole unmap granules are *deallocated* (UNMAP, or WRITE SAME with UNMAP when
// that is all it has) and then checked, since neither promises zeros there: UNMAP is
// advisory (the device may ignore all or part of it and still return GOOD), and with
// LBPRZ=0 an unmapped block may read anything. The check asks GET LBA STATUS what is still
// mapped (LBPRZ=1) or reads the range back (LBPRZ=0), and zeroes what does not read zero.
// The parts outside whole granules, and devices without deallocation, are simply zeroed.
#pragma once

#include "sgfs/cdb.hpp"
#include "sgfs/disk.hpp"
#include "zero_plan.hpp"

#include <cstdint>
#include <vector>

namespace sgfs
{

// How whole granules are deallocated.
enum class Deallocation { none, unmap, write_same_unmap };

struct PunchMeans {
    Deallocation deallocation = Deallocation::none;
    // LBPRZ: an unmapped block reads zero, so GET LBA STATUS tells what is left to zero;
    // else the deallocated range is read back.
    bool unmapped_reads_zero = false;
    std::uint32_t granularity = 1; // unmap granule, blocks (>= 1)
    std::uint32_t alignment = 0;   // a granule starts at every LBA == alignment (mod granularity)
    std::uint64_t max_unmap_blocks = 1;      // per UNMAP command, all its descriptors (>= 1)
    std::uint32_t max_unmap_descriptors = 1; // per UNMAP command (>= 1)
};

// What Linux sends in one UNMAP at most (SD_MAX_WS16_BLOCKS) where the device reports no
// MAXIMUM UNMAP LBA COUNT (0).
inline constexpr std::uint64_t unreported_unmap_blocks = 0x7fffff;

// The means the probed figures allow, before any refusal: UNMAP with LBPME and LBPU, else
// WRITE SAME(16) with UNMAP with LBPME and LBPWS, else none. MAXIMUM UNMAP LBA COUNT
// 0xffffffff is no limit; the descriptor count is capped to what one parameter list holds.
PunchMeans punch_means(const Provisioning &provisioning);

enum class PunchAction {
    zero,       // by the zero plan (zero_blocks): reads zero when done
    deallocate, // whole granules by `deallocation`, then checked and zeroed where need be
};

struct PunchStep {
    PunchAction action = PunchAction::zero;
    std::uint64_t lba = 0;
    std::uint64_t blocks = 0;
};

// Splits [lba, lba + blocks) into steps in LBA order: all of it one zero step where WRITE
// SAME with UNMAP zeroes (zero.write_same_unmap) or nothing deallocates; else the whole
// granules one deallocate step, the parts before and after them zero steps.
std::vector<PunchStep> plan_punch(std::uint64_t lba, std::uint64_t blocks, const ZeroMeans &zero,
                                  const PunchMeans &punch);

// UNMAP commands (each a parameter list's descriptors) that together cover [lba, lba +
// blocks), whole granules: each command within max_unmap_blocks and max_unmap_descriptors,
// each descriptor at most 0xffffffff blocks and starting and ending on granule boundaries.
// Empty when a granule is larger than a command may unmap.
std::vector<std::vector<UnmapRange>> plan_unmap(std::uint64_t lba, std::uint64_t blocks,
                                                const PunchMeans &punch);

} // namespace sgfs
