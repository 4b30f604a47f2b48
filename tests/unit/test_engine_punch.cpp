// Disk::punch_hole on the Engine against the in-memory target: the range reads zero
// afterwards on every kind of device, whole granules are handed back where the device can
// take them (UNMAP, WRITE SAME with UNMAP), and what the device left mapped or reading old
// data is found (GET LBA STATUS, a read back) and zeroed. The oracle is the target: its
// store, which blocks it holds mapped, and its log.
#include "provisioning_helpers.hpp"

#include <cerrno>
#include <doctest/doctest.h>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

TargetConfig unmap_only(bool lbprz, std::uint32_t granularity = 8)
{
    TargetConfig config = thin(lbprz);
    config.lbpws = false;
    config.unmap_granularity = granularity;
    return config;
}

// The blocks the UNMAP commands in the log named, in order, as one list.
std::vector<std::pair<std::uint64_t, std::uint32_t>> unmapped_ranges(const MemoryTarget &target)
{
    std::vector<std::pair<std::uint64_t, std::uint32_t>> out;
    for (const CommandRecord &record : of_opcode(target.log(), opcode::unmap))
        out.insert(out.end(), record.unmap_ranges.begin(), record.unmap_ranges.end());
    return out;
}

void check_zero(const MemoryTarget &target, std::uint64_t lba, std::uint64_t blocks)
{
    CHECK(target.peek(lba * block, blocks * block) == Bytes(blocks * block, 0));
}

// Blocks in [0, count) are mapped exactly where `expect(lba)` says.
template <typename Expect>
void check_mapped(const MemoryTarget &target, std::uint64_t count, Expect expect)
{
    for (std::uint64_t lba = 0; lba < count; ++lba) {
        CAPTURE(lba);
        CHECK(target.mapped(lba) == expect(lba));
    }
}

} // namespace

TEST_CASE("LBPWS and LBPRZ: WRITE SAME with UNMAP does it all, nothing to check")
{
    TargetConfig config = thin(true);
    config.unmap_granularity = 8;
    EngineFixture f(config);
    const Bytes before = fill(*f.target, 80);
    const IoResult result = f.disk().punch_hole(4 * block, 64 * block);
    REQUIRE(result.ok());
    CHECK(result.bytes == 64 * block);
    check_zero(*f.target, 4, 64);
    check_mapped(*f.target, 80, [](std::uint64_t lba) { return lba < 8 || lba >= 64; });
    CHECK(f.target->equals(0, {before.data(), 4 * block}));
    CHECK(f.target->equals(68 * block, {before.data() + 68 * block, 12 * block}));
    CHECK(f.target->count(opcode::unmap) == 0);
    CHECK(f.target->count(opcode::service_action_in_16) == 0);
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.write_same_unmap_bytes == 56 * block);
    CHECK(zero.write_same_bytes == 8 * block);
    CHECK(zero.unmap_commands == 0);
    CHECK(zero.lba_status_queries == 0);
}

TEST_CASE("UNMAP only, LBPRZ=1: UNMAP of the whole granules, GET LBA STATUS, edges zeroed")
{
    EngineFixture f(unmap_only(true));
    const Bytes before = fill(*f.target, 80);
    const IoResult result = f.disk().punch_hole(4 * block, 64 * block);
    REQUIRE(result.ok());
    CHECK(result.bytes == 64 * block);
    check_zero(*f.target, 4, 64);
    check_mapped(*f.target, 80, [](std::uint64_t lba) { return lba < 8 || lba >= 64; });
    CHECK(f.target->equals(0, {before.data(), 4 * block}));
    CHECK(f.target->equals(68 * block, {before.data() + 68 * block, 12 * block}));
    CHECK(unmapped_ranges(*f.target) ==
          std::vector<std::pair<std::uint64_t, std::uint32_t>>{{8, 56}});
    CHECK(f.target->count(opcode::service_action_in_16) >= 1);
    const std::vector<CommandRecord> same = of_opcode(f.target->log(), opcode::write_same_16);
    REQUIRE(same.size() == 2); // the edges
    CHECK(same[0].lba == 4);
    CHECK(same[0].blocks == 4);
    CHECK(same[1].lba == 64);
    CHECK(same[1].blocks == 4);
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.unmap_commands == 1);
    CHECK(zero.unmap_bytes == 56 * block);
    CHECK(zero.lba_status_queries == f.target->count(opcode::service_action_in_16));
    CHECK(zero.write_same_bytes == 8 * block); // the edges only: the rest reads unmapped
    CHECK(zero.verify_read_bytes == 0);
    CHECK(zero.fallbacks == 0);
    CHECK(f.data_commands().empty());
}

