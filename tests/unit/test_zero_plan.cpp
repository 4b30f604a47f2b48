// The zeroing plan: which command zeroes which blocks, for devices described by their
// provisioning figures as SBC-3 defines them (no device needed).

#include "zero_plan.hpp"

#include <algorithm>
#include <cstdint>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace sgfs;

namespace
{

// "W lba+blocks", "Wu lba+blocks" (UNMAP bit), "H lba+blocks".
std::string describe(const std::vector<ZeroStep> &steps)
{
    std::string text;
    for (const ZeroStep &step : steps) {
        if (!text.empty())
            text += ' ';
        switch (step.kind) {
        case ZeroKind::write_same:
            text += "W";
            break;
        case ZeroKind::write_same_unmap:
            text += "Wu";
            break;
        case ZeroKind::host_write:
            text += "H";
            break;
        }
        text += std::to_string(step.lba) + "+" + std::to_string(step.blocks);
    }
    return text;
}

// Every step's blocks, in order, are exactly [lba, lba + blocks).
void check_covers(const std::vector<ZeroStep> &steps, std::uint64_t lba, std::uint64_t blocks)
{
    std::uint64_t at = lba;
    for (const ZeroStep &step : steps) {
        CHECK(step.lba == at);
        CHECK(step.blocks > 0);
        at += step.blocks;
    }
    CHECK(at == lba + blocks);
}

// scsi_debug lbpu=1 lbpws=1 lbprz=1 unmap_granularity=8: B0 and B2 as it reports them.
Provisioning thin(bool lbprz = true)
{
    Provisioning p;
    p.lbpme = true;
    p.lbpu = true;
    p.lbpws = true;
    p.lbprz = lbprz;
    p.unmap_granularity = 8;
    p.max_unmap_blocks = 0xffffffff;
    p.max_unmap_descriptors = 256;
    p.max_write_same_blocks = 0xffff;
    return p;
}

} // namespace

TEST_CASE("thick disk: WRITE SAME within its maximum length, no UNMAP bit")
{
    Provisioning thick;
    thick.max_write_same_blocks = 0xffff;
    const ZeroMeans means = zero_means(thick, 512);
    CHECK_FALSE(means.write_same_unmap);
    const auto steps = plan_zeroing(3, 0x20000, means);
    CHECK(describe(steps) == "W3+65535 W65538+65535 W131073+2");
    check_covers(steps, 3, 0x20000);
}

TEST_CASE("no MAXIMUM WRITE SAME LENGTH: commands are capped so that the timeout fits")
{
    const ZeroMeans means = zero_means(Provisioning{}, 512);
    CHECK(means.max_write_same_blocks == write_same_cap_bytes / 512);
    const std::uint64_t blocks = 3 * write_same_cap_bytes / 512 + 1;
    const auto steps = plan_zeroing(0, blocks, means);
    REQUIRE(steps.size() == 4);
    CHECK(steps[0].blocks == write_same_cap_bytes / 512);
    CHECK(steps[3].blocks == 1);
    check_covers(steps, 0, blocks);
    // With 4 KiB blocks the cap is the same number of bytes.
    CHECK(zero_means(Provisioning{}, 4096).max_write_same_blocks == write_same_cap_bytes / 4096);
    // A larger reported maximum is capped too; a smaller one is kept.
    Provisioning big;
    big.max_write_same_blocks = std::uint64_t{1} << 40;
    CHECK(zero_means(big, 512).max_write_same_blocks == write_same_cap_bytes / 512);
}

TEST_CASE("thin disk, unmapped blocks read zero: whole granules by WRITE SAME with UNMAP, the "
          "rest without; never plain UNMAP")
{
    // LBPU=1 too, but UNMAP is advisory: a device may ignore it and return GOOD, so it is
    // no zeroing means (ZeroKind has no such step at all).
    const ZeroMeans means = zero_means(thin(), 512);
    CHECK(means.write_same);
    CHECK(means.write_same_unmap);
    SUBCASE("unaligned on both sides")
    {
        const auto steps = plan_zeroing(5, 100, means); // [5, 105): granules 8..104
        CHECK(describe(steps) == "W5+3 Wu8+96 W104+1");
        check_covers(steps, 5, 100);
    }
    SUBCASE("aligned")
    {
        CHECK(describe(plan_zeroing(16, 64, means)) == "Wu16+64");
    }
    SUBCASE("inside one granule: no UNMAP bit at all")
    {
        CHECK(describe(plan_zeroing(9, 6, means)) == "W9+6");
        CHECK(describe(plan_zeroing(9, 7, means)) == "W9+7");
    }
    SUBCASE("exactly one granule")
    {
        CHECK(describe(plan_zeroing(8, 8, means)) == "Wu8+8");
    }
}

TEST_CASE("granule alignment moves the granule boundaries")
{
    Provisioning p = thin();
    p.unmap_granularity = 8;
    p.unmap_granularity_alignment = 3; // granules start at 3, 11, 19, ...
    const ZeroMeans means = zero_means(p, 512);
    CHECK(describe(plan_zeroing(0, 30, means)) == "W0+3 Wu3+24 W27+3");
    CHECK(describe(plan_zeroing(3, 8, means)) == "Wu3+8");
    CHECK(describe(plan_zeroing(0, 10, means)) == "W0+10");
    // Ending before the first boundary: no whole granule at all.
    CHECK(describe(plan_zeroing(0, 2, means)) == "W0+2");
    // An alignment past the granularity counts modulo it.
    p.unmap_granularity_alignment = 11;
    CHECK(describe(plan_zeroing(0, 30, zero_means(p, 512))) == "W0+3 Wu3+24 W27+3");
}

