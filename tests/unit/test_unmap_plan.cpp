// The hole punch plan: which blocks are deallocated and which zeroed, and how UNMAP
// commands are split, for devices described by their provisioning figures as SBC-3 defines
// them (no device needed). The oracles are the SBC rules themselves, checked block by block:
// granule boundaries, the per-command limits, coverage.
#include "unmap_plan.hpp"

#include <cstdint>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace sgfs;

namespace
{

// scsi_debug lbpu=1 lbpws=1 with a granularity and alignment: B0 and B2 as it reports them.
Provisioning thin(bool lbprz, std::uint32_t granularity = 8, std::uint32_t alignment = 0)
{
    Provisioning p;
    p.lbpme = true;
    p.lbpu = true;
    p.lbpws = true;
    p.lbprz = lbprz;
    p.unmap_granularity = granularity;
    p.unmap_granularity_alignment = alignment;
    p.max_unmap_blocks = 0xffffffff;
    p.max_unmap_descriptors = 256;
    p.max_write_same_blocks = 0xffff;
    return p;
}

// "Z lba+blocks" (zeroed), "D lba+blocks" (deallocated).
std::string describe(const std::vector<PunchStep> &steps)
{
    std::string text;
    for (const PunchStep &step : steps) {
        if (!text.empty())
            text += ' ';
        text += step.action == PunchAction::zero ? "Z" : "D";
        text += std::to_string(step.lba) + "+" + std::to_string(step.blocks);
    }
    return text;
}

bool on_granule(std::uint64_t lba, const PunchMeans &means)
{
    return lba % means.granularity == means.alignment % means.granularity;
}

// The commands cover [lba, lba + blocks) in order, every descriptor on granule boundaries
// and within 32 bits, every command within the device's limits.
void check_unmap(const std::vector<std::vector<UnmapRange>> &commands, std::uint64_t lba,
                 std::uint64_t blocks, const PunchMeans &means)
{
    std::uint64_t at = lba;
    for (const std::vector<UnmapRange> &command : commands) {
        REQUIRE(!command.empty());
        CHECK(command.size() <= means.max_unmap_descriptors);
        CHECK(command.size() <= 4095);
        std::uint64_t total = 0;
        for (const UnmapRange &range : command) {
            CHECK(range.lba == at);
            CHECK(range.blocks > 0);
            CHECK(on_granule(range.lba, means));
            CHECK(on_granule(range.lba + range.blocks, means));
            total += range.blocks;
            at += range.blocks;
        }
        CHECK(total <= means.max_unmap_blocks);
    }
    CHECK(at == lba + blocks);
}

} // namespace

TEST_CASE("means: UNMAP with LBPME and LBPU, else WRITE SAME with UNMAP, else none")
{
    CHECK(punch_means(thin(true)).deallocation == Deallocation::unmap);
    Provisioning ws_only = thin(false);
    ws_only.lbpu = false;
    CHECK(punch_means(ws_only).deallocation == Deallocation::write_same_unmap);
    Provisioning thick = thin(true);
    thick.lbpme = false;
    CHECK(punch_means(thick).deallocation == Deallocation::none);
    ws_only.lbpws = false;
    CHECK(punch_means(ws_only).deallocation == Deallocation::none);
    CHECK(punch_means(Provisioning{}).deallocation == Deallocation::none);
    CHECK(punch_means(thin(true)).unmapped_reads_zero);
    CHECK_FALSE(punch_means(thin(false)).unmapped_reads_zero);
}

TEST_CASE("means: the UNMAP limits as SBC-3 reports them")
{
    Provisioning p = thin(true, 0, 5);
    const PunchMeans unlimited = punch_means(p);
    CHECK(unlimited.granularity == 1); // not reported
    CHECK(unlimited.alignment == 0);
    CHECK(unlimited.max_unmap_blocks > 0xffffffffULL); // 0xffffffff: no limit
    CHECK(unlimited.max_unmap_descriptors == 256);
    p.max_unmap_blocks = 0; // not reported: what Linux sends at most
    p.max_unmap_descriptors = 0;
    CHECK(punch_means(p).max_unmap_blocks == unreported_unmap_blocks);
    CHECK(punch_means(p).max_unmap_descriptors == 1);
    p.max_unmap_blocks = 1000;
    p.max_unmap_descriptors = 100000; // more than a parameter list holds
    CHECK(punch_means(p).max_unmap_blocks == 1000);
    CHECK(punch_means(p).max_unmap_descriptors == 4095);
    p.unmap_granularity = 8;
    p.unmap_granularity_alignment = 11;
    CHECK(punch_means(p).alignment == 3);
}

TEST_CASE("punch plan: whole granules deallocated, the edges zeroed")
{
    const Provisioning p = thin(false);
    const ZeroMeans zero = zero_means(p, 512);
    const PunchMeans punch = punch_means(p);
    CHECK(describe(plan_punch(4, 64, zero, punch)) == "Z4+4 D8+56 Z64+4");
    CHECK(describe(plan_punch(8, 64, zero, punch)) == "D8+64");
    CHECK(describe(plan_punch(9, 6, zero, punch)) == "Z9+6");   // inside one granule
    CHECK(describe(plan_punch(9, 14, zero, punch)) == "Z9+14"); // two partial granules
    CHECK(describe(plan_punch(0, 0, zero, punch)).empty());
}