TEST_CASE("UNMAP partly ignored, LBPRZ=1: GET LBA STATUS finds the granules left, zeroed")
{
    TargetConfig config = unmap_only(true);
    config.unmap_keeps_every = 2;
    EngineFixture f(config);
    fill(*f.target, 80);
    REQUIRE(f.disk().punch_hole(0, 64 * block).ok());
    check_zero(*f.target, 0, 64);
    // Granules 1, 3, 5, 7 (counted from 0 at LBA 0) stayed mapped and got WRITE SAME.
    const auto kept = [](std::uint64_t lba) { return lba >= 64 || (lba / 8) % 2 == 1; };
    check_mapped(*f.target, 80, kept);
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.write_same_bytes == 32 * block);
    CHECK(zero.unmap_bytes == 64 * block);
}

TEST_CASE("UNMAP only, LBPRZ=0: read back; blocks reading old data or a pattern are zeroed")
{
    SUBCASE("unmapped blocks read a pattern: every one of them zeroed")
    {
        EngineFixture f(unmap_only(false));
        fill(*f.target, 80);
        REQUIRE(f.disk().punch_hole(8 * block, 32 * block).ok());
        check_zero(*f.target, 8, 32);
        CHECK(read_back(f.disk(), 8 * block, 32 * block) == Bytes(32 * block, 0));
        CHECK(f.target->mapped_blocks() == f.target->config().block_count);
        const ZeroCountersSnapshot zero = f.stats().zero;
        CHECK(zero.unmap_bytes == 32 * block);
        CHECK(zero.verify_read_bytes == 32 * block);
        CHECK(zero.write_same_bytes == 32 * block);
        CHECK(zero.lba_status_queries == 0);
    }
    SUBCASE("unmapped blocks read zero (LIO fileio), a third left mapped: only those zeroed")
    {
        TargetConfig config = unmap_only(false);
        config.unmapped_pattern_without_lbprz = false;
        config.unmap_keeps_every = 3;
        EngineFixture f(config);
        const Bytes before = fill(*f.target, 80);
        REQUIRE(f.disk().punch_hole(4 * block, 64 * block).ok());
        check_zero(*f.target, 4, 64);
        CHECK(f.target->equals(0, {before.data(), 4 * block}));
        // Granules 1..7 are whole; the 3rd and 6th of them ([24, 32), [48, 56)) kept.
        const auto kept = [](std::uint64_t lba) {
            return lba < 8 || lba >= 64 || (lba >= 24 && lba < 32) || (lba >= 48 && lba < 56);
        };
        check_mapped(*f.target, 80, kept);
        const ZeroCountersSnapshot zero = f.stats().zero;
        CHECK(zero.verify_read_bytes == 56 * block);
        CHECK(zero.write_same_bytes == (8 + 16) * block);
        CHECK(f.target->count(opcode::service_action_in_16) == 0);
    }
}

TEST_CASE("WRITE SAME with UNMAP only, LBPRZ=0: deallocated by it, then read back")
{
    TargetConfig config = thin(false);
    config.lbpu = false;
    config.unmapped_pattern_without_lbprz = false; // LIO fileio: its holes read zero
    config.unmap_granularity = 4;
    EngineFixture f(config);
    fill(*f.target, 40);
    REQUIRE(f.disk().punch_hole(2 * block, 36 * block).ok());
    check_zero(*f.target, 2, 36);
    check_mapped(*f.target, 40, [](std::uint64_t lba) { return lba < 4 || lba >= 36; });
    CHECK(f.target->count(opcode::unmap) == 0);
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.write_same_unmap_bytes == 32 * block);
    CHECK(zero.verify_read_bytes == 32 * block);
    CHECK(zero.write_same_bytes == 4 * block);
}