TEST_CASE("WRITE SAME with UNMAP: its maximum length cut to whole granules")
{
    ZeroMeans means = zero_means(thin(), 512);
    means.max_write_same_blocks = 20; // not a multiple of the granule: 16 per command
    const auto steps = plan_zeroing(0, 40, means);
    CHECK(describe(steps) == "Wu0+16 Wu16+16 Wu32+8");
    check_covers(steps, 0, 40);
    // Below one granule, the UNMAP bit cannot be used: plain WRITE SAME takes the granules.
    means.max_write_same_blocks = 4;
    CHECK(describe(plan_zeroing(0, 16, means)) == "W0+4 W4+4 W8+4 W12+4");
}

TEST_CASE("WRITE SAME commands: each within 32 bits")
{
    ZeroMeans means = zero_means(thin(), 512);
    means.granularity = 1;
    means.max_write_same_blocks = std::uint64_t{1} << 40; // as if no cap, to reach 32-bit counts
    const std::uint64_t blocks = 2 * std::uint64_t{0xffffffff} + 1;
    const auto steps = plan_zeroing(0, blocks, means);
    CHECK(describe(steps) == "Wu0+4294967295 Wu4294967295+4294967295 Wu8589934590+1");
    check_covers(steps, 0, blocks);
    means.write_same_unmap = false;
    CHECK(describe(plan_zeroing(0, blocks, means)) ==
          "W0+4294967295 W4294967295+4294967295 W8589934590+1");
}

TEST_CASE("LBPRZ=0: unmapped blocks may read old data, so no UNMAP bit")
{
    const ZeroMeans means = zero_means(thin(false), 512);
    CHECK_FALSE(means.write_same_unmap);
    CHECK(describe(plan_zeroing(5, 100, means)) == "W5+100");
}

TEST_CASE("the UNMAP bit needs LBPME, LBPWS and LBPRZ; LBPU and the UNMAP limits do not matter")
{
    Provisioning p = thin();
    p.lbpme = false;
    CHECK_FALSE(zero_means(p, 512).write_same_unmap);
    p = thin();
    p.lbpws = false; // UNMAP alone (LBPU) is no zeroing means
    CHECK_FALSE(zero_means(p, 512).write_same_unmap);
    CHECK(describe(plan_zeroing(5, 100, zero_means(p, 512))) == "W5+100");
    p = thin();
    p.lbpu = false;
    p.max_unmap_blocks = 0;
    p.max_unmap_descriptors = 0;
    CHECK(zero_means(p, 512).write_same_unmap);
    CHECK(describe(plan_zeroing(5, 100, zero_means(p, 512))) == "W5+3 Wu8+96 W104+1");
}

TEST_CASE("no WRITE SAME (refused): host writes everywhere")
{
    ZeroMeans means = zero_means(thin(), 512);
    means.write_same = false;
    CHECK(describe(plan_zeroing(5, 100, means)) == "H5+100");
    means.write_same = true;
    means.write_same_unmap = false; // only the UNMAP bit refused: plain WRITE SAME
    CHECK(describe(plan_zeroing(5, 100, means)) == "W5+100");
    ZeroMeans thick = zero_means(Provisioning{}, 512);
    thick.write_same = false;
    CHECK(describe(plan_zeroing(0, std::uint64_t{1} << 30, thick)) == "H0+1073741824");
}

TEST_CASE("re-planning the rest of a range from a refused step keeps the granule boundaries")
{
    // zero_blocks re-plans [refused step's lba, end) with the means left: granules stay
    // where the device puts them, whatever LBA the plan starts at.
    ZeroMeans means = zero_means(thin(), 512);
    means.max_write_same_blocks = 16;
    CHECK(describe(plan_zeroing(5, 100, means)) == "W5+3 Wu8+16 Wu24+16 Wu40+16 Wu56+16 Wu72+16 "
                                                   "Wu88+16 W104+1");
    CHECK(describe(plan_zeroing(24, 81, means)) == "Wu24+16 Wu40+16 Wu56+16 Wu72+16 Wu88+16 "
                                                   "W104+1");
    means.write_same_unmap = false;
    CHECK(describe(plan_zeroing(24, 81, means)) == "W24+16 W40+16 W56+16 W72+16 W88+16 W104+1");
}

TEST_CASE("nothing to zero")
{
    CHECK(plan_zeroing(7, 0, zero_means(thin(), 512)).empty());
}

TEST_CASE("a zeroing command's timeout grows with what the device may have to write")
{
    CHECK(zero_command_timeout_ms(512, 60000) == 60000);
    CHECK(zero_command_timeout_ms(write_same_cap_bytes, 60000) == 64000);
    CHECK(zero_command_timeout_ms(write_same_cap_bytes, 100000) == 100000);
}

TEST_CASE("whole granules: the boundaries inside a range, block by block")
{
    // Brute force against the definition: granule k is [a + k g, a + (k + 1) g).
    for (std::uint32_t g : {1U, 4U, 8U})
        for (std::uint32_t a : {0U, 3U, 13U})
            for (std::uint64_t lba = 0; lba < 30; ++lba)
                for (std::uint64_t blocks = 0; blocks < 30; ++blocks) {
                    CAPTURE(g);
                    CAPTURE(a);
                    CAPTURE(lba);
                    CAPTURE(blocks);
                    std::uint64_t first = lba + blocks, last = lba + blocks;
                    for (std::uint64_t start = a % g; start + g <= lba + blocks; start += g) {
                        if (start < lba)
                            continue;
                        first = std::min(first, start);
                        last = start + g;
                    }
                    if (first >= last)
                        first = last = lba + blocks;
                    const GranuleSpan span = whole_granules(lba, blocks, g, a);
                    CHECK(span.first == first);
                    CHECK(span.last == last);
                    CHECK(span.empty() == (first == last));
                }
}