TEST_CASE("punch plan: granule alignment moves the boundaries")
{
    const Provisioning p = thin(false, 8, 3);
    const PunchMeans punch = punch_means(p);
    const ZeroMeans zero = zero_means(p, 512);
    CHECK(describe(plan_punch(0, 40, zero, punch)) == "Z0+3 D3+32 Z35+5");
    CHECK(describe(plan_punch(0, 10, zero, punch)) == "Z0+10"); // [3, 11) is not whole
    CHECK(describe(plan_punch(0, 11, zero, punch)) == "Z0+3 D3+8");
}

TEST_CASE("punch plan: WRITE SAME with UNMAP reading zero is the zero plan's, all of it")
{
    // LBPME + LBPWS + LBPRZ: zero_blocks unmaps whole granules and guarantees zeros.
    const Provisioning p = thin(true);
    CHECK(describe(plan_punch(4, 64, zero_means(p, 512), punch_means(p))) == "Z4+64");
}

TEST_CASE("punch plan: nothing to deallocate with: all zeroed")
{
    Provisioning p = thin(false);
    p.lbpme = false;
    CHECK(describe(plan_punch(4, 64, zero_means(p, 512), punch_means(p))) == "Z4+64");
}

TEST_CASE("unmap plan: one command where the limits allow")
{
    const PunchMeans punch = punch_means(thin(true));
    const auto commands = plan_unmap(8, 56, punch);
    REQUIRE(commands.size() == 1);
    REQUIRE(commands[0].size() == 1);
    CHECK(commands[0][0].lba == 8);
    CHECK(commands[0][0].blocks == 56);
}

TEST_CASE("unmap plan: MAXIMUM UNMAP LBA COUNT cut to whole granules, per command")
{
    Provisioning p = thin(true, 8, 3);
    p.max_unmap_blocks = 20; // 16 in whole granules
    const PunchMeans punch = punch_means(p);
    const auto commands = plan_unmap(3, 80, punch);
    check_unmap(commands, 3, 80, punch);
    CHECK(commands.size() == 5);
    for (const auto &command : commands)
        CHECK(command[0].blocks == 16);
}

TEST_CASE("unmap plan: descriptors within 32 bits, as many per command as the device takes")
{
    Provisioning p = thin(true, 4096);
    p.max_unmap_descriptors = 3;
    const PunchMeans punch = punch_means(p);                      // no LBA count limit
    const std::uint64_t blocks = std::uint64_t{4096} * 5'000'000; // 20 G blocks
    const auto commands = plan_unmap(0, blocks, punch);
    check_unmap(commands, 0, blocks, punch);
    // 0xffffffff rounded down to granules is 1048575 granules per descriptor.
    const std::uint64_t per_descriptor = 0xffffffffULL / 4096 * 4096;
    CHECK(commands.front().size() == 3);
    CHECK(commands.front()[0].blocks == per_descriptor);
    const std::uint64_t descriptors = (blocks + per_descriptor - 1) / per_descriptor;
    CHECK(commands.size() == (descriptors + 2) / 3);
}

TEST_CASE("unmap plan: the LBA count limits descriptors within a command too")
{
    Provisioning p = thin(true, 1);
    p.max_unmap_blocks = 0xfffffffe; // a limit, just under "none"
    p.max_unmap_descriptors = 8;
    const PunchMeans punch = punch_means(p);
    const std::uint64_t blocks = 0x200000000ULL;
    const auto commands = plan_unmap(7, blocks, punch);
    check_unmap(commands, 7, blocks, punch);
    CHECK(commands.size() == 3);
}

TEST_CASE("unmap plan: a granule larger than a command may unmap: no command")
{
    Provisioning p = thin(true, 64);
    p.max_unmap_blocks = 32;
    CHECK(plan_unmap(0, 128, punch_means(p)).empty());
}

TEST_CASE("unmap plan: brute force over small devices keeps every rule")
{
    for (std::uint32_t g : {1U, 2U, 3U, 8U})
        for (std::uint32_t a : {0U, 1U, 5U})
            for (std::uint32_t max_blocks : {1U, 7U, 16U, 0xffffffffU})
                for (std::uint32_t max_descriptors : {1U, 2U, 5U}) {
                    Provisioning p = thin(false, g, a);
                    p.max_unmap_blocks = max_blocks;
                    p.max_unmap_descriptors = max_descriptors;
                    const PunchMeans punch = punch_means(p);
                    const ZeroMeans zero = zero_means(p, 512);
                    for (std::uint64_t lba = 0; lba < 12; ++lba)
                        for (std::uint64_t blocks = 1; blocks < 40; blocks += 3) {
                            CAPTURE(g);
                            CAPTURE(a);
                            CAPTURE(max_blocks);
                            CAPTURE(max_descriptors);
                            CAPTURE(lba);
                            CAPTURE(blocks);
                            std::uint64_t at = lba;
                            for (const PunchStep &step : plan_punch(lba, blocks, zero, punch)) {
                                CHECK(step.lba == at);
                                at += step.blocks;
                                if (step.action != PunchAction::deallocate)
                                    continue;
                                CHECK(on_granule(step.lba, punch));
                                CHECK(on_granule(step.lba + step.blocks, punch));
                                const auto commands = plan_unmap(step.lba, step.blocks, punch);
                                if (max_blocks >= g)
                                    check_unmap(commands, step.lba, step.blocks, punch);
                                else
                                    CHECK(commands.empty());
                            }
                            CHECK(at == lba + blocks);
                        }
                }
}