TEST_CASE("no provisioning: WRITE SAME, no UNMAP, no question")
{
    EngineFixture f;
    fill(*f.target, 64);
    REQUIRE(f.disk().punch_hole(0, 64 * block).ok());
    check_zero(*f.target, 0, 64);
    check_covers(of_opcode(f.target->log(), opcode::write_same_16), 0, 64, 0xffff);
    CHECK(f.target->count(opcode::unmap) == 0);
    CHECK(f.target->count(opcode::service_action_in_16) == 0);
    CHECK(f.data_commands().empty());
}

TEST_CASE("unaligned and sub-block punches: partial blocks read-modify-write, the rest kept")
{
    SUBCASE("unaligned")
    {
        EngineFixture f(unmap_only(true));
        const Bytes before = fill(*f.target, 40);
        const std::uint64_t offset = 7 * block + 100;
        const std::uint64_t length = 20 * block; // to byte 100 of block 27
        const IoResult result = f.disk().punch_hole(offset, length);
        REQUIRE(result.ok());
        CHECK(result.bytes == length);
        CHECK(f.target->peek(offset, length) == Bytes(length, 0));
        CHECK(f.target->equals(0, {before.data(), offset}));
        CHECK(f.target->equals(offset + length,
                               {before.data() + offset + length, 40 * block - offset - length}));
        CHECK(unmapped_ranges(*f.target) ==
              std::vector<std::pair<std::uint64_t, std::uint32_t>>{{8, 16}});
        CHECK(f.stats().zero.host_bytes == (block - 100) + 100);
    }
    SUBCASE("inside one block")
    {
        EngineFixture f(unmap_only(true));
        const Bytes before = fill(*f.target, 4);
        REQUIRE(f.disk().punch_hole(2 * block + 10, 20).ok());
        Bytes expected = before;
        std::fill_n(expected.begin() + 2 * block + 10, 20, 0);
        CHECK(f.target->peek(0, 4 * block) == expected);
        CHECK(f.target->count(opcode::unmap) == 0);
        CHECK(f.target->count(opcode::write_same_16) == 0);
        CHECK(f.stats().zero.host_bytes == 20);
    }
}

TEST_CASE("a punch across the end is cut there; at or past the end ENOSPC; read-only EROFS")
{
    SUBCASE("across the end")
    {
        EngineFixture f(unmap_only(true));
        const std::uint64_t blocks = f.target->config().block_count;
        fill(*f.target, 24, blocks - 24);
        const IoResult result = f.disk().punch_hole((blocks - 20) * block, 100 * block);
        REQUIRE(result.ok());
        CHECK(result.bytes == 20 * block);
        check_zero(*f.target, blocks - 20, 20);
        CHECK(f.target->mapped(blocks - 21));
        CHECK_FALSE(f.target->mapped(blocks - 1));
    }
    SUBCASE("past the end")
    {
        EngineFixture f(unmap_only(true));
        const IoResult result = f.disk().punch_hole(f.target->bytes(), block);
        CHECK(result.error == -ENOSPC);
        CHECK(contains(result.message, "hole punch"));
        CHECK(f.target->log().empty());
    }
    SUBCASE("read-only")
    {
        DiskOptions options = test_options();
        options.read_only = true;
        EngineFixture f(unmap_only(true), options);
        CHECK(f.disk().punch_hole(0, block).error == -EROFS);
        CHECK(f.target->log().empty());
    }
}

TEST_CASE("UNMAP refused: zeroed instead, counted as a fallback, not asked again")
{
    EngineFixture f(unmap_only(true));
    fill(*f.target, 64);
    f.target->inject(refusal(Ops::unmap));
    REQUIRE(f.disk().punch_hole(0, 32 * block).ok());
    check_zero(*f.target, 0, 32);
    CHECK(f.target->count(opcode::unmap) == 1);
    CHECK(f.stats().zero.fallbacks == 1);
    CHECK(f.stats().zero.write_same_bytes == 32 * block);
    f.target->clear_log();
    REQUIRE(f.disk().punch_hole(32 * block, 32 * block).ok());
    check_zero(*f.target, 32, 32);
    CHECK(f.target->count(opcode::unmap) == 0);
    CHECK(f.stats().zero.fallbacks == 1);
    CHECK(f.stats().zero.unmap_commands == 0);
}

TEST_CASE("UNMAP refused on a disk with WRITE SAME with UNMAP: that deallocates from then on")
{
    TargetConfig config = thin(false);
    config.unmapped_pattern_without_lbprz = false;
    EngineFixture f(config);
    fill(*f.target, 64);
    f.target->inject(refusal(Ops::unmap));
    REQUIRE(f.disk().punch_hole(0, 16 * block).ok()); // refused: zeroed
    REQUIRE(f.disk().punch_hole(16 * block, 16 * block).ok());
    check_zero(*f.target, 0, 32);
    check_mapped(*f.target, 64, [](std::uint64_t lba) { return lba < 16 || lba >= 32; });
    CHECK(f.stats().zero.write_same_unmap_bytes == 16 * block);
    CHECK(f.target->count(opcode::unmap) == 1);
}

TEST_CASE("GET LBA STATUS refused after UNMAP: the whole range zeroed, not asked again")
{
    EngineFixture f(unmap_only(true));
    fill(*f.target, 64);
    f.target->inject(refusal(Ops::get_lba_status, 0x24));
    REQUIRE(f.disk().punch_hole(0, 32 * block).ok());
    check_zero(*f.target, 0, 32);
    CHECK(f.stats().zero.write_same_bytes == 32 * block);
    REQUIRE(f.disk().punch_hole(32 * block, 32 * block).ok());
    check_zero(*f.target, 32, 32);
    CHECK(f.target->count(opcode::service_action_in_16) == 1);
}

TEST_CASE("UNMAP limits: commands within the descriptor and LBA counts, granule-aligned")
{
    TargetConfig config = unmap_only(true, 4);
    config.unmap_granularity_alignment = 1;
    config.max_unmap_lba_count = 10; // 8 in whole granules
    config.max_unmap_descriptors = 2;
    EngineFixture f(config);
    fill(*f.target, 120);
    REQUIRE(f.disk().punch_hole(0, 100 * block).ok());
    check_zero(*f.target, 0, 100);
    // Whole granules [1, 97): 12 commands of 8 blocks; the target refuses any over its limits.
    const std::vector<CommandRecord> unmaps = of_opcode(f.target->log(), opcode::unmap);
    CHECK(unmaps.size() == 12);
    for (const CommandRecord &record : unmaps) {
        std::uint64_t total = 0;
        CHECK(record.unmap_ranges.size() <= 2);
        for (const auto &[lba, blocks] : record.unmap_ranges) {
            CHECK(lba % 4 == 1);
            CHECK(blocks % 4 == 0);
            total += blocks;
        }
        CHECK(total <= 10);
    }
    check_mapped(*f.target, 120, [](std::uint64_t lba) { return lba < 1 || lba >= 97; });
    CHECK(f.stats().zero.fallbacks == 0);
    CHECK(f.stats().zero.unmap_bytes == 96 * block);
}

TEST_CASE("an UNMAP that fails (not a refusal) fails the punch, naming the device")
{
    EngineFixture f(unmap_only(true));
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::unmap;
    fault.times = Fault::always;
    f.target->inject(fault);
    const IoResult result = f.disk().punch_hole(0, 16 * block);
    CHECK(result.error == -EIO);
    CHECK(contains(result.message, "sg0"));
    CHECK(f.stats().zero.fallbacks == 0);
}
